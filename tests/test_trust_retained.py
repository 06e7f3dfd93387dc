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
