"""Which worker a log file belongs to, from its name. Pure.

WAA's ``client/run.py`` gives each worker process its own files,
``<result_dir>/logs/normal-<worker>-<ts>.log`` (and ``debug-…``, ``sdebug-…``); the sources
follow the newest file of every worker, and the run state treats a second file of the same
worker as a new run. ``worker_key`` names the worker: ``normal-3`` for WAA's names, the name
without a trailing timestamp for others (``x-20241120@140612.log`` → ``x``), else the
basename. Must not: touch the filesystem.
"""

from __future__ import annotations

import posixpath
import re

_WAA = re.compile(r"((?:normal|debug|sdebug)-\d{1,6})-.+\Z")
# A trailing date-time: 20241120@140612, 20241120_140612, 2024-11-20T14-06-12, 2024-11-20_14:06:12…
_STAMP = re.compile(r"[-_.@]?\d{4}-?\d{2}-?\d{2}(?:[@_T -]?\d{2}[-:]?\d{2}(?:[-:]?\d{2})?)?\Z")
_EXT = re.compile(r"\.(?:log|txt|out)\Z")


def worker_key(path: str) -> str:
    name = posixpath.basename(path.rstrip("/")) or path
    stem = _EXT.sub("", name)
    m = _WAA.match(stem)
    if m:
        return m.group(1)
    bare = _STAMP.sub("", stem)
    return bare if bare and bare != stem else name
