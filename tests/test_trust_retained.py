"""Retained messages, seen by a standard client: mosquitto_sub with an office's certificate.

Item 11 of issue 9: amqtt 0.12.1 handed every retained message to any new
subscription (at connect, for every filter *any* session held), so a client
subscribed to ``blo/country/kh`` alone was sent ``blo/trust/kh/keyset``. A
native client may not expect a topic it never asked for. Each test has its
positive control in the same run: the subscriber must receive what it did ask
for (a live probe, or the retained slot it subscribed to), so a silent or
broken subscriber can never pass.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from brokers import BrokerHandle, Network
from mqttc import TestClient

from certs import EnrolmentBundle

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_sub") is None, reason="mosquitto-clients is not installed"
)


def mosquitto_sub(
    network: Network, node: str, port: int, topics: list[str], count: int, folder: Path
) -> subprocess.Popen[str]:
    """mosquitto_sub as ``node``, printing one topic per message, bounded by -C and -W."""
    ca, cert, key = EnrolmentBundle.load(network.bundle(node)).write_tls(folder)
    args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-i", node, "-q", "1"]
    args += ["--cafile", str(ca), "--cert", str(cert), "--key", str(key)]
    args += ["-F", "%t", "-C", str(count), "-W", "15"]
    for topic in topics:
        args += ["-t", topic]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def retain_trust(network: Network, port: int) -> TestClient:
    """The trust publisher puts the keyset and revocation list in their retained slots and
    keeps a subscription to both (amqtt used that filter to hand them to everyone)."""
    archive = TestClient(network.bundle("kh-archive"), port, clean=True)
    assert archive.connect()
    for name in ("keyset", "revocation"):
        data = (network.kh / "trust" / f"{name}.msg").read_bytes()
        assert archive.subscribe(f"blo/trust/+/{name}")
        assert archive.publish(f"blo/trust/kh/{name}", data, retain=True)
    return archive


def test_retained_trust_is_not_sent_to_an_unrelated_subscription(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    network = broker.network
    archive = retain_trust(network, broker.port)
    hq = TestClient(network.bundle("kh-nacd"), broker.port, clean=True)
    assert hq.connect()
    sub = mosquitto_sub(network, "kh-blo-bavet", broker.port, ["blo/country/kh"], 3, tmp_path)
    try:
        # Live probes until mosquitto_sub has had three messages (bounded): the positive
        # control. Retained trust, had it been sent, would come first, at subscribe.
        deadline = time.monotonic() + 15
        while sub.poll() is None and time.monotonic() < deadline:
            hq.publish("blo/country/kh", b"probe")
            time.sleep(0.3)
        out, err = sub.communicate(timeout=20)
    finally:
        if sub.poll() is None:
            sub.kill()
        hq.close()
        archive.close()
    assert sub.returncode == 0, f"mosquitto_sub got fewer than 3 messages: {err}"
    assert out.split() == ["blo/country/kh"] * 3, out


def test_retained_trust_reaches_the_subscription_it_matches(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    network = broker.network
    archive = retain_trust(network, broker.port)
    try:
        # Two retained slots exist; Bavet asks for one. It gets that one, retained,
        # and not the other (mosquitto_sub exits 0 after exactly one message).
        sub = mosquitto_sub(
            network, "kh-blo-bavet", broker.port, ["blo/trust/kh/revocation"], 1, tmp_path
        )
        out, err = sub.communicate(timeout=20)
        assert sub.returncode == 0, f"the retained revocation list never came: {err}"
        assert out.split() == ["blo/trust/kh/revocation"]
    finally:
        archive.close()


def test_a_kept_session_is_not_sent_retained_messages_again_at_a_reconnect(
    broker: BrokerHandle,
) -> None:
    """Retained messages come with a SUBSCRIBE, not with every reconnect of a kept
    session (MQTT 3.1.1 3.3.1.3, and Mosquitto). amqtt 0.12.1 sent a session's retained
    slots again at each connect: on a metered link cut every few seconds, each
    reconnect cost a tablet its country's keyset and revocation list again.
    """
    network, port = broker.network, broker.port
    archive = retain_trust(network, port)
    bavet = TestClient(network.bundle("kh-blo-bavet"), port)
    nacd = TestClient(network.bundle("kh-nacd"), port, clean=True)
    try:
        assert bavet.connect()
        assert bavet.subscribe("blo/trust/kh/keyset")
        assert bavet.subscribe("blo/node/kh-blo-bavet")
        first = [t for t, _, retained in bavet.collect(quiet=1.0) if retained]
        assert first == ["blo/trust/kh/keyset"]  # positive control: the SUBSCRIBE brings it
        bavet.close()
        assert nacd.connect()
        assert nacd.publish("blo/node/kh-blo-bavet", b"while away")
        bavet = TestClient(network.bundle("kh-blo-bavet"), port)
        assert bavet.connect()
        assert bavet.session_present
        got = bavet.collect(quiet=1.5)
        # The reconnect is live: what was queued for the session while away comes.
        assert [p for t, p, _ in got if t == "blo/node/kh-blo-bavet"] == [b"while away"]
        assert [t for t, _, _ in got if t.startswith("blo/trust/")] == []
    finally:
        for client in (bavet, nacd, archive):
            client.close()
