"""Durable events of one target's run, with stable ids, and "what came after id X". Pure.

An id names the target, the run and the event's place in it, so a client that sends it back
(``Last-Event-ID``) gets exactly what came after — also from a restarted server, since every
part is derived from the log, never from a process-local counter:

* ``<target>:<run>-<n>`` — a run read from one log file: ``run`` is derived from the run's
  first bytes (``runstate`` decides which), ``n`` is the event's ordinal in the run.
* ``<target>:<run>-<lane>.<n>_<lane>.<n>…`` — a run written by several workers, each to its
  own file (WAA's ``normal-<worker>-<ts>.log``): every file is a *lane*, named by a hash of
  its own first bytes, with its own ordinals. The files are read as they grow, so the order
  in which lanes interleave differs between a live run and a restart; a place in the run is
  therefore the count of events seen *per lane*, and each event's id carries all of them.

A stream over several targets carries a *cursor*: each target's id, joined by ``,`` — so one
``Last-Event-ID`` resumes every target. Each entry carries its JSON and its frame encoded
once, shared by every client (fan-out encodes nothing per client for a single-target stream;
only a client resuming a several-lane run mid-way gets its replayed ids merged with its own
position, see ``Replay.frame``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from trio_sse.model import Durable, dumps
from trio_sse.sse import encode_event

_TARGET = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_HEX = r"[0-9a-f]{1,16}"
_N = r"[0-9]{1,12}"
_ID_PART = re.compile(
    rf"({_TARGET}):({_HEX})-({_N}|{_HEX}\.{_N}(?:_{_HEX}\.{_N}){{0,1023}})\Z"
)
MAX_CURSOR_LENGTH = 16384  # longer Last-Event-IDs are treated as unplaceable (full replay)
LANE_CHARS = 6  # hex characters of a lane's name in ids (of a hash of its file's first bytes)


def run_id_for(first_line: bytes, salt: str = "") -> str:
    """Stable id of a run (or a lane) from its first bytes (and, for a run that starts later
    inside the same file, a salt naming the previous run and the byte offset)."""
    h = hashlib.sha1(salt.encode() + b"\0" + first_line[:4096])
    return h.hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a client is in a target's run: the run and the events seen of each lane
    (``""`` is the one lane of a single-file run)."""

    run: str
    lanes: Mapping[str, int] = field(default_factory=dict)

    @property
    def single(self) -> int | None:
        """The ordinal of a single-lane position, else None."""
        return self.lanes.get("") if set(self.lanes) == {""} else None


def _format_id(target: str, run: str, counts: Mapping[str, int]) -> str:
    if set(counts) == {""}:
        return f"{target}:{run}-{counts['']}"
    return f"{target}:{run}-" + "_".join(f"{lane}.{n}" for lane, n in sorted(counts.items()) if lane)


@dataclass(frozen=True, slots=True)
class Entry:
    id: str  # the SSE id: the target's place after this event (see the module docstring)
    event: Durable
    data: str  # the payload's compact JSON
    frame: bytes  # the whole SSE frame with this entry's own id
    lane: str = ""
    n: int = 0  # its ordinal in its lane
    seq: int = 0  # its place in the run's history (1, 2, 3 …, whatever the lane)

    def frame_with_id(self, cursor: str) -> bytes:
        """The frame with another id (the cursor of a multi-target stream)."""
        return encode_event(self.data, event=self.event.EVENT, id=cursor)


def _lane_counts(id: str) -> dict[str, int]:
    """The per-lane counts an entry's own id records."""
    m = _ID_PART.match(id)
    if m is None:
        return {}
    tail = m.group(3)
    if tail.isdigit():
        return {"": int(tail)}
    return {lane: int(n) for lane, _, n in (p.partition(".") for p in tail.split("_"))}


class Replay(Sequence[Entry]):
    """Entries ``[start, end)`` of one history — of those, with a ``floor``, only the ones past
    it in their lane: a view, not a copy. A history only ever appends, so the view stays what
    it was when taken; a stream replays from it piece by piece while its client reads, holding
    no copy of the history."""

    __slots__ = ("_len", "end", "entries", "floor", "start", "target", "run")

    def __init__(
        self,
        entries: list[Entry],
        start: int,
        end: int,
        *,
        floor: Mapping[str, int] | None = None,
        target: str = "",
        run: str = "",
    ) -> None:
        self.entries = entries  # the history's own list (shared)
        self.start = start
        self.end = end
        self.floor = floor or None  # several lanes, resumed mid-way: what the client has
        self.target = target
        self.run = run
        self._len: int | None = None

    def included(self, entry: Entry) -> bool:
        return self.floor is None or entry.n > self.floor.get(entry.lane, 0)

    def entry_id(self, entry: Entry) -> str:
        """The entry's id for this client: its own, or — resumed mid-way in a run of several
        lanes — merged with what the client already had (the order lanes interleave in may
        differ from the one the client saw: its id must not go back)."""
        if self.floor is None:
            return entry.id
        counts = _lane_counts(entry.id)
        behind = False
        for lane, n in self.floor.items():
            if n > counts.get(lane, 0):
                counts[lane] = n
                behind = True
        return _format_id(self.target, self.run, counts) if behind else entry.id

    def frame(self, entry: Entry) -> bytes:
        """The entry's frame for this client (its own unless ``entry_id`` differs)."""
        if self.floor is None:
            return entry.frame
        id = self.entry_id(entry)
        return entry.frame if id == entry.id else entry.frame_with_id(id)

    def __len__(self) -> int:
        if self.floor is None:
            return self.end - self.start
        if self._len is None:  # (a rare path: a resume in a run of several lanes)
            self._len = sum(1 for _ in self)
        return self._len

    @overload
    def __getitem__(self, i: int) -> Entry: ...
    @overload
    def __getitem__(self, i: slice) -> list[Entry]: ...
    def __getitem__(self, i: int | slice) -> Entry | list[Entry]:
        items = list(self) if self.floor is not None else None
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return items[i] if items is not None else self.entries[self.start + i]

    def __iter__(self) -> Iterator[Entry]:
        entries = self.entries
        for i in range(self.start, self.end):
            if self.floor is None or self.included(entries[i]):
                yield entries[i]

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Replay({self.start}:{self.end} of {len(self.entries)}, floor={self.floor})"


class History:
    """The current run's durable events of one target, in the order they were read.
    ``lanes``: a run of several files (see the module docstring)."""

    __slots__ = ("target", "run", "lanes", "_entries", "_counts")

    def __init__(self, target: str, run: str, *, lanes: bool = False) -> None:
        self.target = target
        self.run = run
        self.lanes = lanes
        self._entries: list[Entry] = []
        self._counts: dict[str, int] = {}

    def append(self, event: Durable, lane: str = "") -> Entry:
        if not self.lanes:
            lane = ""
        elif not lane:
            raise ValueError("a history of several lanes needs the lane of each event")
        n = self._counts.get(lane, 0) + 1
        self._counts[lane] = n
        id = _format_id(self.target, self.run, self._counts)
        data = dumps(event.payload())
        entry = Entry(id, event, data, encode_event(data, event=event.EVENT, id=id), lane, n, len(self._entries) + 1)
        self._entries.append(entry)
        return entry

    def adopt(self, entry: Entry) -> None:
        """Append an entry made elsewhere (a replica of another process's history: cluster
        mode), keeping its id; its lane and ordinal count as if appended here."""
        if self.lanes != bool(entry.lane):
            raise ValueError(f"entry {entry.id!r} does not fit a history with lanes={self.lanes}")
        self._counts[entry.lane] = max(entry.n, self._counts.get(entry.lane, 0))
        self._entries.append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> Sequence[Entry]:
        return self._entries

    def placeable(self, position: Position | None) -> bool:
        """Whether ``position`` is a place in this run this server issued (or could have)."""
        if position is None or position.run != self.run:
            return False
        if not self.lanes:
            n = position.single
            return n is not None and n <= self._counts.get("", 0)
        if "" in position.lanes:
            return False
        return all(n <= self._counts.get(lane, 0) for lane, n in position.lanes.items())

    def after(self, position: Position | None) -> Replay:
        """Entries after ``position``; the whole run when the position is of another run, one
        we never issued, or None (a client that sent no id, or one we cannot place, has seen
        nothing)."""
        end = len(self._entries)
        if not self.placeable(position):
            return Replay(self._entries, 0, end)
        assert position is not None
        if not self.lanes:
            return Replay(self._entries, position.lanes[""], end)
        return Replay(self._entries, 0, end, floor=dict(position.lanes), target=self.target, run=self.run)

    def cursor(self, position: Position | None = None) -> str | None:
        """The id a client has once it has every entry: the run's current place (merged with
        ``position``, when that is placeable); None before the first entry."""
        counts = dict(self._counts)
        if self.placeable(position):
            assert position is not None
            for lane, n in position.lanes.items():
                counts[lane] = max(n, counts.get(lane, 0))
        if not counts:
            return None
        return _format_id(self.target, self.run, counts)


def position_id(target: str, position: Position) -> str:
    """The id of a place in a run (what a client that is there last received)."""
    return _format_id(target, position.run, position.lanes)


def parse_cursor(raw: str | None) -> dict[str, Position]:
    """``Last-Event-ID`` → {target: Position}. Junk parts are ignored (→ full replay for that
    target), never an error: the client keys results by task_id anyway."""
    if not raw or len(raw) > MAX_CURSOR_LENGTH:
        return {}
    out: dict[str, Position] = {}
    for part in raw.split(","):
        m = _ID_PART.match(part.strip())
        if m:
            out[m.group(1)] = Position(m.group(2), _lane_counts(m.group(0)))
    return out


def format_cursor(ids: Iterable[str]) -> str:
    """The cursor of a multi-target stream: each target's id, in a stable order."""
    return ",".join(sorted(ids))
