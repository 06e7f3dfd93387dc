"""Replay and resend requests: how the ends repair what a broker lost.

A node asks the archive for the envelopes of one sender, sequence numbers
``first``..``last``, on ``blo/request/<node>``; the archive answers with the
original signed envelopes on ``blo/replay/<node>``. The request is not signed:
the broker's ACL lets only that node publish on its request topic, and the
archive serves only what that node may read, so a forged request gains nothing.

When the archive itself sees a gap in a sender's sequence (a broker crashed
after acknowledging a message it never forwarded), it asks the sender to
publish those numbers again on ``blo/resend/<sender>``; the sender's durable
outbox answers (the receivers' dedup makes a repeat harmless).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from schemas.base import WireModel
from schemas.codec import pack, unpack_model
from schemas.ids import NodeId

__all__ = ["MAX_REQUEST", "ReplayRequest", "decode_request", "encode_request"]

MAX_REQUEST = 256
_Seq = Annotated[int, Field(ge=1, lt=2**63)]


class ReplayRequest(WireModel):
    """Sequence numbers ``first``..``last`` of ``sender`` (``last`` None: up to the newest)."""

    sender: NodeId
    first: _Seq
    last: _Seq | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ReplayRequest:
        if self.last is not None and self.last < self.first:
            raise ValueError(f"range {self.first}..{self.last} is empty")
        return self


def encode_request(request: ReplayRequest) -> bytes:
    """The request's bytes."""
    return pack(request)


def decode_request(data: bytes) -> ReplayRequest:
    """Read a request. Raises ``DecodeError``."""
    return unpack_model(ReplayRequest, data, max_len=MAX_REQUEST)
