"""Blobs cut into content-addressed chunks, each checkable on its own.

A blob (a photo's preview or full image) is cut into ``chunk_size`` pieces (8 KiB
by default; the last one may be shorter). The signed incident holds, per blob,
a ``BlobRef``: the whole file's SHA-256 and size, the media type, the chunk size
and the Merkle root over the chunks (RFC 9162's tree: leaf ``H(0x00 || chunk)``,
node ``H(0x01 || left || right)``, split at the largest power of two). A chunk
travels as a ``Chunk`` with its audit path, so a receiver checks it against the
signed root alone, whatever else it holds, and knows which index it is (the
path binds the position). Why a root and not a list of chunk hashes: see
docs/design.md, "Photos".

Nothing here touches a socket, a file or the clock. Checking a chunk from the
network returns ``Verified`` or ``Refused`` with a reason; it never raises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from photos.errors import BlobError
from schemas.base import Digest, WireModel
from schemas.codec import pack, unpack_model
from schemas.errors import BloError
from schemas.messages import BlobRef

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_FRAME",
    "Chunk",
    "ChunkReason",
    "NeedMap",
    "Refused",
    "Verified",
    "assemble",
    "audit_path",
    "chunk_count",
    "chunk_span",
    "describe",
    "leaf_hash",
    "merkle_root",
    "read_chunk",
    "split",
    "verify_chunk",
]

#: 8 KiB: links of a few hundred kbit/s drop larger messages in other systems, and the
#: proof (32 bytes a tree level) stays a few per cent of a chunk.
DEFAULT_CHUNK_SIZE = 8 * 1024
_MAX_CHUNK = 64 * 1024
#: A chunk on the wire: the data, a 32-level proof at most, and msgpack's framing.
MAX_CHUNK_FRAME = _MAX_CHUNK + 33 * 34 + 64


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(data: bytes) -> bytes:
    """A chunk's address: SHA-256 of ``0x00 || data`` (the prefix keeps leaves and
    inner nodes apart, so a node cannot pose as a chunk)."""
    return _sha(b"\x00" + data)


def _node(left: bytes, right: bytes) -> bytes:
    return _sha(b"\x01" + left + right)


def chunk_count(size: int, chunk_size: int) -> int:
    """How many chunks a blob of ``size`` bytes has (at least one)."""
    return max(1, -(-size // chunk_size))


def chunk_span(ref: BlobRef, index: int) -> tuple[int, int]:
    """Where chunk ``index`` of ``ref`` starts in the blob, and how long it is."""
    start = index * ref.chunk_size
    return start, min(ref.chunk_size, ref.size - start)


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    # Bottom-up pairing, a lone last node carried up unchanged: the same tree as
    # RFC 9162's recursive split at the largest power of two below n.
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [_node(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        levels.append(above)
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash over leaf hashes (at least one)."""
    if not leaves:
        raise BlobError("a blob has at least one chunk")
    return _levels(leaves)[-1][0]


def audit_path(leaves: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """The sibling hashes from leaf ``index`` up to the root (RFC 9162 inclusion proof)."""
    return _paths(_levels(leaves), [index])[0]


def _paths(levels: list[list[bytes]], indices: Iterable[int]) -> list[tuple[bytes, ...]]:
    out = []
    for index in indices:
        path, i = [], index
        for level in levels[:-1]:
            sibling = i ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            i >>= 1
        out.append(tuple(path))
    return out


def _verify_path(leaf: bytes, index: int, n: int, path: Sequence[bytes], root: bytes) -> bool:
    # RFC 9162, 2.1.3.2: verifying an inclusion proof.
    if not 0 <= index < n:
        return False
    fn, sn, r = index, n - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# -- describing and cutting a blob ----------------------------------------------------


def _check_chunk_size(chunk_size: int) -> None:
    if not 1024 <= chunk_size <= _MAX_CHUNK:
        raise BlobError(f"chunk size {chunk_size} is outside 1024..{_MAX_CHUNK} bytes")


def _pieces(data: bytes, chunk_size: int) -> list[bytes]:
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]


def describe(data: bytes, media_type: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> BlobRef:
    """The signed description of ``data`` cut into ``chunk_size`` chunks."""
    return split(data, media_type, chunk_size)[0]


def split(
    data: bytes, media_type: str, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> tuple[BlobRef, tuple[Chunk, ...]]:
    """Cut ``data`` into chunks, each with its proof, and describe it. Raises ``BlobError``
    for an empty blob or a chunk size out of range."""
    _check_chunk_size(chunk_size)
    if not data:
        raise BlobError("an empty file cannot be sent as a blob")
    pieces = _pieces(data, chunk_size)
    levels = _levels([leaf_hash(p) for p in pieces])
    root = levels[-1][0]
    try:
        ref = BlobRef(
            sha256=_sha(data),
            size=len(data),
            media_type=media_type,
            chunk_size=chunk_size,
            merkle_root=root,
        )
    except ValueError as exc:  # pydantic's ValidationError: too large, bad media type
        raise BlobError(f"cannot describe a {len(data)}-byte {media_type!r} blob: {exc}") from None
    proofs = _paths(levels, range(len(pieces)))
    chunks = tuple(Chunk(root=root, index=i, proof=proofs[i], data=p) for i, p in enumerate(pieces))
    return ref, chunks


# -- one chunk on the wire ------------------------------------------------------------


class Chunk(WireModel):
    """One chunk as it travels: the blob's Merkle root, the chunk's index, its audit
    path and its bytes. ``encode``/``read_chunk`` are its positional msgpack form."""

    root: Digest
    index: Annotated[int, Field(ge=0, lt=1 << 20)]
    proof: Annotated[tuple[Digest, ...], Field(max_length=32)]
    data: Annotated[bytes, Field(min_length=1, max_length=_MAX_CHUNK)]

    def encode(self) -> bytes:
        """The chunk's wire bytes."""
        return pack(self)

    @property
    def address(self) -> bytes:
        """The chunk's content address (its leaf hash)."""
        return leaf_hash(self.data)


class ChunkReason(StrEnum):
    """Why a chunk was refused."""

    MALFORMED = "malformed"  # the bytes are not a chunk frame
    OTHER_BLOB = "other_blob"  # it names another blob's root
    BAD_INDEX = "bad_index"  # past the blob's last chunk
    BAD_LENGTH = "bad_length"  # not the length its index must have
    BAD_PROOF = "bad_proof"  # its bytes or proof do not lead to the signed root
    UNKNOWN_BLOB = "unknown_blob"  # no accepted message described its blob (store.py)
    BAD_FILE = "bad_file"  # the whole file did not re-hash to the signed SHA-256 (store.py)
    PRUNED = "pruned"  # its blob was dropped by the retention policy (store.py)


@dataclass(frozen=True, slots=True)
class Verified:
    """A chunk that matches the signed description."""

    chunk: Chunk


@dataclass(frozen=True, slots=True)
class Refused:
    """A chunk that does not; ``detail`` says what was seen."""

    reason: ChunkReason
    detail: str


def verify_chunk(chunk: Chunk, ref: BlobRef) -> Verified | Refused:
    """Check one chunk against the signed ``ref`` alone. Never raises."""
    if chunk.root != ref.merkle_root:
        return Refused(ChunkReason.OTHER_BLOB, f"chunk of blob {chunk.root.hex()[:16]}")
    n = chunk_count(ref.size, ref.chunk_size)
    if chunk.index >= n:
        return Refused(ChunkReason.BAD_INDEX, f"index {chunk.index} of a {n}-chunk blob")
    want = chunk_span(ref, chunk.index)[1]
    if len(chunk.data) != want:
        return Refused(
            ChunkReason.BAD_LENGTH, f"chunk {chunk.index} has {len(chunk.data)} bytes, not {want}"
        )
    if not _verify_path(leaf_hash(chunk.data), chunk.index, n, chunk.proof, ref.merkle_root):
        return Refused(ChunkReason.BAD_PROOF, f"chunk {chunk.index} does not match the root")
    return Verified(chunk)


def read_chunk(payload: bytes, ref: BlobRef) -> Verified | Refused:
    """Decode a chunk's wire bytes and check it against ``ref``. Never raises."""
    try:
        chunk = unpack_model(Chunk, payload, max_len=MAX_CHUNK_FRAME)
    except BloError as exc:
        return Refused(ChunkReason.MALFORMED, str(exc))
    return verify_chunk(chunk, ref)


# -- reassembly -----------------------------------------------------------------------


def assemble(ref: BlobRef, pieces: Mapping[int, bytes]) -> bytes:
    """Join every chunk of ``ref`` and re-hash the whole: the Merkle root and the file's
    SHA-256 must both match the signed description. Raises ``BlobError``."""
    n = chunk_count(ref.size, ref.chunk_size)
    missing = [i for i in range(n) if i not in pieces]
    if missing or len(pieces) != n:
        raise BlobError(
            f"blob {ref.sha256.hex()[:16]}: {len(missing)} of {n} chunks missing, "
            "ask for them again before assembling"
        )
    data = b"".join(pieces[i] for i in range(n))
    if len(data) != ref.size:
        raise BlobError(f"blob {ref.sha256.hex()[:16]}: {len(data)} bytes, not {ref.size}")
    if merkle_root([leaf_hash(pieces[i]) for i in range(n)]) != ref.merkle_root:
        raise BlobError(f"blob {ref.sha256.hex()[:16]}: chunks do not match the signed root")
    if _sha(data) != ref.sha256:
        # Every chunk matched the root, so the signed message itself is inconsistent.
        raise BlobError(
            f"blob {ref.sha256.hex()[:16]}: the file's SHA-256 is not the one signed; "
            "the sender described it wrongly, ask the sending office to send it again"
        )
    return data


# -- what a receiver still needs ------------------------------------------------------

_BITMAP = 0
_RANGES = 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(at, min(at + 4, len(data))):  # 4 bytes hold 2**28, past any index
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and i > at:
                raise BlobError("need map: a number is not in its shortest form")
            return value, i + 1
        shift += 7
    raise BlobError("need map: a number is cut short or too long")


class NeedMap:
    """Which of a blob's ``n`` chunks a receiver still needs (missing), as a bitmap.

    ``encode`` picks the shorter of two forms for a request: a tag byte 0 then the
    bitmap (bit ``i % 8`` of byte ``i // 8``), or a tag byte 1 then varint pairs
    (gap since the last run, run length) of missing chunks, which is a few bytes
    when what is missing is a tail after a cut.
    """

    __slots__ = ("_bits", "n")

    def __init__(self, n: int, missing: Iterable[int] = ()) -> None:
        if not 1 <= n <= 1 << 20:
            raise BlobError(f"need map: {n} chunks is outside 1..{1 << 20}")
        self.n = n
        bits = 0
        for i in missing:
            if not 0 <= i < n:
                raise BlobError(f"need map: chunk {i} is outside 0..{n - 1}")
            bits |= 1 << i
        self._bits = bits

    @classmethod
    def all_missing(cls, n: int) -> NeedMap:
        """Nothing held yet."""
        return cls(n, range(n))

    def missing(self) -> list[int]:
        """The indices still needed, in order."""
        bits, out, i = self._bits, [], 0
        while bits:
            if bits & 1:
                out.append(i)
            bits >>= 1
            i += 1
        return out

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and 0 <= index < self.n and bool(self._bits >> index & 1)

    def __len__(self) -> int:
        return self._bits.bit_count()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NeedMap) and (self.n, self._bits) == (other.n, other._bits)

    def __hash__(self) -> int:
        return hash((self.n, self._bits))

    def __repr__(self) -> str:
        return f"NeedMap(n={self.n}, missing={len(self)})"

    def held(self, index: int) -> None:
        """Mark chunk ``index`` as held."""
        if not 0 <= index < self.n:
            raise BlobError(f"need map: chunk {index} is outside 0..{self.n - 1}")
        self._bits &= ~(1 << index)

    def _runs(self) -> list[tuple[int, int]]:
        runs: list[tuple[int, int]] = []
        for i in self.missing():
            if runs and runs[-1][0] + runs[-1][1] == i:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((i, 1))
        return runs

    def encode(self) -> bytes:
        """The compact request form (see the class docstring)."""
        bitmap = bytes([_BITMAP]) + self._bits.to_bytes((self.n + 7) // 8, "little")
        ranges, end = bytearray([_RANGES]), 0
        for start, length in self._runs():
            ranges += _varint(start - end) + _varint(length)
            end = start + length
            if len(ranges) >= len(bitmap):
                return bitmap
        return bytes(ranges)

    @classmethod
    def decode(cls, data: bytes, n: int) -> NeedMap:
        """Read a request for a blob of ``n`` chunks, strictly. Raises ``BlobError``."""
        out = cls(n)
        if not data:
            raise BlobError("need map: empty")
        if data[0] == _BITMAP:
            if len(data) != 1 + (n + 7) // 8:
                raise BlobError(f"need map: a bitmap for {n} chunks has {(n + 7) // 8} bytes")
            bits = int.from_bytes(data[1:], "little")
            if bits >> n:
                raise BlobError(f"need map: asks for chunks past the last of {n}")
            out._bits = bits
            return out
        if data[0] != _RANGES:
            raise BlobError(f"need map: unknown form {data[0]}")
        at, end, bits = 1, 0, 0
        while at < len(data):
            gap, at = _read_varint(data, at)
            if at >= len(data):
                raise BlobError("need map: a run without its length")
            length, at = _read_varint(data, at)
            start = end + gap
            if length == 0 or (gap == 0 and end != 0) or start + length > n:
                raise BlobError(f"need map: run {start}+{length} is empty, joined or past {n}")
            bits |= ((1 << length) - 1) << start
            end = start + length
        out._bits = bits
        return out
