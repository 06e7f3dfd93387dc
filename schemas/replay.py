"""Replay and resend requests: how the ends repair what a broker lost.

A node asks the archive for the envelopes of one sender's outbox (its
``epoch``), sequence numbers ``first``..``last``, on ``blo/request/<node>``;
the archive answers with the original signed envelopes on ``blo/replay/<node>``.
The request is not signed: the broker's ACL lets only that node publish on its
request topic, and the archive serves only what that node may read, so a
forged request gains nothing.

When the archive itself sees a gap in a sender's sequence (a broker crashed
after acknowledging a message it never forwarded), it asks the sender to
publish those numbers again on ``blo/resend/<sender>``; the sender's durable
outbox answers (the receivers' dedup makes a repeat harmless).

A request without an epoch is a catch-up: "everything of this sender I do not
hold", where ``held`` lists the top sequence number the asker holds of each
epoch it knows. It finds a lost tail, and the first messages of an outbox the
asker has never heard of (a reinstalled tablet).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import Field, model_validator

from schemas.base import WireModel
from schemas.codec import pack, unpack_model
from schemas.ids import NodeId
from schemas.kinds import Role
from schemas.trust import NodeEntry
from schemas.window import Gap, ReplayWindow, Stream

__all__ = [
    "MAX_REQUEST",
    "Held",
    "ReplayRequest",
    "catch_up_request",
    "catch_up_senders",
    "decode_request",
    "encode_request",
    "gap_requests",
]

MAX_REQUEST = 1024
MAX_ASK = 256  # sequence numbers per gap request (the rest is asked next period)
MAX_HELD = 16
_Seq = Annotated[int, Field(ge=1, lt=2**63)]
_Epoch = Annotated[int, Field(ge=1, lt=2**63)]
_Top = Annotated[int, Field(ge=0, lt=2**63)]


class Held(WireModel):
    """The newest number an asker holds of one epoch of the sender."""

    epoch: _Epoch
    top: _Top


class ReplayRequest(WireModel):
    """Numbers ``first``..``last`` (None: up to the newest) of ``sender``'s ``epoch``.

    With ``epoch`` None: every epoch of ``sender``, after ``held``'s top for the
    epochs it lists and from ``first`` for the others.
    """

    sender: NodeId
    first: _Seq
    last: _Seq | None = None
    epoch: _Epoch | None = None
    held: tuple[Held, ...] = Field(default=(), max_length=MAX_HELD)

    @model_validator(mode="after")
    def _ordered(self) -> ReplayRequest:
        if self.last is not None and self.last < self.first:
            raise ValueError(f"range {self.first}..{self.last} is empty")
        if self.epoch is not None and self.held:
            raise ValueError("a range of one epoch lists no held tops")
        if self.epoch is None and self.last is not None:
            raise ValueError("a range with a last number names its epoch")
        return self

    def start(self, epoch: int) -> int | None:
        """The first number wanted of ``epoch``, or None if this request does not cover it."""
        if self.epoch is not None:
            return self.first if epoch == self.epoch else None
        tops = {h.epoch: h.top for h in self.held}
        return tops.get(epoch, self.first - 1) + 1


def encode_request(request: ReplayRequest) -> bytes:
    """The request's bytes."""
    return pack(request)


def decode_request(data: bytes) -> ReplayRequest:
    """Read a request. Raises ``DecodeError``."""
    return unpack_model(ReplayRequest, data, max_len=MAX_REQUEST)


def gap_requests(gaps: Iterable[Gap], most: int = MAX_ASK) -> dict[Stream, tuple[int, int]]:
    """The request (first, last) per stream for its ``gaps``, oldest first.

    At most ``most`` numbers a request, and at least half of them missing: one
    span over all of a stream's gaps replayed mostly messages already held, too
    long for a link cut every few seconds (the full soak on amqtt never caught
    up). What is left is asked in the next period.
    """
    spans: dict[Stream, tuple[int, int, int]] = {}
    for gap in gaps:
        key = (gap.sender, gap.epoch)
        low, high, missing = spans.get(key, (gap.first, 0, 0))
        last = min(gap.last, low + most - 1)
        count = missing + last - gap.first + 1
        if gap.first > last or (high and last - low + 1 > 2 * count):
            continue
        spans[key] = (low, last, count)
    return {key: (first, last) for key, (first, last, _) in spans.items()}


def catch_up_request(sender: str, window: ReplayWindow) -> ReplayRequest:
    """Everything of ``sender`` after what ``window`` holds, in every epoch (new ones too)."""
    tops = list(window.streams(sender).items())[-MAX_HELD:]
    held = tuple(Held(epoch=epoch, top=top) for (_, epoch), top in tops)
    return ReplayRequest(sender=sender, first=1, held=held)


def catch_up_senders(me: NodeEntry | None, nodes: Iterable[NodeEntry]) -> set[str]:
    """Whom ``me`` asks the archive about at a catch-up, besides senders already heard.

    Everyone who may address it: HQs and coordinators (alerts), its counterparts
    either way (bulletins: each country's PKI names counterparts on its own), and
    every office for an HQ, an analyst or a coordinator (incidents from its own
    country, and receipts, which come from across a border too for an alert that
    crossed one). Senders heard from alone missed an office whose first message
    came before this node's first subscription, or whose every message a power
    cut took from the inbox: no broker queued it again, and nothing showed a gap.
    The archive answers only what the node may read, so asking too widely costs
    a few bytes, never a disclosure.
    """
    if me is None:
        return set()
    wanted: set[str] = set()
    for entry in nodes:
        if entry.node == me.node:
            continue
        office = entry.role is Role.BLO
        if (
            entry.role in (Role.HQ, Role.REGIONAL)
            or entry.node in me.counterparts
            or me.node in entry.counterparts
            or (office and me.role in (Role.HQ, Role.OBSERVER, Role.REGIONAL))
        ):
            wanted.add(entry.node)
    return wanted
