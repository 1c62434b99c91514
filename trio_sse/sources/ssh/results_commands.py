"""The remote command lines of a results folder over SSH (SPEC §8), pure.

Owns: ``ResultsCommands`` — finding a task's folder and reading one file, on the host or in
the container (``docker exec``), each under the guard of ``commands.py`` (the command ends
when its channel closes). Following a ``traj.jsonl`` uses ``commands.RemoteCommands.follow``
(the log's own tail -F command). Every value reaches the remote shell as a quoted argument:
the results dir, domain, task id and file path are never part of a script's text, and only
the ``*`` of the search levels are globbed (POSIX: quoted parts of a word match literally).
Must not: import anything async, run anything, or write on the target (every command reads).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from trio_sse.sources.ssh.commands import _guard
from trio_sse.trajectory import LEVELS

# ``read`` exits with this when the file is not a readable regular file (a vanished screenshot).
MISSING_STATUS = 3


def _find_script() -> str:
    """A ``sh`` script: ``$1`` the results dir, ``$2`` the domain, ``$3`` the task id. Prints
    the newest folder ``$1/<LEVELS × */>$2/$3`` and a newline (just the newline when none is
    there). Order and tie rule as ``trajectory.pick_newest``: levels in ``LEVELS`` order, each
    glob sorted (the shell sorts), a later folder wins only when strictly newer (``-nt``)."""
    words = " ".join(f'"$1"/{"*/" * levels}"$2"/"$3"' for levels in LEVELS)
    return (
        f'n=; for f in {words}; do [ -d "$f" ] || continue; '
        'if [ -z "$n" ] || [ "$f" -nt "$n" ]; then n=$f; fi; done; printf "%s\\n" "$n"'
    )


# Not a symlink: a link planted in a task folder must not lead the files API elsewhere.
_READ_SCRIPT = f'if [ -f "$1" ] && [ ! -h "$1" ] && [ -r "$1" ]; then exec cat -- "$1"; fi; exit {MISSING_STATUS}'


@dataclass(frozen=True, slots=True)
class ResultsCommands:
    """The command lines of one target's results folder. ``container``: run them inside it."""

    root: str
    container: str | None = None

    def _wrap(self, script: str, *args: str) -> str:
        command = f"sh -c {shlex.quote(script)} sh {' '.join(shlex.quote(a) for a in args)}"
        if self.container is not None:
            command = f"docker exec {shlex.quote(self.container)} {command}"
        return _guard(command)

    def find(self, domain: str, task_id: str) -> str:
        """Prints the task's newest folder (see ``_find_script``) and a newline."""
        return self._wrap(_find_script(), self.root, domain, task_id)

    def read(self, path: str) -> str:
        """Writes the file at ``path`` to stdout; exits ``MISSING_STATUS`` when it is not a
        readable regular file (or is a symlink)."""
        return self._wrap(_READ_SCRIPT, path)
