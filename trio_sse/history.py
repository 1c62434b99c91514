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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

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


class Replay(Sequence[Entry]):
    """Entries ``[start, end)`` of one history: a view, not a copy. A history only ever
    appends, so the view stays what it was when taken; a stream replays from it piece by
    piece while its client reads, holding no copy of the history."""

    __slots__ = ("end", "entries", "start")

    def __init__(self, entries: list[Entry], start: int, end: int) -> None:
        self.entries = entries  # the history's own list (shared)
        self.start = start
        self.end = end

    def __len__(self) -> int:
        return self.end - self.start

    @overload
    def __getitem__(self, i: int) -> Entry: ...
    @overload
    def __getitem__(self, i: slice) -> list[Entry]: ...
    def __getitem__(self, i: int | slice) -> Entry | list[Entry]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.entries[self.start + i]

    def __iter__(self) -> Iterator[Entry]:
        entries = self.entries
        for i in range(self.start, self.end):
            yield entries[i]

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Replay({self.start}:{self.end} of {len(self.entries)})"


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

    def after(self, position: tuple[str, int] | None) -> Replay:
        """Entries after ``(run, n)``; the whole run when the position is of another run or
        None (a client that sent no id, or one we cannot place, has seen nothing)."""
        end = len(self._entries)
        if position is None or position[0] != self.run or position[1] > end:
            return Replay(self._entries, 0, end)  # (n > end: a position we never issued)
        return Replay(self._entries, position[1], end)


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
