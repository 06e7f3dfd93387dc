"""The ACL matrix: role x topic family x action, one expected table, both brokers.

The table below is written from the design (who may read and write what), not
from schemas/access.py, and checked three ways: against ``rules_for`` directly,
and against the embedded broker and Mosquitto over real TLS connections.

Actions:
  publish    the node publishes on the topic; allowed if a reader (the archive,
             or the owner of a replay topic) receives it
  subscribe  the node subscribes to the topic; allowed if the broker grants it
             (Mosquitto 2.0 grants every SUBSCRIBE and enforces reading per
             message, so on Mosquitto this column is only reported)
  receive    a permitted writer publishes on the topic; allowed if the
             subscribed node receives it
"""

from __future__ import annotations

import pytest
from brokers import BrokerHandle, Network
from mqttc import TestClient

from certs import Pki
from schemas.access import Action, rules_for

TOPICS = {
    "all": "blo/all",
    "country-own": "blo/country/kh",
    "country-other": "blo/country/vn",
    "region": "blo/region/kh-vn-bavet",
    "node-bavet": "blo/node/kh-blo-bavet",
    "node-poipet": "blo/node/kh-blo-poipet",
    "incident-bavet": "blo/incident/kh/kh-blo-bavet",
    "incident-poipet": "blo/incident/kh/kh-blo-poipet",
    "receipt-bavet": "blo/receipt/kh-nacd/kh-blo-bavet",
    "bulletin-to-bavet": "blo/bulletin/kh-blo-bavet/vn-blo-mocbai",
    "bulletin-to-mocbai": "blo/bulletin/vn-blo-mocbai/kh-blo-bavet",
    "replay-bavet": "blo/replay/kh-blo-bavet",
    "request-bavet": "blo/request/kh-blo-bavet",
    "trust": "blo/trust/kh/keyset",
    # Photos: chunks to the incident's audience, needs to the holder asked.
    "chunk-bavet": "blo/chunk/kh/kh-blo-bavet",
    "chunk-archive": "blo/chunk/kh/kh-archive",
    "need-to-bavet": "blo/need/kh-blo-bavet/kh-nacd",
    "need-to-archive": "blo/need/kh-archive/kh-analyst",
}

# The design, by node (role): which families it may read and write.
READ = {
    "kh-nacd": {
        "all",
        "country-own",
        "incident-bavet",
        "incident-poipet",
        "receipt-bavet",
        "trust",
        "chunk-bavet",
        "chunk-archive",
    },
    "kh-blo-bavet": {
        "all",
        "country-own",
        "region",
        "node-bavet",
        "bulletin-to-bavet",
        "replay-bavet",
        "trust",
        "need-to-bavet",
    },
    "kh-blo-poipet": {"all", "country-own", "node-poipet", "trust"},
    "kh-analyst": {
        "all",
        "country-own",
        "region",
        "incident-bavet",
        "incident-poipet",
        "trust",
        "chunk-bavet",
        "chunk-archive",
    },
    "kh-rc": {"all", "region", "trust"},
    "kh-archive": set(TOPICS) - {"replay-bavet", "need-to-bavet"},
    "vn-blo-mocbai": {"all", "country-other", "region", "bulletin-to-mocbai", "trust"},
}
WRITE = {
    # Only the trust publisher (the archive) writes trust: HQ could roll a slot back.
    "kh-nacd": {"country-own", "region", "node-bavet", "node-poipet", "need-to-bavet"},
    "kh-blo-bavet": {
        "incident-bavet",
        "receipt-bavet",
        "bulletin-to-mocbai",
        "request-bavet",
        "chunk-bavet",
    },
    "kh-blo-poipet": {"incident-poipet"},
    "kh-analyst": {"need-to-archive"},
    "kh-rc": {"all", "region"},
    "kh-archive": {"replay-bavet", "trust", "chunk-archive"},
    "vn-blo-mocbai": {"bulletin-to-bavet"},
}
# Who publishes the probe for the receive column.
WRITER = {
    "all": "kh-rc",
    "country-own": "kh-nacd",
    "country-other": "vn-sodc",
    "region": "kh-nacd",
    "node-bavet": "kh-nacd",
    "node-poipet": "kh-nacd",
    "incident-bavet": "kh-blo-bavet",
    "incident-poipet": "kh-blo-poipet",
    "receipt-bavet": "kh-blo-bavet",
    "bulletin-to-bavet": "vn-blo-mocbai",
    "bulletin-to-mocbai": "kh-blo-bavet",
    "replay-bavet": "kh-archive",
    "request-bavet": "kh-blo-bavet",
    "trust": "kh-archive",
    "chunk-bavet": "kh-blo-bavet",
    "chunk-archive": "kh-archive",
    "need-to-bavet": "kh-nacd",
    "need-to-archive": "kh-analyst",
}
SUBJECTS = list(READ)


def expected(node: str, family: str, action: Action) -> bool:
    table = WRITE if action is Action.PUBLISH else READ
    return family in table[node]


def test_rules_match_the_design(network: Network) -> None:
    pki = Pki(network.kh)
    kh = pki.keyset()
    vn = Pki(network.vn).keyset()
    for node in SUBJECTS:
        keyset = vn if node.startswith("vn-") else kh
        entry = keyset.node(node)
        assert entry is not None
        rules = rules_for(entry, keyset.nodes)
        for family, topic in TOPICS.items():
            for action in Action:
                assert rules.allows(action, topic) is expected(node, family, action), (
                    node,
                    family,
                    action,
                )
        assert not rules.allows(Action.SUBSCRIBE, "#")
        assert not rules.allows(Action.SUBSCRIBE, "blo/#")
        assert not rules.allows(Action.SUBSCRIBE, "$SYS/#")


def test_acl_matrix_on_real_broker(broker: BrokerHandle) -> None:
    network = broker.network
    names = set(SUBJECTS) | set(WRITER.values())
    clients = {n: TestClient(network.bundle(n), broker.port, clean=True) for n in names}
    try:
        for node, client in clients.items():
            assert client.connect(), f"{node} could not connect: {client.connect_rc}"
        # The readers that witness publishes: the archive (wildcards) and Bavet (its replay).
        witness = TestClient(
            network.bundle("kh-archive"), broker.port, clean=True, client_id="kh-archive"
        )
        clients["kh-archive"].close()
        assert witness.connect()
        clients["kh-archive"] = witness
        witness_filters = [
            "blo/all",
            "blo/country/+",
            "blo/region/+",
            "blo/node/+",
            "blo/incident/+/+",
            "blo/receipt/+/+",
            "blo/bulletin/+/+",
            "blo/request/+",
            "blo/trust/+/keyset",
            "blo/chunk/+/+",
            "blo/need/kh-archive/+",
        ]
        for topic_filter in witness_filters:
            assert witness.subscribe(topic_filter)

        granted: dict[tuple[str, str], bool | None] = {}
        for node in SUBJECTS:
            for family, topic in TOPICS.items():
                granted[(node, family)] = clients[node].subscribe(topic)
        # receive probes, then publish probes
        for family, topic in TOPICS.items():
            assert clients[WRITER[family]].publish(topic, f"recv|{family}".encode())
        for node in SUBJECTS:
            for family, topic in TOPICS.items():
                clients[node].publish(topic, f"pub|{node}|{family}".encode())

        received = {n: {p.decode() for _, p, _ in clients[n].collect(quiet=1.0)} for n in names}
        results = []
        for node in SUBJECTS:
            for family in TOPICS:
                got_probe = f"recv|{family}" in received[node]
                own = ("replay-bavet", "need-to-bavet")
                reader = "kh-blo-bavet" if family in own else "kh-archive"
                published = f"pub|{node}|{family}" in received[reader]
                observed = {
                    Action.RECEIVE: got_probe,
                    Action.PUBLISH: published,
                    Action.SUBSCRIBE: bool(granted[(node, family)]),
                }
                for action, value in observed.items():
                    want = expected(node, family, action)
                    if action is Action.SUBSCRIBE and broker.kind == "mosquitto":
                        continue  # reported only: Mosquitto grants and filters per message
                    results.append((node, family, action.value, want, value))
        wrong = [r for r in results if r[3] != r[4]]
        assert not wrong, "\n".join(
            f"{n} {a} {f}: expected {'allowed' if w else 'denied'}, got "
            f"{'allowed' if v else 'denied'}"
            for n, f, a, w, v in wrong
        )
        assert len(results) == len(SUBJECTS) * len(TOPICS) * (3 if broker.kind == "amqtt" else 2)
    finally:
        for client in clients.values():
            client.close()


@pytest.mark.parametrize("topic_filter", ["#", "blo/#", "$SYS/#", "blo/+/+", "blo/node/+"])
def test_wide_subscriptions_yield_nothing(broker: BrokerHandle, topic_filter: str) -> None:
    network = broker.network
    bavet = TestClient(network.bundle("kh-blo-bavet"), broker.port, clean=True)
    nacd = TestClient(network.bundle("kh-nacd"), broker.port, clean=True)
    try:
        assert bavet.connect()
        assert nacd.connect()
        granted = bavet.subscribe(topic_filter)
        if broker.kind == "amqtt":
            assert granted is False
        for topic in ("blo/node/kh-blo-poipet", "blo/country/kh"):
            nacd.publish(topic, b"probe")
        # Mosquitto grants the wildcard but delivers only what Bavet may read.
        topics = {t for t, _, _ in bavet.collect(quiet=0.8)}
        assert "blo/node/kh-blo-poipet" not in topics
    finally:
        bavet.close()
        nacd.close()
