"""Shared building blocks of the wire models: the base model and field types."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["Digest", "MessageId", "ShortText", "Timestamp", "WireModel", "whole_seconds"]


class WireModel(BaseModel):
    """Base of every model that travels on the wire.

    Frozen and closed (``extra="forbid"``) so a decoded message is exactly what
    was signed; strict so that no coercion (``"1"`` to 1, 1 to ``True``) can
    smuggle a value past validation. Field order is the positional wire order:
    new fields go at the end, as optional.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        ser_json_bytes="hex",
        val_json_bytes="hex",
    )


_ZERO = timedelta(0)
_QUARTER = timedelta(minutes=15)
_MAX_OFFSET = timedelta(hours=15)


def whole_seconds(value: datetime) -> datetime:
    """Validate a wire time: second precision, UTC offset a whole quarter hour."""
    offset = value.utcoffset() or _ZERO
    if offset % _QUARTER:
        raise ValueError(f"UTC offset {offset} is not a whole quarter hour")
    if abs(offset) > _MAX_OFFSET:
        raise ValueError(f"UTC offset {offset} is beyond +/-15 hours")
    # A decoded wire time has no microseconds: no copy to make (runs on every receipt).
    return value.replace(microsecond=0) if value.microsecond else value


#: A timezone-aware time, kept to the second with its UTC offset (the wire keeps both).
Timestamp = Annotated[AwareDatetime, AfterValidator(whole_seconds)]
#: A 16-byte message id (random, assigned by the sender).
MessageId = Annotated[bytes, Field(min_length=16, max_length=16)]
#: A SHA-256 digest.
Digest = Annotated[bytes, Field(min_length=32, max_length=32)]

#: A short label such as a place, a substance or a media type.
ShortText = Annotated[str, Field(min_length=1, max_length=160)]
