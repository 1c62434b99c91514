"""Durable events of one target's run, with stable ids, and "what came after id X". Pure.

An id is ``<target>:<run>-<n>``: ``run`` is derived from the run's first bytes (the monitor
decides which: see ``monitor.RUN_KEY_BYTES``), so the same log gives the same run id after a
server restart and a new run — a replaced or truncated file — gets a new one; ``n`` is the durable event's ordinal in that run (its place
in the log). A stream over several targets carries a *cursor*: the ids of the last durable
event seen of each target, joined by ``,`` — so one ``Last-Event-ID`` resumes every target.

Each entry carries its JSON and its frame encoded once, shared by every client (fan-out
encodes nothing per client for a single-target stream).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trio_sse.model import Durable, dumps
from trio_sse.sse import encode_event

_ID_PART = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):([0-9a-f]{1,16})-([0-9]{1,12})\Z")
MAX_CURSOR_LENGTH = 4096  # longer Last-Event-IDs are treated as unplaceable (full replay)


def run_id_for(first_line: bytes, salt: str = "") -> str:
    """Stable id of a run from its first bytes (and, for a run that starts later inside the
    same file, a salt naming the previous run and the byte offset)."""
    h = hashlib.sha1(salt.encode() + b"\0" + first_line[:4096])
    return h.hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    event: Durable
    data: str  # the payload's compact JSON
    frame: bytes  # the whole SSE frame with this entry's own id

    def frame_with_id(self, cursor: str) -> bytes:
        """The frame with another id (the cursor of a multi-target stream)."""
        return encode_event(self.data, event=self.event.EVENT, id=cursor)


class History:
    """The current run's durable events of one target, in log order."""

    __slots__ = ("target", "run", "_entries")

    def __init__(self, target: str, run: str) -> None:
        self.target = target
        self.run = run
        self._entries: list[Entry] = []

    def append(self, event: Durable) -> Entry:
        id = f"{self.target}:{self.run}-{len(self._entries) + 1}"
        data = dumps(event.payload())
        entry = Entry(id, event, data, encode_event(data, event=event.EVENT, id=id))
        self._entries.append(entry)
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> Sequence[Entry]:
        return self._entries

    def after(self, position: tuple[str, int] | None) -> Sequence[Entry]:
        """Entries after ``(run, n)``; the whole run when the position is of another run or
        None (a client that sent no id, or one we cannot place, has seen nothing)."""
        if position is None or position[0] != self.run:
            return self._entries
        n = position[1]
        if n > len(self._entries):  # a position we never issued: cannot place it
            return self._entries
        return self._entries[n:]


def parse_cursor(raw: str | None) -> dict[str, tuple[str, int]]:
    """``Last-Event-ID`` → {target: (run, n)}. Junk parts are ignored (→ full replay for
    that target), never an error: the client keys results by task_id anyway."""
    if not raw or len(raw) > MAX_CURSOR_LENGTH:
        return {}
    out: dict[str, tuple[str, int]] = {}
    for part in raw.split(","):
        m = _ID_PART.match(part.strip())
        if m:
            out[m.group(1)] = (m.group(2), int(m.group(3)))
    return out


def format_cursor(ids: Iterable[str]) -> str:
    """The cursor of a multi-target stream: each target's last id, in a stable order."""
    return ",".join(sorted(ids))
