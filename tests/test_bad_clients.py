"""Bad clients against both brokers: each is refused or cut off, everyone else is still served."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from brokers import BrokerHandle, Network, embedded_broker, mosquitto_broker
from mqttc import TestClient, tls_files

from certs import EnrolmentBundle, Pki

# -- raw MQTT over TLS -----------------------------------------------------------


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str) -> bytes:
    body = _string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 30) + _string(client_id)
    return b"\x10" + _length(len(body)) + body


def raw_session(bundle: Path, port: int, tmp: Path, client_id: str | None = None) -> ssl.SSLSocket:
    """A TLS socket that has sent CONNECT and read a CONNACK accepting it."""
    loaded = EnrolmentBundle.load(bundle)
    ca, cert, key = tls_files(loaded, tmp / f"raw-{loaded.node}")
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost"
    )
    sock.sendall(connect_packet(client_id or loaded.node))
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    return sock


def closed_within(sock: ssl.SSLSocket, seconds: float = 5.0) -> bool:
    """True if the broker closes the connection within ``seconds``."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not sock.recv(4096):
                return True
    except (ConnectionError, ssl.SSLError, OSError):
        return True
    return False


def served(network: Network, port: int) -> bool:
    """An honest pair of offices still gets through: HQ alerts, Bavet receives."""
    bavet = TestClient(network.bundle("kh-blo-bavet"), port, clean=True)
    nacd = TestClient(network.bundle("kh-nacd"), port, clean=True)
    try:
        if not (bavet.connect() and nacd.connect() and bavet.subscribe("blo/node/kh-blo-bavet")):
            return False
        nacd.publish("blo/node/kh-blo-bavet", b"still here")
        return any(p == b"still here" for _, p, _ in bavet.collect(quiet=1.0))
    finally:
        bavet.close()
        nacd.close()


# -- identity ---------------------------------------------------------------------


def _tls_refused(port: int, ca: str, cert: tuple[str, str] | None) -> bool:
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(*cert)
    try:
        with context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost"
        ) as sock:
            sock.sendall(connect_packet("kh-blo-bavet"))
            answer = sock.recv(4)
            return answer != b"\x20\x02\x00\x00"
    except (ssl.SSLError, ConnectionError, OSError):
        return True


def test_no_client_certificate_refused(broker: BrokerHandle, tmp_path: Path) -> None:
    bundle = EnrolmentBundle.load(broker.network.bundle("kh-blo-bavet"))
    ca, _, _ = tls_files(bundle, tmp_path / "nocert")
    assert _tls_refused(broker.port, ca, None)
    assert served(broker.network, broker.port)


def test_certificate_from_another_ca_refused(broker: BrokerHandle, tmp_path: Path) -> None:
    rogue = Pki(tmp_path / "rogue")
    rogue.init("kh", "kh-nacd", datetime.now(UTC))  # same names, another root
    bundle = EnrolmentBundle.load(tmp_path / "rogue" / "bundles" / "kh-nacd.json")
    _, cert, key = tls_files(bundle, tmp_path / "rogue-tls")
    real = EnrolmentBundle.load(broker.network.bundle("kh-nacd"))
    ca, _, _ = tls_files(real, tmp_path / "real-ca")
    assert _tls_refused(broker.port, ca, (cert, key))
    assert served(broker.network, broker.port)


@pytest.mark.parametrize("kind", ["amqtt", "mosquitto"])
def test_revoked_node_refused(network: Network, kind: str) -> None:
    Pki(network.kh).revoke("kh-blo-poipet", datetime.now(UTC), reason="tablet lost")
    start = embedded_broker if kind == "amqtt" else mosquitto_broker
    with start(network) as handle:
        poipet = TestClient(network.bundle("kh-blo-poipet"), handle.port, clean=True)
        try:
            assert not poipet.connect(timeout=3)
        finally:
            poipet.close()
        assert served(network, handle.port)


def test_revocation_drops_a_connected_node_on_the_embedded_broker(network: Network) -> None:
    with embedded_broker(network) as handle:
        poipet = TestClient(network.bundle("kh-blo-poipet"), handle.port, clean=True)
        assert poipet.connect()
        Pki(network.kh).revoke("kh-blo-poipet", datetime.now(UTC), reason="tablet lost")
        assert poipet.disconnected.wait(5), "the broker did not drop the revoked node"
        poipet.close()
        assert served(network, handle.port)


def test_client_id_takeover_leaves_the_session_intact(broker: BrokerHandle) -> None:
    network, port = broker.network, broker.port
    bavet = TestClient(network.bundle("kh-blo-bavet"), port)
    assert bavet.connect()
    assert bavet.subscribe("blo/node/kh-blo-bavet")
    bavet.close()
    nacd = TestClient(network.bundle("kh-nacd"), port, clean=True)
    assert nacd.connect()
    for i in range(3):
        assert nacd.publish("blo/node/kh-blo-bavet", f"queued {i}".encode())
    # Poipet's valid certificate, Bavet's client id, clean session: must not take over.
    thief = TestClient(network.bundle("kh-blo-poipet"), port, client_id="kh-blo-bavet", clean=True)
    accepted = thief.connect(timeout=3)
    if accepted:
        # Mosquitto: use_username_as_clientid makes it Poipet's own session.
        assert broker.kind == "mosquitto"
        assert thief.subscribe("blo/node/kh-blo-bavet") is not False
        assert not [m for m in thief.collect(quiet=0.8) if m[0] == "blo/node/kh-blo-bavet"]
    thief.close()
    bavet = TestClient(network.bundle("kh-blo-bavet"), port)
    assert bavet.connect()
    got = sorted(p for t, p, _ in bavet.collect(quiet=1.0) if t == "blo/node/kh-blo-bavet")
    assert got == [b"queued 0", b"queued 1", b"queued 2"]
    bavet.close()
    nacd.close()


# -- what they send -----------------------------------------------------------------


def test_oversized_publish_is_not_delivered(network: Network) -> None:
    for start in (embedded_broker, mosquitto_broker):
        with start(network, max_packet=64 * 1024) as handle:  # type: ignore[operator]
            nacd = TestClient(network.bundle("kh-nacd"), handle.port, clean=True)
            bavet = TestClient(network.bundle("kh-blo-bavet"), handle.port, clean=True)
            assert nacd.connect()
            assert bavet.connect()
            assert nacd.subscribe("blo/incident/kh/+")
            bavet.publish("blo/incident/kh/kh-blo-bavet", b"x" * (200 * 1024))
            got = nacd.collect(quiet=1.0)
            assert not [p for _, p, _ in got if len(p) > 64 * 1024], handle.kind
            nacd.close()
            bavet.close()
            assert served(network, handle.port)


def test_blo_retained_alert_is_not_kept(broker: BrokerHandle) -> None:
    network = broker.network
    bavet = TestClient(network.bundle("kh-blo-bavet"), broker.port, clean=True)
    assert bavet.connect()
    bavet.publish("blo/country/kh", b"fake national alert", retain=True)
    bavet.close()
    poipet = TestClient(network.bundle("kh-blo-poipet"), broker.port, clean=True)
    assert poipet.connect()
    assert poipet.subscribe("blo/country/kh")
    assert not poipet.collect(quiet=1.0)
    poipet.close()
    assert served(network, broker.port)


MALFORMED = {
    # PUBLISH QoS 3 on Bavet's own incident topic
    "qos3": b"\x36"
    + _length(len(_string("blo/incident/kh/kh-blo-bavet")) + 2 + 1)
    + _string("blo/incident/kh/kh-blo-bavet")
    + b"\x00\x01x",
    # PUBLISH QoS 1 with packet id 0
    "packet-id-0": b"\x32"
    + _length(len(_string("blo/incident/kh/kh-blo-bavet")) + 2 + 1)
    + _string("blo/incident/kh/kh-blo-bavet")
    + b"\x00\x00x",
    # PUBLISH with a wildcard in the topic
    "wildcard-topic": b"\x30"
    + _length(len(_string("blo/incident/kh/#")) + 1)
    + _string("blo/incident/kh/#")
    + b"x",
    # a remaining length of 256 MB that never comes
    "huge-length": b"\x30\xff\xff\xff\x7f",
    # a remaining length encoded in five bytes
    "five-byte-length": b"\x30\xff\xff\xff\xff\x01",
}


@pytest.mark.parametrize("packet", list(MALFORMED))
def test_malformed_packets_disconnect_only_the_offender(
    broker: BrokerHandle, tmp_path: Path, packet: str
) -> None:
    sock = raw_session(broker.network.bundle("kh-blo-bavet"), broker.port, tmp_path)
    with contextlib.closing(sock):
        sock.sendall(MALFORMED[packet])
        assert closed_within(sock), f"{broker.kind} kept a client that sent {packet}"
    assert served(broker.network, broker.port)
