"""Body codings: plain msgpack, or raw DEFLATE primed with a shipped dictionary.

DEFLATE with a preset dictionary (RFC 1950's FDICT, zlib's ``zdict``) lets even
a 500-byte message refer back to domain words it never spelled out. The
dictionary is the frozen vocabulary in ``data/vocabulary-v1.txt`` with its
Khmer coded exactly as textcode.py codes message text, so Khmer words in a
message match Khmer words in the dictionary byte for byte.

The sender tries each coding and keeps the shortest; the coding id travels in
the signed header. Inflation is bounded: a body that would grow past the
limit is refused before it is fully expanded (no decompression bombs).
"""

from __future__ import annotations

import zlib
from enum import IntEnum
from functools import cache
from importlib import resources

from schemas.errors import DecodeError, UnsupportedError
from schemas.textcode import encode_text

__all__ = ["BodyCoding", "compress", "decompress", "dictionary"]


class BodyCoding(IntEnum):
    """How the body bytes are coded. The value is on the wire: append only."""

    MSGPACK = 0
    DEFLATE_V1 = 1
    #: The body is a ``schemas.seal.SealedBody``; its plaintext names its own coding.
    SEALED_V1 = 2


@cache
def dictionary(version: int = 1) -> bytes:
    """The preset dictionary of ``version``: vocabulary words, Khmer window-coded."""
    text = resources.files("schemas").joinpath(f"data/vocabulary-v{version}.txt").read_text("utf-8")
    parts: list[bytes] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        coded = encode_text(line)
        # Drop the window id: inside a message it precedes each text, not each word.
        parts.append(line.encode("ascii") if coded is None else coded[1:])
    return b" ".join(parts)


def _deflate(data: bytes, zdict: bytes) -> bytes:
    engine = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=zdict)
    return engine.compress(data) + engine.flush()


def compress(data: bytes) -> tuple[BodyCoding, bytes]:
    """The shortest coding of ``data`` and the coded bytes."""
    deflated = _deflate(data, dictionary(1))
    if len(deflated) < len(data):
        return BodyCoding.DEFLATE_V1, deflated
    return BodyCoding.MSGPACK, data


def decompress(coding: int, data: bytes, *, max_len: int) -> bytes:
    """The plain body; ``DecodeError`` if malformed or larger than ``max_len``."""
    if coding == BodyCoding.MSGPACK:
        return data
    if coding != BodyCoding.DEFLATE_V1:
        raise UnsupportedError(f"unknown body coding {coding}: upgrade blo-alert to read it")
    engine = zlib.decompressobj(-15, zdict=dictionary(1))
    try:
        out = engine.decompress(data, max_len)
    except zlib.error as exc:
        raise DecodeError(f"body is not valid DEFLATE data ({exc})") from None
    if engine.unconsumed_tail:
        raise DecodeError(f"body inflates past the limit of {max_len} bytes")
    if not engine.eof:
        raise DecodeError("body DEFLATE stream is truncated")
    if engine.unused_data:
        raise DecodeError("trailing bytes after the DEFLATE stream")
    return out
