"""The MQTT topic tree: the one place topics are spelled.

The broker ACL, the Mosquitto ACL generator, the publishers and the tablets
all call these functions, so a topic cannot drift between them::

    blo/all                         alerts to every office           scope all
    blo/country/{cc}                alerts to one country            scope country:cc
    blo/region/{region}             alerts to one border region      scope region:NAME
    blo/node/{node}                 alerts to one office             scope node:ID
    blo/incident/{cc}/{sender}      incident reports to the country  scope country:cc
    blo/receipt/{to}/{sender}       delivered / read receipts        scope node:TO
    blo/bulletin/{to}/{sender}      bulletins between counterparts   scope bulletin:TO,...
    blo/trust/{cc}/keyset           the country's keyset (retained)  scope country:cc
    blo/trust/{cc}/revocation       its revocation list (retained)   scope country:cc
    blo/replay/{node}               archive replays for one office
    blo/request/{node}              one office's replay requests to the archive
    blo/resend/{node}               the archive's requests to a sender to publish again
    blo/chunk/{cc}/{source}         photo chunks of the country's incidents, served by
                                    their sender or the archive (incident audience reads)
    blo/need/{holder}/{asker}       what a receiver still needs, to the holder it asks

Every message travels on a topic derived from its kind, scope and sender, and
a receiver recomputes that topic: an envelope replayed onto another topic, or
with its kind swapped, does not match and is refused.
"""

from __future__ import annotations

from schemas.ids import Scope, ScopeKind
from schemas.kinds import Kind

__all__ = [
    "ROOT",
    "chunk_source",
    "chunk_topic",
    "need_asker",
    "need_topic",
    "replay_topic",
    "request_topic",
    "resend_topic",
    "topics_for",
    "trust_topic",
]

ROOT = "blo"

_ALERT_FAMILY = {
    ScopeKind.ALL: "all",
    ScopeKind.COUNTRY: "country",
    ScopeKind.REGION: "region",
    ScopeKind.NODE: "node",
}


def topics_for(kind: Kind, scope: Scope, sender: str) -> tuple[str, ...]:
    """The topics a message of ``kind`` from ``sender`` to ``scope`` is published on.

    Empty when the combination has no topic (for example an incident to a
    region): such a message can never be accepted anywhere.
    """
    sk = scope.kind
    if kind is Kind.ALERT and sk in _ALERT_FAMILY:
        if sk is ScopeKind.ALL:
            return (f"{ROOT}/all",)
        return (f"{ROOT}/{_ALERT_FAMILY[sk]}/{scope.target}",)
    if kind is Kind.TREND and sk is ScopeKind.NODE:
        # An office's trend summary travels on its own topic, as an alert to it does.
        return (f"{ROOT}/{_ALERT_FAMILY[sk]}/{scope.target}",)
    if kind is Kind.INCIDENT and sk is ScopeKind.COUNTRY:
        return (f"{ROOT}/incident/{scope.target}/{sender}",)
    if kind is Kind.RECEIPT and sk is ScopeKind.NODE:
        return (f"{ROOT}/receipt/{scope.target}/{sender}",)
    if kind is Kind.BULLETIN and sk is ScopeKind.BULLETIN:
        return tuple(f"{ROOT}/bulletin/{to}/{sender}" for to in scope.targets)
    if kind in (Kind.KEYSET, Kind.REVOCATION) and sk is ScopeKind.COUNTRY:
        return (trust_topic(kind, scope.target),)
    return ()


def trust_topic(kind: Kind, country: str) -> str:
    """The retained topic of a country's keyset or revocation list."""
    leaf = "keyset" if kind is Kind.KEYSET else "revocation"
    return f"{ROOT}/trust/{country}/{leaf}"


def replay_topic(node: str) -> str:
    """The topic the archive answers one office's replay requests on."""
    return f"{ROOT}/replay/{node}"


def request_topic(node: str) -> str:
    """The topic one office sends replay requests on (the ACL binds it to that office)."""
    return f"{ROOT}/request/{node}"


def resend_topic(node: str) -> str:
    """The topic the archive asks ``node`` to publish missing sequence numbers again on."""
    return f"{ROOT}/resend/{node}"


def chunk_topic(country: str, source: str) -> str:
    """The topic ``source`` (an incident's sender, or the archive) serves photo chunks
    of ``country``'s incidents on; the incident's audience reads it."""
    return f"{ROOT}/chunk/{country}/{source}"


def need_topic(holder: str, asker: str) -> str:
    """The topic ``asker`` tells ``holder`` which chunks it still needs on."""
    return f"{ROOT}/need/{holder}/{asker}"


def chunk_source(topic: str) -> tuple[str, str] | None:
    """``(country, source)`` of a chunk topic, or None if ``topic`` is not one."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == ROOT and parts[1] == "chunk" and all(parts[2:]):
        return parts[2], parts[3]
    return None


def need_asker(topic: str) -> tuple[str, str] | None:
    """``(holder, asker)`` of a need topic, or None if ``topic`` is not one."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == ROOT and parts[1] == "need" and all(parts[2:]):
        return parts[2], parts[3]
    return None
