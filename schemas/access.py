"""Topic access, from the node registry: who may publish, subscribe and receive where.

Pure functions, no I/O. The embedded broker's plugin, the Mosquitto ACL
generator, the archive's replay entitlement and the clients' subscriptions all
take their rules from ``rules_for``, so nothing can drift
(tests/test_acl_matrix.py runs the table against both brokers).

    role      reads (subscribe, receive)                     writes (publish)
    every     blo/trust/+/keyset|revocation, blo/replay/ME,  blo/request/ME
              blo/resend/ME
    hq        blo/all, blo/country/CC, blo/incident/CC/+,    blo/country/CC, blo/region/R (its
              blo/receipt/ME/+                               offices' regions), blo/node/N (its
                                                             offices)
    blo       blo/all, blo/country/CC, blo/region/R (its),   blo/incident/CC/ME, blo/receipt/+/ME,
              blo/node/ME, blo/bulletin/ME/+                 blo/bulletin/PEER/ME (its counterparts)
    regional  blo/all, blo/region/+, blo/receipt/ME/+        blo/all, blo/region/+
    observer  blo/all, blo/country/CC, blo/region/+,         (replay requests only)
              blo/incident/CC/+
    archive   every message topic and blo/request/+          blo/replay/+, blo/resend/+,
                                                             blo/trust/+/* (retained)

Photos (issue 10) travel as chunks beside the incident, read by its audience:

    hq, observer  blo/chunk/CC/+                blo/need/N/ME (N: its country's BLOs,
                                                the archive)
    blo           blo/need/ME/+                 blo/chunk/CC/ME
    archive       blo/chunk/+/+, blo/need/ME/+  blo/chunk/+/ME, blo/need/+/ME

Trust topics are written by the trust publisher alone (the archive role): a
retained slot is what a tablet switched on later reads first, and any other
writer could put an older keyset or revocation list back there (a rollback
that hides a revocation). Retained publishing is allowed only on trust topics,
so nothing private is kept by a broker for clients that have not asked yet.
``#``, ``$SYS/#`` and anything outside the tree are denied to all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from schemas.kinds import Role
from schemas.topics import (
    ROOT,
    chunk_topic,
    need_topic,
    replay_topic,
    request_topic,
    resend_topic,
)
from schemas.trust import NodeEntry

__all__ = ["Action", "Rules", "covers", "is_trust_topic", "matches", "rules_for"]


class Action(StrEnum):
    """What a client does with a topic."""

    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    RECEIVE = "receive"


@dataclass(frozen=True, slots=True)
class Rules:
    """One node's permitted topic filters."""

    node: str
    read: tuple[str, ...]
    write: tuple[str, ...]
    retain: tuple[str, ...]

    def allows(self, action: Action, topic: str, *, retain: bool = False) -> bool:
        """True if ``action`` on ``topic`` (a filter, for SUBSCRIBE) is permitted."""
        if action is Action.SUBSCRIBE:
            return any(covers(pattern, topic) for pattern in self.read)
        if action is Action.RECEIVE:
            return any(matches(topic, pattern) for pattern in self.read)
        if retain and not any(matches(topic, pattern) for pattern in self.retain):
            return False
        return any(matches(topic, pattern) for pattern in self.write)


def matches(topic: str, pattern: str) -> bool:
    """MQTT matching of a concrete ``topic`` against a filter ``pattern``."""
    if topic.startswith("$") and not pattern.startswith("$"):
        return False
    levels, wanted = topic.split("/"), pattern.split("/")
    for i, want in enumerate(wanted):
        if want == "#":
            return True
        if i >= len(levels) or (want != "+" and want != levels[i]):
            return False
    return len(levels) == len(wanted)


def covers(pattern: str, subscription: str) -> bool:
    """True if every topic ``subscription`` can match is also matched by ``pattern``."""
    wanted, asked = pattern.split("/"), subscription.split("/")
    for i, want in enumerate(wanted):
        if want == "#":
            return True
        if i >= len(asked):
            return False
        level = asked[i]
        if level == "#" or (level == "+" and want != "+") or (want not in ("+", level)):
            return False
    return len(asked) == len(wanted)


def is_trust_topic(topic: str) -> bool:
    """True for a country's keyset or revocation topic (the only retained topics)."""
    return any(matches(topic, pattern) for pattern in _trust("+"))


def _trust(country: str) -> tuple[str, ...]:
    return (f"{ROOT}/trust/{country}/keyset", f"{ROOT}/trust/{country}/revocation")


def rules_for(entry: NodeEntry, country_nodes: Iterable[NodeEntry]) -> Rules:
    """The rules of ``entry``; ``country_nodes`` are the nodes of its country's keyset."""
    me, cc = entry.node, entry.country
    read = [*_trust("+"), replay_topic(me), resend_topic(me)]
    write = [request_topic(me)]
    retain: list[str] = []
    if entry.revoked is not None:
        return Rules(me, (), (), ())
    role = entry.role
    peers = list(country_nodes)
    # Photo needs go to whoever holds the chunks: a sender (BLO) or the archive.
    holders = [n.node for n in peers if n.role in (Role.BLO, Role.ARCHIVE) and n.node != me]
    if role in (Role.HQ, Role.OBSERVER):
        read += [chunk_topic(cc, "+")]
        write += [need_topic(holder, me) for holder in holders]
    if role is Role.HQ:
        regions = sorted({r for n in peers for r in n.regions})
        read += [f"{ROOT}/all", f"{ROOT}/country/{cc}", f"{ROOT}/incident/{cc}/+"]
        read += [f"{ROOT}/receipt/{me}/+"]
        write += [f"{ROOT}/country/{cc}"]
        write += [f"{ROOT}/region/{r}" for r in regions]
        write += [f"{ROOT}/node/{n.node}" for n in peers if n.node != me]
    elif role is Role.BLO:
        read += [f"{ROOT}/all", f"{ROOT}/country/{cc}", f"{ROOT}/node/{me}"]
        read += [f"{ROOT}/region/{r}" for r in entry.regions]
        read += [f"{ROOT}/bulletin/{me}/+"]
        write += [f"{ROOT}/incident/{cc}/{me}", f"{ROOT}/receipt/+/{me}"]
        write += [f"{ROOT}/bulletin/{peer}/{me}" for peer in entry.counterparts]
        read += [need_topic(me, "+")]
        write += [chunk_topic(cc, me)]
    elif role is Role.REGIONAL:
        read += [f"{ROOT}/all", f"{ROOT}/region/+", f"{ROOT}/receipt/{me}/+"]
        write += [f"{ROOT}/all", f"{ROOT}/region/+"]
    elif role is Role.OBSERVER:
        read += [f"{ROOT}/all", f"{ROOT}/country/{cc}", f"{ROOT}/region/+"]
        read += [f"{ROOT}/incident/{cc}/+"]
    elif role is Role.ARCHIVE:
        read += [
            f"{ROOT}/all",
            f"{ROOT}/country/+",
            f"{ROOT}/region/+",
            f"{ROOT}/node/+",
            f"{ROOT}/incident/+/+",
            f"{ROOT}/receipt/+/+",
            f"{ROOT}/bulletin/+/+",
            request_topic("+"),
            chunk_topic("+", "+"),
            need_topic(me, "+"),
        ]
        write = [replay_topic("+"), resend_topic("+"), *_trust("+")]
        write += [chunk_topic("+", me), need_topic("+", me)]
        retain += _trust("+")
    return Rules(me, tuple(read), tuple(write), tuple(retain))
