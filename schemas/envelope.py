"""The signed envelope: one msgpack array, then a 64-byte Ed25519 signature.

Byte layout (docs/design.md has the reasoning)::

    wire   = signed || signature                   signature: 64 bytes, Ed25519
    signed = msgpack array of 13:
             [version, kind, sender, key_id, epoch, seq, issued, tz, expires,
              msg_id, scope, coding, body]

    version  int    format version, 2
    kind     int    Kind (alert, incident, ...)
    sender   str    node id, or a country code for its root's trust messages
    key_id   bin 8  first 8 bytes of SHA-256 of the signer's Ed25519 public key
    epoch    int    the sending outbox's random incarnation, 1..2^63-1 (0 for trust)
    seq      int    sequence number within (sender, epoch), 1, 2, 3, ... never reused
    issued   int    Unix seconds; tz: the sender's UTC offset in quarter hours
    expires  int    Unix seconds
    msg_id   bin 16 random message id
    scope    str    audience: all, country:kh, region:NAME, node:ID, bulletin:ID,...
    coding   int    BodyCoding of body (plain msgpack or dictionary DEFLATE)
    body     bin    the coded body (codec.py)

The signature covers ``signed`` exactly as received: a receiver verifies those
bytes, then decodes; it never re-encodes anything to verify it. The header is
read (strictly, with limits) before verification only to find the key; the
body is inflated and decoded only after the signature holds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas.base import WireModel
from schemas.codec import pack, unpack_model, unpack_strict
from schemas.compression import BodyCoding, compress, decompress
from schemas.errors import DecodeError, EncodeError, UnsupportedError
from schemas.ids import Scope, ScopeKind, is_country, is_node_id
from schemas.kinds import Kind
from schemas.messages import Alert, Bulletin, Incident, Receipt
from schemas.seal import Opened, Opener, RecipientKey, SealedBody, Unopened, pack_context, seal_body
from schemas.trend import TrendSummary
from schemas.trust import Keyset, Revocation

__all__ = [
    "BODY_TYPES",
    "FORMAT_VERSION",
    "MAX_BODY",
    "MAX_ENVELOPE",
    "MAX_EPOCH",
    "SEALABLE",
    "SIGNATURE_SIZE",
    "Header",
    "Sealed",
    "Signer",
    "key_id_of",
    "open_envelope",
    "seal",
]

FORMAT_VERSION = 2
SIGNATURE_SIZE = 64
MAX_ENVELOPE = 256 * 1024
MAX_BODY = 256 * 1024
_QUARTER = timedelta(minutes=15)
_MAX_SEQ = 2**63 - 1
MAX_EPOCH = 2**63 - 1

BODY_TYPES: dict[Kind, type[WireModel]] = {
    Kind.ALERT: Alert,
    Kind.INCIDENT: Incident,
    Kind.BULLETIN: Bulletin,
    Kind.RECEIPT: Receipt,
    Kind.KEYSET: Keyset,
    Kind.REVOCATION: Revocation,
    Kind.TREND: TrendSummary,
}
_TRUST_KINDS = (Kind.KEYSET, Kind.REVOCATION)
#: Kinds whose body may be sealed for named recipients (schemas/seal.py).
SEALABLE = (Kind.ALERT, Kind.INCIDENT, Kind.BULLETIN)


def key_id_of(public_key: bytes) -> bytes:
    """The 8-byte id of a raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).digest()[:8]


@dataclass(frozen=True, slots=True)
class Signer:
    """A node's (or a root's) signing identity: name, key id and private key."""

    sender: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return self.private_key.public_key().public_bytes_raw()

    @property
    def key_id(self) -> bytes:
        """The key id receivers look the key up by."""
        return key_id_of(self.public_key)


@dataclass(frozen=True, slots=True)
class Header:
    """The signed header of an envelope, parsed and validated."""

    version: int
    kind: Kind
    sender: str
    key_id: bytes
    epoch: int
    seq: int
    issued: datetime
    expires: datetime
    msg_id: bytes
    scope: Scope
    coding: int


@dataclass(frozen=True, slots=True)
class Sealed:
    """An envelope whose header is parsed but whose signature is not yet checked."""

    header: Header
    signed: bytes
    signature: bytes
    body: bytes

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        """True if the signature over the received bytes holds for ``public_key``."""
        try:
            public_key.verify(self.signature, self.signed)
        except InvalidSignature:
            return False
        return True

    @property
    def is_sealed(self) -> bool:
        """True if the body is sealed for named recipients (coding 2)."""
        return self.header.coding == BodyCoding.SEALED_V1

    def decode_body(self) -> WireModel:
        """Inflate and decode the body as the header's kind. Raises ``DecodeError``.

        A sealed body decodes to its ``SealedBody`` (recipients and ciphertext),
        which needs no key: ``open_body`` reads what is inside.
        """
        if self.is_sealed:
            if self.header.kind not in SEALABLE:
                raise DecodeError(f"a {self.header.kind.label} is never sealed", "body")
            return unpack_model(SealedBody, self.body, max_len=MAX_BODY)
        plain = decompress(self.header.coding, self.body, max_len=MAX_BODY)
        return unpack_model(BODY_TYPES[self.header.kind], plain, max_len=MAX_BODY)

    def seal_context(self) -> bytes:
        """The header fields bound into the seal's ``info``, canonically encoded."""
        h = self.header
        return pack_context(_context_fields(h))

    def open_body(self, opener: Opener, sealed_body: SealedBody | None = None) -> WireModel:
        """The body as ``opener``'s node may read it: the decoded model if it is not
        sealed or opens, else an ``Unopened`` saying why. Raises ``DecodeError`` only
        for an envelope body that does not parse (checked on receipt already)."""
        body = sealed_body if sealed_body is not None else self.decode_body()
        if not isinstance(body, SealedBody):
            return body
        opened = opener.open(body, self.seal_context())
        if not isinstance(opened, Opened):
            return opened
        try:
            if opened.coding == BodyCoding.SEALED_V1:
                raise DecodeError("a sealed body inside a sealed body")
            plain = decompress(opened.coding, opened.coded, max_len=MAX_BODY)
            return unpack_model(BODY_TYPES[self.header.kind], plain, max_len=MAX_BODY)
        except DecodeError as exc:
            return Unopened(recipients=tuple(body.nodes), reason=f"opened, but unreadable: {exc}")


def _context_fields(h: Header) -> list[Any]:
    offset = h.issued.utcoffset() or timedelta(0)
    return [
        h.version,
        int(h.kind),
        h.sender,
        h.key_id,
        h.epoch,
        h.seq,
        int(h.issued.timestamp()),
        offset // _QUARTER,
        int(h.expires.timestamp()),
        h.msg_id,
        str(h.scope),
        h.coding,
    ]


def seal(
    signer: Signer,
    body: WireModel,
    *,
    seq: int,
    scope: Scope,
    issued: datetime,
    expires: datetime,
    msg_id: bytes | None = None,
    epoch: int | None = None,
    seal_for: Sequence[RecipientKey] | None = None,
) -> bytes:
    """Encode ``body`` in a signed envelope. Raises ``EncodeError`` for values the wire refuses.

    With ``seal_for``, the body is sealed for those recipients (schemas/seal.py)
    and then signed: the signature covers the sealed bytes, so anyone can check
    it and the recipient list, and only the recipients can read the body.

    ``epoch`` is the sending outbox's incarnation (``Outbox.epoch``): sequence
    numbers count within it. Trust messages always carry 0; a node message left
    without one gets 1, which only tests and one-off tools should rely on.
    """
    kind = next((k for k, t in BODY_TYPES.items() if isinstance(body, t)), None)
    if kind is None:
        raise EncodeError(f"{type(body).__name__} is not a message kind")
    trust = kind in _TRUST_KINDS
    if epoch is None:
        epoch = 0 if trust else 1
    if (epoch != 0) if trust else not 1 <= epoch <= MAX_EPOCH:
        raise EncodeError(f"epoch {epoch}: trust messages use 0, node messages 1..2^63-1")
    msg_id = os.urandom(16) if msg_id is None else msg_id
    offset = issued.utcoffset()
    if offset is None or expires.utcoffset() is None:
        raise EncodeError("issued and expires must be timezone-aware")
    if offset % _QUARTER or not 1 <= seq <= _MAX_SEQ or len(msg_id) != 16 or expires < issued:
        raise EncodeError(
            "header out of range: seq 1..2^63-1, 16-byte msg id, whole-quarter-hour "
            "UTC offset, expires not before issued"
        )
    plain = pack(body)
    if len(plain) > MAX_BODY:
        # Refused here, not by every receiver (each would drop it as too large).
        raise EncodeError(
            f"the {kind.label} body is {len(plain):,} bytes, over the {MAX_BODY:,}-byte "
            "limit receivers accept: send less in one message (a keyset holds about "
            "1,400 nodes)"
        )
    coding, coded = compress(plain)
    if seal_for is not None and kind not in SEALABLE:
        raise EncodeError(f"a {kind.label} is never sealed")
    inner = coding
    if seal_for is not None:
        coding = BodyCoding.SEALED_V1
    header = [
        FORMAT_VERSION,
        int(kind),
        signer.sender,
        signer.key_id,
        epoch,
        seq,
        int(issued.timestamp()),
        offset // _QUARTER,
        int(expires.timestamp()),
        msg_id,
        str(scope),
        int(coding),
        coded,
    ]
    if seal_for is not None:
        # The header without its body is what the seal binds (seal_context on receipt).
        context = pack_context(header[:-1])
        header[-1] = pack(seal_body(coded, int(inner), seal_for, context))
    signed = _packb(header)
    if len(signed) + SIGNATURE_SIZE > MAX_ENVELOPE:
        raise EncodeError(f"message is {len(signed)} bytes, over the {MAX_ENVELOPE}-byte limit")
    return signed + signer.private_key.sign(signed)


def _packb(value: list[Any]) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(f"cannot encode header: {exc}") from None


def _field(value: Any, kind: type, name: str) -> Any:
    if type(value) is not kind:
        raise DecodeError(f"expected {kind.__name__}, got {type(value).__name__}", f"header.{name}")
    return value


def _time(seconds: int, tz: timezone, name: str) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC).astimezone(tz)
    except (OverflowError, OSError, ValueError):
        raise DecodeError(f"time {seconds} is out of range", f"header.{name}") from None


def open_envelope(data: bytes) -> Sealed:
    """Split and parse an envelope without trusting it. Raises ``DecodeError``.

    The caller must ``verify`` the result before acting on anything in it.
    """
    if len(data) > MAX_ENVELOPE:
        raise DecodeError(f"{len(data)} bytes is over the {MAX_ENVELOPE}-byte limit")
    if len(data) <= SIGNATURE_SIZE:
        raise DecodeError(f"{len(data)} bytes is too short for a signed envelope")
    signed, signature = data[:-SIGNATURE_SIZE], data[-SIGNATURE_SIZE:]
    fields = unpack_strict(signed, max_len=MAX_ENVELOPE)
    if type(fields) is not tuple or len(fields) < 1:
        raise DecodeError("not an envelope (expected a msgpack array)")
    version = _field(fields[0], int, "version")
    if version > FORMAT_VERSION:
        raise UnsupportedError(
            f"format version {version} is newer than this reader ({FORMAT_VERSION}): "
            "upgrade blo-alert"
        )
    if version != FORMAT_VERSION:
        raise UnsupportedError(
            f"format version {version} predates per-outbox epochs and is no longer read: "
            f"the sender must upgrade to blo-alert format {FORMAT_VERSION}"
        )
    if len(fields) != 13:
        raise DecodeError(f"envelope has {len(fields)} fields, expected 13")
    (
        _,
        kind_v,
        sender,
        key_id,
        epoch,
        seq,
        issued,
        tz_q,
        expires,
        msg_id,
        scope_s,
        coding,
        body,
    ) = fields
    try:
        kind = Kind(_field(kind_v, int, "kind"))
    except ValueError:
        raise DecodeError(f"unknown message kind {kind_v}", "header.kind") from None
    _field(sender, str, "sender")
    trust = kind in _TRUST_KINDS
    if not (is_country(sender) if trust else is_node_id(sender)):
        raise DecodeError(f"malformed sender {sender[:60]!r}", "header.sender")
    if len(_field(key_id, bytes, "key_id")) != 8 or len(_field(msg_id, bytes, "msg_id")) != 16:
        raise DecodeError("key id must be 8 bytes and message id 16", "header")
    _field(epoch, int, "epoch")
    if (epoch != 0) if trust else not 1 <= epoch <= MAX_EPOCH:
        raise DecodeError(f"epoch {epoch} is out of range for a {kind.label}", "header.epoch")
    if not 1 <= _field(seq, int, "seq") <= _MAX_SEQ:
        raise DecodeError(f"sequence number {seq} is out of range", "header.seq")
    if not -60 <= _field(tz_q, int, "tz") <= 60:
        raise DecodeError(f"UTC offset {tz_q} quarter hours is out of range", "header.tz")
    tz = timezone(tz_q * _QUARTER)
    issued_t = _time(_field(issued, int, "issued"), tz, "issued")
    expires_t = _time(_field(expires, int, "expires"), tz, "expires")
    if expires_t < issued_t:
        raise DecodeError("expires before it was issued", "header.expires")
    try:
        scope = Scope.parse(_field(scope_s, str, "scope"))
    except ValueError as exc:
        raise DecodeError(str(exc), "header.scope") from None
    if trust and (scope.kind is not ScopeKind.COUNTRY or scope.target != sender):
        raise DecodeError("a trust message must be scoped to its own country", "header.scope")
    header = Header(
        version=version,
        kind=kind,
        sender=sender,
        key_id=key_id,
        epoch=epoch,
        seq=seq,
        issued=issued_t,
        expires=expires_t,
        msg_id=msg_id,
        scope=scope,
        coding=_field(coding, int, "coding"),
    )
    return Sealed(header, signed, signature, _field(body, bytes, "body"))
