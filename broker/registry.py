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

from cryptography import x509
from cryptography.x509.oid import NameOID

from certs import Pki
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

    @classmethod
    def load(cls, pki: Path, now: datetime) -> Registry:
        """Read and verify the keysets of ``pki``. Raises ``CertsError`` naming the file."""
        store = Pki(pki).trust_store(now)
        nodes: dict[str, NodeEntry] = {}
        rules: dict[str, Rules] = {}
        for country in store.countries:
            keyset = store.keyset(country)
            if keyset is None:
                continue
            for entry in keyset.nodes:
                nodes[entry.node] = entry
                rules[entry.node] = rules_for(entry, keyset.nodes)
        return cls(store, nodes, rules)

    def identify(self, der: bytes | None) -> Identity | str:
        """The node a client certificate (DER) belongs to, or why it is refused."""
        if not der:
            return "no client certificate (every node connects with its enrolment certificate)"
        try:
            cert = x509.load_der_x509_certificate(der)
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            node = str(names[0].value) if names else ""
        except ValueError:
            return "unreadable client certificate"
        entry = self.nodes.get(node)
        if entry is None:
            return f"certificate names {node[:60]!r}, which is in no keyset"
        if entry.revoked is not None:
            return f"{node} was revoked at {entry.revoked.isoformat()}"
        if entry.tls_cert_sha256 and hashlib.sha256(der).digest() != entry.tls_cert_sha256:
            return f"{node} presented a certificate that is not its current one (replaced tablet?)"
        return Identity(entry, self.rules[node])
