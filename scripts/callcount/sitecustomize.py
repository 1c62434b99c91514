"""Count every Python call in a benchmark's trio-sse server process (not a benchmark itself).

A deterministic view of a code path where sampling profiles drown in noise: put this folder
on PYTHONPATH, and the server process that ``scripts/bench_fanout.py`` starts (its argv names
``_bench_servers.py`` or the older ``_bench_common.py``, and ``trio``) counts each Python
function call with ``sys.setprofile`` and writes ``count<TAB>file:function`` lines, most
first, to ``$CALLCOUNT_OUT`` when it exits. Every other process is left alone. Slows the
server several times: compare counts, not times.

    CALLCOUNT_OUT=/tmp/calls.txt PYTHONPATH=scripts/callcount \\
        .venv/bin/python scripts/bench_fanout.py --only trio --runs 1 --clients 200 --duration 5

Must not: change what the server does.
"""

import atexit
import collections
import os
import sys

if any(a.endswith(("_bench_servers.py", "_bench_common.py")) for a in sys.argv) and "trio" in sys.argv:
    _counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def _profile(frame, event, arg, counts=_counts):  # type: ignore[no-untyped-def]
        if event == "call":
            code = frame.f_code
            counts[(code.co_filename, code.co_name)] += 1

    def _dump() -> None:
        sys.setprofile(None)
        with open(os.environ.get("CALLCOUNT_OUT", "calls.txt"), "w") as f:
            for (filename, name), n in _counts.most_common():
                f.write(f"{n}\t{filename.rsplit('site-packages/', 1)[-1]}:{name}\n")

    sys.setprofile(_profile)
    atexit.register(_dump)
