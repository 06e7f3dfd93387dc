"""Sealing: a message body encrypted for named recipients with HPKE (RFC 9180).

Sans-I/O: bytes and keys in, a ``SealedBody`` or an ``Opened`` / ``Unopened``
result out; nothing here reads a clock, a socket or a file, and opening never
raises for bad input. cryptography's exceptions are translated in two
functions (``_unwrap`` and ``_decrypt``) and nowhere else.

Construction (docs/wire.md, section 7)::

    cek      32 random bytes, one per message
    info     LABEL || context || msgpack([[node, key_id], ...])   (context: the
             envelope's header fields, envelope.py; the recipients in order)
    wrap     HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
             ChaCha20-Poly1305: single-shot encrypt of cek to the recipient's
             X25519 key with ``info``: enc (32) || ct (32) || tag (16) = 80 bytes
    commit   SHA-256(COMMIT_LABEL || cek): every recipient checks it, so no two
             recipients can be handed different content keys (ChaCha20-Poly1305
             alone is not key-committing)
    content  ChaCha20-Poly1305(cek, nonce = 12 zero bytes, aad = info) over
             inner coding (1 byte) || coded body; the key is used once, so a
             fixed nonce is safe

Both the wraps and the content are bound to ``info``, which holds the sender,
its key id, the message id, the scope, the format and every recipient: a
sealed body cut out of one envelope and signed into another (a different
sender, message or audience) opens for no one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from pydantic import Field

from schemas.base import Digest, WireModel
from schemas.errors import EncodeError
from schemas.ids import NodeId

__all__ = [
    "COMMIT_LABEL",
    "LABEL",
    "MAX_RECIPIENTS",
    "SEAL_VERSION",
    "WRAP_SIZE",
    "Opened",
    "Opener",
    "RecipientKey",
    "SealedBody",
    "SealedRecipient",
    "Unopened",
    "open_body",
    "pack_context",
    "seal_body",
    "seal_info",
    "seal_key_id",
]

SEAL_VERSION = 1
LABEL = b"blo-alert seal v1\x00"
COMMIT_LABEL = b"blo-alert seal commit v1\x00"
#: HPKE enc (32) + wrapped 32-byte content key (32) + Poly1305 tag (16).
WRAP_SIZE = 80
#: Bounded so one message cannot ask a receiver for thousands of list checks.
MAX_RECIPIENTS = 1000
_NONCE = bytes(12)
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def seal_key_id(public_key: bytes) -> bytes:
    """The 8-byte id of a raw 32-byte X25519 public key (as for signing keys)."""
    return hashlib.sha256(public_key).digest()[:8]


class SealedRecipient(WireModel):
    """One recipient of a sealed body: the node, its X25519 key id, the wrapped key."""

    node: NodeId
    key_id: Annotated[bytes, Field(min_length=8, max_length=8)]
    wrap: Annotated[bytes, Field(min_length=WRAP_SIZE, max_length=WRAP_SIZE)]


class SealedBody(WireModel):
    """A sealed body as it travels (coding 2): readable by anyone, opened by recipients.

    Everything a broker or the archive must judge (who it is for, under which
    keys) is here in clear; only ``ciphertext`` is secret.
    """

    version: Annotated[int, Field(ge=SEAL_VERSION, le=SEAL_VERSION)]
    recipients: Annotated[
        tuple[SealedRecipient, ...], Field(min_length=1, max_length=MAX_RECIPIENTS)
    ]
    commit: Digest
    ciphertext: Annotated[bytes, Field(min_length=1 + 16)]

    @property
    def nodes(self) -> list[str]:
        """The recipients' node ids, in order."""
        return [r.node for r in self.recipients]


@dataclass(frozen=True, slots=True)
class RecipientKey:
    """A recipient's current X25519 public key, as the sender found it in a keyset."""

    node: str
    key_id: bytes
    public_key: bytes


@dataclass(frozen=True, slots=True)
class Opened:
    """The recipient's plaintext: the inner body coding and the coded body."""

    coding: int
    coded: bytes

    ok = True


class Unopened(WireModel):
    """What a node holds of a sealed message it cannot read, and why.

    Stands where the body would be (an inbox, ``blo-sub show``); never on the wire.
    """

    recipients: tuple[str, ...]
    reason: str


def seal_info(context: bytes, recipients: Sequence[tuple[str, bytes]]) -> bytes:
    """The HPKE ``info`` (and content AAD): the label, the header context, the recipients."""
    pairs = [[node, key_id] for node, key_id in recipients]
    return LABEL + context + bytes(msgpack.packb(pairs, use_bin_type=True))


def _commit(cek: bytes) -> bytes:
    return hashlib.sha256(COMMIT_LABEL + cek).digest()


def seal_body(
    plaintext: bytes, coding: int, recipients: Sequence[RecipientKey], context: bytes
) -> SealedBody:
    """Encrypt ``coding || plaintext`` under a fresh content key wrapped for each recipient.

    Raises ``EncodeError`` for no recipients, repeated ones or an unusable key.
    """
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise EncodeError(f"a sealed message needs 1 to {MAX_RECIPIENTS} recipients")
    if len({r.node for r in recipients}) != len(recipients):
        raise EncodeError("a recipient is listed twice")
    info = seal_info(context, [(r.node, r.key_id) for r in recipients])
    cek = os.urandom(32)
    wrapped = []
    for r in recipients:
        try:
            public = X25519PublicKey.from_public_bytes(r.public_key)
            wrap = _SUITE.encrypt(cek, public, info=info)
        except ValueError as exc:
            raise EncodeError(f"the encryption key of {r.node} is unusable: {exc}") from None
        wrapped.append(SealedRecipient(node=r.node, key_id=r.key_id, wrap=wrap))
    content = ChaCha20Poly1305(cek).encrypt(_NONCE, bytes([coding]) + plaintext, info)
    return SealedBody(
        version=SEAL_VERSION, recipients=tuple(wrapped), commit=_commit(cek), ciphertext=content
    )


def _unwrap(wrap: bytes, key: X25519PrivateKey, info: bytes) -> bytes | None:
    try:
        return _SUITE.decrypt(wrap, key, info=info)
    except (InvalidTag, ValueError):
        return None


def _decrypt(cek: bytes, ciphertext: bytes, info: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(cek).decrypt(_NONCE, ciphertext, info)
    except (InvalidTag, ValueError):
        return None


def open_body(
    body: SealedBody, context: bytes, me: str, keys: Mapping[bytes, X25519PrivateKey]
) -> Opened | Unopened:
    """Open ``body`` as node ``me`` holding ``keys`` (key id -> private key). Never raises."""
    nodes = tuple(body.nodes)

    def no(reason: str) -> Unopened:
        return Unopened(recipients=nodes, reason=reason)

    mine = next((r for r in body.recipients if r.node == me), None)
    if mine is None:
        return no(f"sealed for {', '.join(nodes)}; {me} is not a recipient and cannot read it")
    key = keys.get(mine.key_id)
    if key is None:
        return no(
            f"sealed for {me}'s encryption key {mine.key_id.hex()}, which this bundle does "
            "not hold: copy the node's current bundle from its PKI (bundles/NODE.json)"
        )
    info = seal_info(context, [(r.node, r.key_id) for r in body.recipients])
    cek = _unwrap(mine.wrap, key, info)
    if cek is None or len(cek) != 32:
        return no(f"the content key wrapped for {me} does not open: the sender sealed it wrongly")
    if _commit(cek) != body.commit:
        return no(f"the content key wrapped for {me} is not the one committed to for everyone")
    plain = _decrypt(cek, body.ciphertext, info)
    if plain is None or not plain:
        return no("the sealed content does not decrypt: the sender sealed it wrongly")
    return Opened(plain[0], plain[1:])


@dataclass(frozen=True)
class Opener:
    """A node's X25519 private keys (current and rotated-out), ready to open what it receives."""

    node: str
    keys: Mapping[bytes, X25519PrivateKey]

    @classmethod
    def from_keys(cls, node: str, keys: Sequence[X25519PrivateKey]) -> Opener:
        """An opener over ``keys``, indexed by their key ids."""
        index = {seal_key_id(k.public_key().public_bytes_raw()): k for k in keys}
        return cls(node, index)

    def open(self, body: SealedBody, context: bytes) -> Opened | Unopened:
        """``open_body`` as this node."""
        return open_body(body, context, self.node, self.keys)


def pack_context(fields: Sequence[Any]) -> bytes:
    """The canonical (shortest-form msgpack) bytes of header ``fields``, for ``info``."""
    return msgpack.packb(list(fields), use_bin_type=True)  # type: ignore[no-any-return]
