"""Per-sender replay window: exact, bounded, and the source of gap reports.

RFC 4303's anti-replay window keeps the highest sequence number and a bitmap
of the last N; anything older than the bitmap is refused. That is right for
IPsec, where an old packet is worthless, and wrong here: a tablet that was off
for a week must accept the archive's replay of what it missed, however far
below the newest message that lies. So the window keeps, per sender, the
highest sequence seen and the exact ranges still missing below it. A sequence
number is new if it is above the top or inside a missing range; otherwise it
is a duplicate. The state is bounded two ways, as RFC 4303's is:

* ``span``: nothing more than ``span`` below the top is tracked (refused as
  too old), and the top may not jump by more than ``span`` at once (refused as
  an absurd jump: a compromised key cannot push a tablet's window out of reach);
* ``max_gaps``: at most that many missing ranges; the oldest fall out first.

Sequence numbers count per *stream*: a sender's outbox incarnation (its
``epoch``, random, in the signed header). A reinstalled tablet, a second data
folder or a replaced key starts a new outbox at #1 under a new epoch, so its
numbers never collide with what the old one sent: nothing is dropped as a
duplicate unless the receiver holds that very (sender, epoch, seq). At most
``max_epochs`` streams per sender are tracked (least recently used dropped),
so a key that mints epochs cannot grow the state without bound.

Missing ranges are the gaps a client asks the archive to replay; each carries
the time it was first seen so a client can wait out a reorder grace period.
Plain data, no clock: ``now`` is an argument.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

__all__ = ["Gap", "ReplayWindow", "SeqVerdict", "Stream"]

Stream = tuple[str, int]
"""(sender, epoch): the unit sequence numbers count in."""


class SeqVerdict(Enum):
    """What the window says of a sequence number."""

    NEW = "new"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"
    JUMP = "jump"


@dataclass(frozen=True, slots=True)
class Gap:
    """Numbers ``first``..``last`` (inclusive) of ``sender``'s ``epoch`` not yet received."""

    sender: str
    first: int
    last: int
    since: datetime
    epoch: int = 1

    @property
    def count(self) -> int:
        """How many messages are missing."""
        return self.last - self.first + 1


@dataclass(slots=True)
class _Sender:
    top: int
    floor: int
    # Sorted, disjoint [first, last, since] ranges, all >= floor and < top.
    missing: list[list[Any]] = field(default_factory=list)


class ReplayWindow:
    """Sequence tracking for every sender a receiver has heard from."""

    def __init__(self, *, span: int = 65_536, max_gaps: int = 4_096, max_epochs: int = 8) -> None:
        self.span = span
        self.max_gaps = max_gaps
        self.max_epochs = max_epochs
        # Insertion order is recency of use: the first stream is the one dropped.
        self._senders: dict[Stream, _Sender] = {}

    def check(self, sender: str, seq: int, *, epoch: int = 1) -> SeqVerdict:
        """Whether ``seq`` of ``sender``'s ``epoch`` would be new. Changes nothing."""
        state = self._senders.get((sender, epoch))
        if state is None:
            return SeqVerdict.NEW
        if seq > state.top:
            return SeqVerdict.JUMP if seq - state.top > self.span else SeqVerdict.NEW
        if seq < state.floor:
            return SeqVerdict.TOO_OLD
        return SeqVerdict.NEW if self._find(state, seq) is not None else SeqVerdict.DUPLICATE

    def commit(self, sender: str, seq: int, now: datetime, *, epoch: int = 1) -> None:
        """Record ``seq`` as received. Call only after ``check`` said NEW."""
        key = (sender, epoch)
        state = self._senders.pop(key, None)
        if state is None:
            floor = max(1, seq - self.span)
            self._senders[key] = state = _Sender(top=seq, floor=floor)
            if seq > floor:
                state.missing.append([floor, seq - 1, now])
            same = [k for k in self._senders if k[0] == sender]
            for old in same[: max(0, len(same) - self.max_epochs)]:
                del self._senders[old]
            return
        self._senders[key] = state
        if seq > state.top:
            if seq > state.top + 1:
                state.missing.append([state.top + 1, seq - 1, now])
            state.top = seq
            self._raise_floor(state, seq - self.span)
        else:
            index = self._find(state, seq)
            if index is None:
                return
            first, last, since = state.missing[index]
            pieces = [r for r in ([first, seq - 1, since], [seq + 1, last, since]) if r[0] <= r[1]]
            state.missing[index : index + 1] = pieces
        while len(state.missing) > self.max_gaps:
            self._raise_floor(state, state.missing[0][1] + 1)

    def gaps(self, now: datetime | None = None, grace: timedelta = timedelta(0)) -> list[Gap]:
        """Missing ranges, least recently heard stream first; with ``now``, only those
        older than ``grace``. Safe to call while another thread commits (copies first)."""
        out = []
        # Snapshots: a client's ticker reads gaps while its committer commits, which
        # changed the dict mid-loop. dict.copy() and a slice copy in C without making
        # objects on the way (list(d.items()) makes a tuple per item, and an
        # allocation can run the garbage collector, and with it another thread).
        for (sender, epoch), state in self._senders.copy().items():
            for first, last, since in state.missing[:]:
                if now is None or since + grace <= now:
                    out.append(Gap(sender, first, last, since, epoch))
        return out

    def senders(self) -> list[str]:
        """Every sender heard from."""
        return list(dict.fromkeys(sender for sender, _ in self._senders.copy()))

    def streams(self, sender: str | None = None) -> dict[Stream, int]:
        """The top sequence number of every stream (of ``sender``, if given)."""
        return {
            key: state.top
            for key, state in self._senders.copy().items()
            if sender is None or key[0] == sender
        }

    def top(self, sender: str, *, epoch: int = 1) -> int:
        """The highest sequence number seen in ``sender``'s ``epoch`` (0 if none)."""
        state = self._senders.get((sender, epoch))
        return 0 if state is None else state.top

    def snapshot(self) -> list[Any]:
        """The state as plain data, for a client to persist."""
        return [
            [s, e, st.top, st.floor, [list(r) for r in st.missing]]
            for (s, e), st in self._senders.items()
        ]

    def restore(self, data: list[Any]) -> None:
        """Load state written by ``snapshot``."""
        self._senders = {
            (s, e): _Sender(top, floor, [list(r) for r in missing])
            for s, e, top, floor, missing in data
        }

    @staticmethod
    def _find(state: _Sender, seq: int) -> int | None:
        index = bisect.bisect_right(state.missing, seq, key=lambda r: r[0]) - 1
        if index >= 0 and state.missing[index][0] <= seq <= state.missing[index][1]:
            return index
        return None

    @staticmethod
    def _raise_floor(state: _Sender, floor: int) -> None:
        if floor <= state.floor:
            return
        state.floor = floor
        kept = []
        for first, last, since in state.missing:
            if last >= floor:
                kept.append([max(first, floor), last, since])
        state.missing = kept
