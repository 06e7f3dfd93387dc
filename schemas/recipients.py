"""Who a sealed message is sealed for: the sender's choice and the receivers' check.

Pure functions over a ``TrustStore`` (no I/O, ``now`` an argument). The sender
seals for every node that may read the message (``seal_recipients``); every
receiver, the archive included, checks the recipient list of a sealed message
without opening it (``recipients_refusal``): a bulletin is sealed for exactly
the offices it is addressed to, anything else only for nodes of its audience
that may read its topic, and never under a key that is unknown, revoked or not
valid when the message was issued. So a sealed bulletin cannot be re-addressed
to a third office, and a revoked key is refused even if a stale sender used it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from schemas.access import Action, rules_for
from schemas.authority import addressed_to
from schemas.envelope import SEALABLE, Header
from schemas.ids import Scope, ScopeKind
from schemas.kinds import Kind, Role
from schemas.seal import RecipientKey, SealedBody
from schemas.topics import topics_for
from schemas.trust import KeyEntry, NodeEntry
from schemas.truststore import TrustStore

__all__ = ["Fault", "current_seal_key", "recipients_refusal", "seal_recipients"]

#: Why a recipient list is refused; the receiver maps these onto its ``Reason``.
Fault = Literal["unknown_key", "revoked_key", "key_not_valid", "bad_recipients"]


def current_seal_key(entry: NodeEntry, trust: TrustStore, now: datetime) -> KeyEntry | None:
    """The newest encryption key of ``entry`` valid at ``now`` and not revoked, if any."""
    usable = [
        k
        for k in entry.seal_keys
        if k.valid_at(now) and trust.revoked(entry.node, k.key_id) is None
    ]
    return max(usable, key=lambda k: k.not_before, default=None)


def _reads(entry: NodeEntry, kind: Kind, scope: Scope, sender: str, trust: TrustStore) -> bool:
    """True if ``entry`` is in the audience of the message and may receive its topic."""
    if entry.role is Role.ARCHIVE or entry.node == sender or entry.revoked is not None:
        return False
    if not addressed_to(scope, entry):
        return False
    keyset = trust.keyset(entry.country)
    peers = keyset.nodes if keyset is not None else (entry,)
    rules = rules_for(entry, peers)
    return any(rules.allows(Action.RECEIVE, t) for t in topics_for(kind, scope, sender))


def seal_recipients(
    kind: Kind, scope: Scope, sender: str, trust: TrustStore, now: datetime
) -> list[RecipientKey] | str:
    """The recipients to seal for, each under its current key; or why it cannot be sealed.

    A bulletin is sealed for the offices it names; an alert or incident for
    every node of the keysets held that may read it (the archive is never one).
    """
    if kind not in SEALABLE:
        return f"a {kind.label} is never sealed"
    if scope.kind is ScopeKind.BULLETIN:
        entries: list[NodeEntry] = []
        for node in scope.targets:
            entry = trust.node(node)
            if entry is None:
                return (
                    f"{node} is in no keyset held, so its encryption key is unknown: "
                    "import its country's root (blo-certs import-root) and re-copy the bundle"
                )
            if entry.revoked is not None:
                return f"{node} was revoked at {entry.revoked.isoformat()}"
            entries.append(entry)
    else:
        entries = [
            e
            for country in trust.countries
            for e in (trust.keyset(country).nodes if trust.keyset(country) else ())  # type: ignore[union-attr]
            if _reads(e, kind, scope, sender, trust)
        ]
        if not entries:
            return f"no node that may read a {kind.label} to {scope} is in the keysets held"
    out = []
    for entry in entries:
        key = current_seal_key(entry, trust, now)
        if key is None:
            return (
                f"{entry.node} has no current encryption key in the keyset: its PKI "
                f"gives it one with 'blo-certs rotate {entry.node}' (then fetch the new keyset)"
            )
        out.append(RecipientKey(entry.node, key.key_id, key.public_key))
    return out


def recipients_refusal(
    header: Header, body: SealedBody, trust: TrustStore
) -> tuple[Fault, str] | None:
    """None if ``body``'s recipients are right for ``header``; else a fault and a sentence."""
    nodes = body.nodes
    if len(set(nodes)) != len(nodes):
        return "bad_recipients", "a recipient is listed twice"
    scope = header.scope
    if header.kind is Kind.BULLETIN and set(nodes) != set(scope.targets):
        return (
            "bad_recipients",
            f"sealed for {', '.join(nodes)} but addressed to {', '.join(scope.targets)}",
        )
    for r in body.recipients:
        entry = trust.node(r.node)
        if entry is None:
            return "unknown_key", f"recipient {r.node} is in no keyset held"
        revoked = trust.revoked(r.node, r.key_id)
        if revoked:
            return "revoked_key", f"sealed for a revoked key: {revoked}"
        if header.kind is not Kind.BULLETIN and not _reads(
            entry, header.kind, scope, header.sender, trust
        ):
            return "bad_recipients", f"{r.node} may not read a {header.kind.label} to {scope}"
        key = next((k for k in entry.seal_keys if k.key_id == r.key_id), None)
        if key is None:
            return (
                "unknown_key",
                f"encryption key {r.key_id.hex()} of {r.node} is not in any keyset held",
            )
        if not key.valid_at(header.issued):
            return (
                "key_not_valid",
                f"encryption key {r.key_id.hex()} of {r.node} is valid "
                f"{key.not_before.isoformat()} to {key.not_after.isoformat()}, "
                f"message issued {header.issued.isoformat()}",
            )
    return None
