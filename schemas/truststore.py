"""What a receiver trusts: pinned country roots, and the keysets they signed.

Roots are pinned at enrolment (the bundle carries them) and never learned from
the network. Keysets and revocation lists arrive as signed messages; the
store accepts one only if its root's signature holds (checked by the receiver
core) and its version is not lower than the one held: no rollback to a keyset
in which a lost tablet's key was still good. Plain data, no I/O.

Freshness (TUF-style): every trust message carries a signed expiry, and the
PKI writes a country's keyset and revocation list together under one version.
``warnings`` says "trust stale" when a held keyset or revocation list has
expired, or when the revocation list held is older than the keyset (a newer
list exists and was withheld, e.g. by a rolled-back retained slot).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from schemas.envelope import key_id_of
from schemas.errors import RollbackError, TrustError
from schemas.ids import country_of
from schemas.trust import KeyEntry, Keyset, NodeEntry, Revocation

__all__ = ["STALE", "KeyLookup", "TrustStore"]

#: How every freshness warning begins (``blo-sub status`` shows "trust: stale").
STALE = "trust stale"


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """A node's entry and one of its keys, found by key id."""

    node: NodeEntry
    key: KeyEntry
    public_key: Ed25519PublicKey
    keyset: Keyset


def _load_key(raw: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise TrustError(f"not an Ed25519 public key: {exc}") from None


class TrustStore:
    """Pinned roots per country, plus the newest keyset and revocation list of each."""

    def __init__(self, roots: Mapping[str, list[bytes]]) -> None:
        self._roots: dict[str, dict[bytes, Ed25519PublicKey]] = {
            country: {key_id_of(raw): _load_key(raw) for raw in keys}
            for country, keys in roots.items()
        }
        self._keysets: dict[str, Keyset] = {}
        self._revocations: dict[str, Revocation] = {}
        #: the signed envelope expiry of each held revocation list (its body has none)
        self._revocation_expires: dict[str, datetime] = {}
        self._keys: dict[tuple[str, bytes], KeyLookup] = {}

    # -- roots and trust messages ------------------------------------------

    def root_key(self, country: str, key_id: bytes) -> Ed25519PublicKey | None:
        """The pinned root key of ``country`` with ``key_id``, if any."""
        return self._roots.get(country, {}).get(key_id)

    @property
    def countries(self) -> list[str]:
        """Countries whose root is pinned."""
        return sorted(self._roots)

    def keyset(self, country: str) -> Keyset | None:
        """The keyset held for ``country``."""
        return self._keysets.get(country)

    def revocation(self, country: str) -> Revocation | None:
        """The revocation list held for ``country``."""
        return self._revocations.get(country)

    def apply_keyset(self, keyset: Keyset) -> None:
        """Adopt ``keyset`` (already verified). Raises ``RollbackError`` if older than held."""
        held = self._keysets.get(keyset.country)
        if held is not None and keyset.version < held.version:
            raise RollbackError(
                f"keyset {keyset.country} v{keyset.version} is older than the v{held.version} held"
            )
        self._keysets[keyset.country] = keyset
        self._index()

    def apply_revocation(self, revocation: Revocation, expires: datetime | None = None) -> None:
        """Adopt ``revocation`` (already verified), signed to expire at ``expires``.

        Raises ``RollbackError`` if older than the list held.
        """
        held = self._revocations.get(revocation.country)
        if held is not None and revocation.version < held.version:
            raise RollbackError(
                f"revocation list {revocation.country} v{revocation.version} is older "
                f"than the v{held.version} held"
            )
        self._revocations[revocation.country] = revocation
        if expires is not None:
            self._revocation_expires[revocation.country] = expires
        else:
            self._revocation_expires.pop(revocation.country, None)
        self._index()

    def _index(self) -> None:
        keys: dict[tuple[str, bytes], KeyLookup] = {}
        for keyset in self._keysets.values():
            for entry in keyset.nodes:
                for key in entry.keys:
                    keys[(entry.node, key.key_id)] = KeyLookup(
                        entry, key, _load_key(key.public_key), keyset
                    )
        self._keys = keys

    # -- lookups -------------------------------------------------------------

    def lookup(self, node: str, key_id: bytes) -> KeyLookup | None:
        """The key ``key_id`` of ``node`` from its country's keyset, if known."""
        return self._keys.get((node, key_id))

    def node(self, node: str) -> NodeEntry | None:
        """The registry entry of ``node``, if its country's keyset is held."""
        keyset = self._keysets.get(country_of(node))
        return None if keyset is None else keyset.node(node)

    def revoked(self, node: str, key_id: bytes) -> str | None:
        """Why ``node``'s key ``key_id`` is revoked, or None if it is not."""
        entry = self.node(node)
        if entry is not None and entry.revoked is not None:
            return f"{node} was revoked at {entry.revoked.isoformat()}"
        revocation = self._revocations.get(country_of(node))
        for item in revocation.revoked if revocation else ():
            if item.node == node and item.key_id in (None, key_id):
                what = "node" if item.key_id is None else f"key {key_id.hex()}"
                why = f" ({item.reason})" if item.reason else ""
                return f"{what} of {node} was revoked at {item.at.isoformat()}{why}"
        return None

    def warnings(self, now: datetime) -> list[str]:
        """Readable warnings: missing keysets, and stale trust (each begins with ``STALE``)."""
        out = []
        for country in self.countries:
            keyset = self._keysets.get(country)
            if keyset is None:
                out.append(
                    f"no keyset for {country} yet: messages from {country} cannot be checked"
                )
                continue
            out += self._stale(country, keyset, now)
        return out

    def stale(self, now: datetime) -> bool:
        """True if any held trust is stale (expired, or a revocation list withheld)."""
        return any(w.startswith(STALE) for w in self.warnings(now))

    def _stale(self, country: str, keyset: Keyset, now: datetime) -> list[str]:
        out = []
        fix = "reconnect to the archive, or ask the operator to re-sign the trust messages"
        if keyset.expires < now:
            out.append(
                f"{STALE}: keyset {country} v{keyset.version} expired at "
                f"{keyset.expires.isoformat()}; {fix}"
            )
        revocation = self._revocations.get(country)
        expires = self._revocation_expires.get(country)
        if revocation is not None and expires is not None and expires < now:
            out.append(
                f"{STALE}: revocation list {country} v{revocation.version} expired at "
                f"{expires.isoformat()}; {fix}"
            )
        if revocation is not None and revocation.version < keyset.version:
            out.append(
                f"{STALE}: revocation list {country} v{revocation.version} is older than "
                f"keyset v{keyset.version} (both are signed together: the newer list was "
                f"withheld); {fix}"
            )
        return out
