"""An in-memory network of countries, roots and nodes for the core's tests.

Real Ed25519 keys and real signed keysets, built without files so the
sans-I/O core can be tested fast and exhaustively (certs/ has its own tests
against real PKI folders).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas import (
    Alert,
    AlertText,
    Category,
    Certainty,
    KeyEntry,
    Keyset,
    Lang,
    MsgType,
    NodeEntry,
    Receiver,
    Revocation,
    RevokedKey,
    Role,
    Scope,
    Severity,
    Signer,
    Status,
    TrustStore,
    Urgency,
    WireModel,
    draft_from_document,
    key_id_of,
    seal,
    trust_topic,
)
from schemas.kinds import Kind

#: The reference alert, kept in the repo beside the held-out one (bench/fixtures/).
REFERENCE = Path(__file__).resolve().parents[1] / "bench" / "fixtures" / "reference-alert.json"
NOW = datetime(2026, 6, 20, 9, 12, tzinfo=UTC)

#: A small alert with English and Khmer headlines, for tests that need any alert.
ALERT = Alert(
    msg_type=MsgType.ALERT,
    status=Status.ACTUAL,
    category=Category.DRUG_SEIZURE,
    severity=Severity.SEVERE,
    urgency=Urgency.IMMEDIATE,
    certainty=Certainty.OBSERVED,
    text={
        Lang.EN: AlertText(headline="Heroin seized at Poipet"),
        Lang.KM: AlertText(headline="រឹបអូសហេរ៉ូអ៊ីននៅប៉ោយប៉ែត"),
    },
)


def reference_document() -> dict[str, Any]:
    """The reference alert as a document (without its ``_about`` note)."""
    doc = json.loads(REFERENCE.read_text("utf-8"))
    doc.pop("_about")
    return doc


# node -> (role, regions, counterparts)
NODES: dict[str, tuple[Role, tuple[str, ...], tuple[str, ...]]] = {
    "kh-nacd": (Role.HQ, (), ()),
    "kh-blo-bavet": (Role.BLO, ("kh-vn-bavet",), ("vn-blo-mocbai",)),
    "kh-blo-dongkralor": (Role.BLO, ("kh-la-dongkralor",), ()),
    "kh-analyst": (Role.OBSERVER, (), ()),
    "vn-sodc": (Role.HQ, (), ()),
    "vn-blo-mocbai": (Role.BLO, ("kh-vn-bavet",), ("kh-blo-bavet",)),
    "th-unodc-rbm": (Role.REGIONAL, (), ()),
}


@dataclass
class Net:
    """Roots, node signers and keysets of a small three-country network."""

    now: datetime = NOW
    roots: dict[str, Signer] = field(default_factory=dict)
    signers: dict[str, Signer] = field(default_factory=dict)
    entries: dict[str, NodeEntry] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)
    version: int = 1

    def __post_init__(self) -> None:
        for node, (role, regions, peers) in NODES.items():
            country = node[:2]
            if country not in self.roots:
                self.roots[country] = Signer(country, Ed25519PrivateKey.generate())
            signer = self.signers[node] = Signer(node, Ed25519PrivateKey.generate())
            self.entries[node] = NodeEntry(
                node=node,
                role=role,
                regions=regions,
                counterparts=peers,
                keys=(self.key_entry(signer),),
            )

    def key_entry(self, signer: Signer, days: int = 365) -> KeyEntry:
        return KeyEntry(
            key_id=signer.key_id,
            public_key=signer.public_key,
            not_before=self.now - timedelta(days=30),
            not_after=self.now + timedelta(days=days),
        )

    def keyset(self, country: str, version: int | None = None) -> Keyset:
        return Keyset(
            country=country,
            version=version or self.version,
            issued=self.now,
            expires=self.now + timedelta(days=90),
            nodes=tuple(e for n, e in self.entries.items() if n[:2] == country),
        )

    def trust_message(self, body: Keyset | Revocation, root: Signer | None = None) -> bytes:
        signer = root or self.roots[body.country]
        return seal(
            signer,
            body,
            seq=body.version,
            scope=Scope.country(body.country),
            issued=self.now,
            expires=self.now + timedelta(days=90),
        )

    def store(self) -> TrustStore:
        """A trust store with every root pinned and every keyset applied."""
        store = TrustStore({c: [s.public_key] for c, s in self.roots.items()})
        receiver = Receiver(store)
        for country in self.roots:
            data = self.trust_message(self.keyset(country))
            assert receiver.receive(trust_topic(Kind.KEYSET, country), data, self.now).ok
        return store

    def receiver(self, me: str | None = None) -> Receiver:
        return Receiver(self.store(), me=me)

    def send(
        self,
        node: str,
        body: WireModel,
        scope: Scope,
        *,
        seq: int | None = None,
        issued: datetime | None = None,
        expires: datetime | None = None,
        msg_id: bytes | None = None,
        signer: Signer | None = None,
    ) -> bytes:
        if seq is None:
            seq = self.seqs[node] = self.seqs.get(node, 0) + 1
        issued = issued or self.now
        return seal(
            signer or self.signers[node],
            body,
            seq=seq,
            scope=scope,
            issued=issued,
            expires=expires or issued + timedelta(days=7),
            msg_id=msg_id,
        )

    def revoke_key(self, node: str, version: int) -> Revocation:
        signer = self.signers[node]
        return Revocation(
            country=node[:2],
            version=version,
            issued=self.now,
            revoked=(RevokedKey(node=node, key_id=key_id_of(signer.public_key), at=self.now),),
        )


def reference_alert() -> tuple[WireModel, Scope, datetime, datetime]:
    draft = draft_from_document(reference_document())
    return draft.body, draft.scope, draft.issued, draft.expires
