"""What the broker knows of nodes: the verified keysets of its PKI folder.

Loaded from the folder ``blo-certs`` writes (this country's keyset and those
of imported countries), verified against the pinned roots, and turned into
per-node ACL rules. ``identify`` maps a TLS client certificate to a node.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from certs.folder import trust_store
from schemas import NodeEntry, TrustStore
from schemas.access import Rules, rules_for

__all__ = ["Identity", "Registry"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A connected node: its registry entry and its ACL rules."""

    node: NodeEntry
    rules: Rules


@dataclass(frozen=True, slots=True)
class Registry:
    """Every node the broker serves, with its rules."""

    store: TrustStore
    nodes: dict[str, NodeEntry]
    rules: dict[str, Rules]
    #: SHA-256 of each node's current TLS certificate -> node
    by_cert: dict[bytes, str]

    @classmethod
    def load(cls, pki: Path, now: datetime) -> Registry:
        """Read and verify the keysets of ``pki``. Raises ``CertsError`` naming the file."""
        store = trust_store(pki, now)
        nodes: dict[str, NodeEntry] = {}
        rules: dict[str, Rules] = {}
        for country in store.countries:
            keyset = store.keyset(country)
            if keyset is None:
                continue
            for entry in keyset.nodes:
                nodes[entry.node] = entry
                rules[entry.node] = rules_for(entry, keyset.nodes)
        by_cert = {e.tls_cert_sha256: e.node for e in nodes.values() if e.tls_cert_sha256}
        return cls(store, nodes, rules, by_cert)

    def identify(self, der: bytes | None) -> Identity | str:
        """The node a client certificate (DER) belongs to, or why it is refused.

        A certificate is known by its SHA-256 in the signed keyset, so a
        replaced tablet's old certificate is refused even though the CA signed
        it; it is parsed only to name the node in a refusal.
        """
        if not der:
            return "no client certificate (every node connects with its enrolment certificate)"
        node = self.by_cert.get(hashlib.sha256(der).digest())
        if node is None:
            named = _common_name(der)
            if named is None:
                return "unreadable client certificate"
            if named not in self.nodes:
                return f"certificate names {named[:60]!r}, which is in no keyset"
            return f"{named} presented a certificate that is not its current one (replaced tablet?)"
        entry = self.nodes[node]
        if entry.revoked is not None:
            return f"{node} was revoked at {entry.revoked.isoformat()}"
        return Identity(entry, self.rules[node])


def _common_name(der: bytes) -> str | None:
    """The certificate's CN, or None if it cannot be read (refusals only)."""
    from cryptography import x509  # loaded on this rare path only
    from cryptography.x509.oid import NameOID

    try:
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME
        )
    except ValueError:
        return None
    return str(names[0].value) if names else ""
