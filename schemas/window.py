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

__all__ = ["Gap", "ReplayWindow", "SeqVerdict"]


class SeqVerdict(Enum):
    """What the window says of a sequence number."""

    NEW = "new"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"
    JUMP = "jump"


@dataclass(frozen=True, slots=True)
class Gap:
    """Sequence numbers ``first``..``last`` (inclusive) of ``sender`` not yet received."""

    sender: str
    first: int
    last: int
    since: datetime

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

    def __init__(self, *, span: int = 65_536, max_gaps: int = 4_096) -> None:
        self.span = span
        self.max_gaps = max_gaps
        self._senders: dict[str, _Sender] = {}

    def check(self, sender: str, seq: int) -> SeqVerdict:
        """Whether ``seq`` from ``sender`` would be new. Changes nothing."""
        state = self._senders.get(sender)
        if state is None:
            return SeqVerdict.NEW
        if seq > state.top:
            return SeqVerdict.JUMP if seq - state.top > self.span else SeqVerdict.NEW
        if seq < state.floor:
            return SeqVerdict.TOO_OLD
        return SeqVerdict.NEW if self._find(state, seq) is not None else SeqVerdict.DUPLICATE

    def commit(self, sender: str, seq: int, now: datetime) -> None:
        """Record ``seq`` as received. Call only after ``check`` said NEW."""
        state = self._senders.get(sender)
        if state is None:
            floor = max(1, seq - self.span)
            state = self._senders[sender] = _Sender(top=seq, floor=floor)
            if seq > floor:
                state.missing.append([floor, seq - 1, now])
        elif seq > state.top:
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
        """Missing ranges, oldest sender first; with ``now``, only those older than ``grace``."""
        out = []
        # Snapshots (each list() runs without a thread switch): a client's ticker
        # reads gaps while its committer commits, which changed the dict mid-loop.
        for sender, state in list(self._senders.items()):
            for first, last, since in list(state.missing):
                if now is None or since + grace <= now:
                    out.append(Gap(sender, first, last, since))
        return out

    def senders(self) -> list[str]:
        """Every sender heard from."""
        return list(self._senders)

    def top(self, sender: str) -> int:
        """The highest sequence number seen from ``sender`` (0 if none)."""
        state = self._senders.get(sender)
        return 0 if state is None else state.top

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data, for a client to persist."""
        return {
            s: {"top": st.top, "floor": st.floor, "missing": [list(r) for r in st.missing]}
            for s, st in self._senders.items()
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Load state written by ``snapshot``."""
        self._senders = {
            s: _Sender(v["top"], v["floor"], [list(r) for r in v["missing"]])
            for s, v in data.items()
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
