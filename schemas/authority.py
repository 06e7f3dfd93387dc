"""Who may send what to whom: the receiver's half of the double authority check.

The broker's ACL decides who may publish on a topic; this decides, on the
receiving tablet, whether the signer's role may issue this kind of message to
this audience. A compromised or misconfigured broker can therefore deliver a
message to the wrong place but cannot make a BLO's key issue a national alert.

    role      may send
    hq        alerts to its own country, to regions its offices are in, to its own offices
    regional  alerts to all, or to any region
    blo       incidents to its own country; receipts to any node; bulletins to its counterparts
    observer  nothing
"""

from __future__ import annotations

from schemas.ids import Scope, ScopeKind, country_of
from schemas.kinds import Kind, Role
from schemas.trust import Keyset, NodeEntry

__all__ = ["addressed_to", "may_send"]


def may_send(entry: NodeEntry, kind: Kind, scope: Scope, keyset: Keyset) -> str | None:
    """None if ``entry`` may send ``kind`` to ``scope``; else the reason it may not.

    ``keyset`` is the sender's country's keyset (an HQ's regions are those its
    own offices belong to).
    """
    role, sk = entry.role, scope.kind
    if role is Role.HQ and kind is Kind.ALERT:
        if sk is ScopeKind.COUNTRY and scope.target == entry.country:
            return None
        if sk is ScopeKind.NODE and country_of(scope.target) == entry.country:
            return None
        if sk is ScopeKind.REGION and any(scope.target in n.regions for n in keyset.nodes):
            return None
        return f"an HQ may alert only its own country, regions and offices, not {scope}"
    if role is Role.HQ and kind is Kind.TREND:
        if sk is ScopeKind.NODE and country_of(scope.target) == entry.country:
            return None
        return f"an HQ sends trend summaries to one of its own offices at a time, not {scope}"
    if role is Role.REGIONAL and kind is Kind.ALERT:
        if sk in (ScopeKind.ALL, ScopeKind.REGION):
            return None
        return f"a regional coordinator alerts all offices or a region, not {scope}"
    if role is Role.BLO:
        if kind is Kind.INCIDENT:
            if sk is ScopeKind.COUNTRY and scope.target == entry.country:
                return None
            return f"a BLO reports incidents to its own country, not to {scope}"
        if kind is Kind.RECEIPT and sk is ScopeKind.NODE:
            return None
        if kind is Kind.BULLETIN and sk is ScopeKind.BULLETIN:
            strangers = [t for t in scope.targets if t not in entry.counterparts]
            if not strangers:
                return None
            return f"{', '.join(strangers)} is not a counterpart of {entry.node}"
    return f"a {role.value} node may not send {kind.label} messages to {scope}"


def addressed_to(scope: Scope, me: NodeEntry) -> bool:
    """True if a message with ``scope`` is meant for the node ``me``."""
    sk = scope.kind
    if sk is ScopeKind.ALL:
        return True
    if sk is ScopeKind.COUNTRY:
        return scope.target == me.country
    if sk is ScopeKind.REGION:
        return scope.target in me.regions
    return me.node in scope.targets
