"""Trust messages: a country's keyset and its revocation list, signed by its root.

The keyset is the node registry: every office's signing keys, role, regions
and cross-border counterparts. It is versioned (a receiver refuses a lower
version than it holds) and expires (a receiver warns when it runs on a stale
one). A node may list several keys with overlapping validity: that is how keys
rotate without a gap.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, model_validator

from schemas.base import Digest, Timestamp, WireModel
from schemas.codec import pack, unpack_model
from schemas.ids import CountryCode, NodeId, RegionName, country_of
from schemas.kinds import Role

__all__ = [
    "KeyEntry",
    "Keyset",
    "NodeEntry",
    "Revocation",
    "RevokedKey",
    "TrustRequest",
    "decode_trust_request",
    "encode_trust_request",
]

#: Key ids are the first 8 bytes of SHA-256 over the raw Ed25519 public key.
KeyId = Annotated[bytes, Field(min_length=8, max_length=8)]


class KeyEntry(WireModel):
    """One key of a node, valid from ``not_before`` to ``not_after``: an Ed25519 signing
    key in ``NodeEntry.keys``, an X25519 encryption key in ``NodeEntry.seal_keys``."""

    key_id: KeyId
    public_key: Annotated[bytes, Field(min_length=32, max_length=32)]
    not_before: Timestamp
    not_after: Timestamp

    def valid_at(self, when: datetime) -> bool:
        """True if ``when`` lies within the key's validity."""
        return self.not_before <= when <= self.not_after


class NodeEntry(WireModel):
    """A node of the registry: who it is, what it may do, and its keys."""

    node: NodeId
    role: Role
    regions: Annotated[tuple[RegionName, ...], Field(max_length=16)] = ()
    counterparts: Annotated[tuple[NodeId, ...], Field(max_length=16)] = ()
    keys: Annotated[tuple[KeyEntry, ...], Field(max_length=8)] = ()
    revoked: Timestamp | None = None
    #: SHA-256 of the node's current TLS client certificate (DER): the broker
    #: admits only this certificate, so a replaced tablet's old one is refused.
    tls_cert_sha256: Digest | None = None
    #: X25519 keys others seal messages to (schemas/seal.py), with validity like
    #: ``keys``; drawn apart from the signing keys, rotated and revoked like them
    #: (a ``RevokedKey`` may name one by its id). Appended: older keysets lack it.
    seal_keys: Annotated[tuple[KeyEntry, ...], Field(max_length=8)] = ()

    @property
    def country(self) -> str:
        """The node's country code."""
        return country_of(self.node)


class Keyset(WireModel):
    """A country's node registry, version ``version``, signed by its root."""

    country: CountryCode
    version: Annotated[int, Field(ge=1, lt=2**63)]
    issued: Timestamp
    expires: Timestamp
    nodes: Annotated[tuple[NodeEntry, ...], Field(max_length=2000)] = ()

    @model_validator(mode="after")
    def _nodes_belong_to_country(self) -> Keyset:
        seen: set[str] = set()
        for entry in self.nodes:
            if entry.country != self.country:
                raise ValueError(f"node {entry.node} does not belong to country {self.country}")
            if entry.node in seen:
                raise ValueError(f"node {entry.node} is listed twice")
            seen.add(entry.node)
        return self

    def node(self, node: str) -> NodeEntry | None:
        """The entry of ``node``, or None."""
        return next((e for e in self.nodes if e.node == node), None)


class RevokedKey(WireModel):
    """One revoked key (or a whole node when ``key_id`` is None)."""

    node: NodeId
    key_id: KeyId | None = None
    at: Timestamp
    reason: Annotated[str, Field(max_length=200)] = ""


class Revocation(WireModel):
    """A country's revocation list, versioned with its keyset."""

    country: CountryCode
    version: Annotated[int, Field(ge=1, lt=2**63)]
    issued: Timestamp
    revoked: Annotated[tuple[RevokedKey, ...], Field(max_length=10_000)] = ()


class TrustRequest(WireModel):
    """A node asks the archive for the newest keyset and revocation list of ``countries``.

    Sent on ``blo/request/<node>`` at every connect, beside replay requests (the
    two cannot be confused: this one is an array holding an array, a replay
    request starts with a node id). The archive answers on ``blo/replay/<node>``
    with the signed trust messages, which the node checks against its pinned
    roots like any other: the retained slot is then only a shortcut, and a
    rolled-back slot cannot hide a revocation from a node that reaches the archive.
    """

    countries: Annotated[tuple[CountryCode, ...], Field(min_length=1, max_length=32)]


def encode_trust_request(request: TrustRequest) -> bytes:
    """The request's bytes."""
    return pack(request)


def decode_trust_request(data: bytes) -> TrustRequest:
    """Read a trust request. Raises ``DecodeError``."""
    return unpack_model(TrustRequest, data, max_len=256)
