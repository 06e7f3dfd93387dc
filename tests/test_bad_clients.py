"""Bad clients against both brokers: each is refused or cut off, everyone else is still served."""

from __future__ import annotations

import asyncio
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
from nodekit import wait_for

from broker.embedded import _rules_config
from broker.guard import Frame, inspect
from certs import EnrolmentBundle, Pki
from schemas.access import Rules

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
    """True if the broker closes the connection within ``seconds``.

    End of stream or a reset is "closed"; a read that times out is not: a broker
    that ignores the packet and keeps the socket open is a failure, never a pass.
    Whatever the broker sends meanwhile (a PUBACK) is read and ignored.
    """
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(min(left, 0.5))
        try:
            if not sock.recv(4096):
                return True
        except TimeoutError:
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            return True
    return False


def still_open(sock: ssl.SSLSocket) -> bool:
    """True if a PINGREQ on ``sock`` is answered with a PINGRESP (the control for closed_within)."""
    sock.settimeout(5)
    try:
        sock.sendall(b"\xc0\x00")
        return sock.recv(2) == b"\xd0\x00"
    except (TimeoutError, ConnectionError, ssl.SSLError, OSError):
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


def test_blo_retained_publish_on_its_own_topic_is_not_kept(broker: BrokerHandle) -> None:
    """Bavet may publish on its incident topic, but not retained (only trust is retained).

    The ACL allows the topic, so on the embedded broker only the guard's retained
    check stands between the message and every later subscriber. Mosquitto cannot
    refuse it (retain_available is global and trust must be retained): there it is
    kept for the topic's readers only; tests/test_trust_mosquitto_retain.py shows
    what it can and cannot do.
    """
    network = broker.network
    bavet = TestClient(network.bundle("kh-blo-bavet"), broker.port, clean=True)
    assert bavet.connect()
    bavet.publish("blo/incident/kh/kh-blo-bavet", b"retained incident", retain=True)
    bavet.close()
    nacd = TestClient(network.bundle("kh-nacd"), broker.port, clean=True)
    assert nacd.connect()
    assert nacd.subscribe("blo/incident/kh/+")
    # Positive control: the same office's ordinary publish on that topic arrives.
    bavet = TestClient(network.bundle("kh-blo-bavet"), broker.port, clean=True)
    assert bavet.connect()
    assert bavet.publish("blo/incident/kh/kh-blo-bavet", b"live incident")
    got = nacd.collect(quiet=1.0)
    bavet.close()
    nacd.close()
    assert (("blo/incident/kh/kh-blo-bavet", b"live incident", False)) in got
    retained = [p for t, p, r in got if p == b"retained incident"]
    if broker.kind == "amqtt":
        assert retained == [], "the embedded broker kept a retained message off the trust topics"
    else:
        assert retained == [b"retained incident"]  # Mosquitto 2.0.11 keeps it (documented)
    assert served(network, broker.port)


def test_guard_refuses_a_retained_publish_the_acl_allows(tmp_path: Path) -> None:
    """The guard itself, without a socket: the topic is writable, the retain flag is not."""
    rules = Rules("kh-blo-bavet", (), ("blo/incident/kh/kh-blo-bavet",), ())
    topic = _string("blo/incident/kh/kh-blo-bavet")
    plain = Frame(0x32, topic + b"\x00\x01x")
    assert inspect(plain, first=False, identity="kh-blo-bavet", rules=rules) is None
    retained = Frame(0x33, topic + b"\x00\x01x")
    reason = inspect(retained, first=False, identity="kh-blo-bavet", rules=rules)
    assert reason is not None
    assert "retained" in reason
    trust = Rules("kh-archive", (), ("blo/trust/+/keyset",), ("blo/trust/+/keyset",))
    slot = Frame(0x33, _string("blo/trust/kh/keyset") + b"\x00\x01x")
    assert inspect(slot, first=False, identity="kh-archive", rules=trust) is None


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        ("qos3", "QoS 3"),
        ("packet-id-0", "packet id 0"),
        ("wildcard-topic", "wildcard"),
        ("dup-qos0", "DUP"),
        ("empty-topic", "empty"),
    ],
)
def test_guard_publish_checks(packet: str, why: str) -> None:
    """Each PUBLISH check of the guard, on the bytes alone; a well-formed one passes."""
    rules = Rules("kh-blo-bavet", (), ("blo/incident/kh/kh-blo-bavet",), ())
    raw = {**MALFORMED, **GUARD_ONLY}[packet]
    frame = Frame(raw[0], raw[1 + len(_length(len(raw) - 2)) :])
    reason = inspect(frame, first=False, identity="kh-blo-bavet", rules=rules)
    assert reason is not None
    assert why in reason, reason
    good = b"\x32" + _length(len(_string("blo/incident/kh/kh-blo-bavet")) + 3)
    good += _string("blo/incident/kh/kh-blo-bavet") + b"\x00\x07x"
    frame = Frame(good[0], good[2:])
    assert inspect(frame, first=False, identity="kh-blo-bavet", rules=rules) is None


def test_acl_plugin_refuses_receive_after_the_rules_narrow(network: Network) -> None:
    """A subscription granted under the old rules delivers nothing the new rules forbid.

    Bavet subscribes to its region; then the registry drops that region from its
    rules (as a keyset reload does, without a reconnect). Only the ACL plugin's
    receive check can stop the next alert to that region; Poipet's own
    subscription to its own node topic is the control that delivery goes on.
    """
    with embedded_broker(network) as handle:
        bavet = TestClient(network.bundle("kh-blo-bavet"), handle.port, clean=True)
        nacd = TestClient(network.bundle("kh-nacd"), handle.port, clean=True)
        try:
            assert bavet.connect()
            assert nacd.connect()
            assert bavet.subscribe("blo/region/kh-vn-bavet")
            assert bavet.subscribe("blo/node/kh-blo-bavet")
            assert nacd.publish("blo/region/kh-vn-bavet", b"before")
            assert [p for _, p, _ in bavet.collect(quiet=0.8)] == [b"before"]
            runner = handle.stop
            amqtt = runner.broker._amqtt  # type: ignore[attr-defined]
            plugin = amqtt.plugins_manager.get_plugin("AclPlugin")
            registry = runner.broker.registry  # type: ignore[attr-defined]
            config = _rules_config(registry)
            config["kh-blo-bavet"]["read"] = [
                r for r in config["kh-blo-bavet"]["read"] if "region" not in r
            ]
            plugin.update(config)
            assert nacd.publish("blo/region/kh-vn-bavet", b"after")
            assert nacd.publish("blo/node/kh-blo-bavet", b"control")
            got = [p for _, p, _ in bavet.collect(quiet=0.8)]
            assert got == [b"control"], got
        finally:
            bavet.close()
            nacd.close()


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


GUARD_ONLY = {
    # PUBLISH QoS 0 with DUP set
    "dup-qos0": b"\x38"
    + _length(len(_string("blo/incident/kh/kh-blo-bavet")) + 1)
    + _string("blo/incident/kh/kh-blo-bavet")
    + b"x",
    # PUBLISH on an empty topic
    "empty-topic": b"\x30" + _length(len(_string("")) + 1) + _string("") + b"x",
}


@pytest.mark.parametrize("packet", list(MALFORMED))
def test_malformed_packets_disconnect_only_the_offender(
    broker: BrokerHandle, tmp_path: Path, packet: str
) -> None:
    sock = raw_session(broker.network.bundle("kh-blo-bavet"), broker.port, tmp_path)
    with contextlib.closing(sock):
        assert still_open(sock), "the control: a fresh session answers a PINGREQ"
        sock.sendall(MALFORMED[packet])
        assert closed_within(sock), f"{broker.kind} kept a client that sent {packet}"
    assert served(broker.network, broker.port)


def test_guard_refuses_a_connect_with_a_will() -> None:
    """A will would be published by the broker itself, past the ACL: refused at CONNECT."""
    rules = Rules("kh-blo-bavet", (), ("blo/incident/kh/kh-blo-bavet",), ())

    def connect(flags: int, tail: bytes = b"") -> Frame:
        body = _string("MQTT") + bytes([4, flags]) + b"\x00\x3c" + _string("kh-blo-bavet")
        return Frame(0x10, body + tail)

    plain = connect(0x02)  # clean session, no will: the control
    assert inspect(plain, first=True, identity="kh-blo-bavet", rules=rules) is None
    will = connect(0x02 | 0x04, _string("blo/all") + _string("forged"))
    reason = inspect(will, first=True, identity="kh-blo-bavet", rules=rules)
    assert reason is not None
    assert "will" in reason


def links_ended(monkeypatch: pytest.MonkeyPatch, *, first_late: float = 0.0) -> list[str]:
    """Client ids of the embedded broker's links as their end completes; with
    ``first_late``, the first link to end (the taken-over one) ends that much later.
    A test waits on this rather than sleeping, so under load it still tests the
    order it means (on Mosquitto nothing is recorded: the list stays empty)."""
    import broker.embedded as embedded

    ended: list[str] = []
    real_end = embedded._Broker._handle_disconnect
    started: list[str] = []

    async def end(self, session, handler, waiter):  # type: ignore[no-untyped-def]
        started.append(session.client_id)
        if first_late and len(started) == 1:
            await asyncio.sleep(first_late)
        await real_end(self, session, handler, waiter)
        ended.append(session.client_id)

    monkeypatch.setattr(embedded._Broker, "_handle_disconnect", end)
    return ended


def test_a_session_taken_over_by_its_own_node_still_receives(
    broker: BrokerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tablet that reconnects before the broker has seen its old link close takes
    its own session over (the client's relink after a failed commit does this).

    amqtt 0.12.1 lets the old link's end mark the shared session disconnected after
    the new link took it, so the new link stayed up and received nothing (CI saw a
    tablet stuck for a minute); broker.embedded keeps a taken-over session connected.
    """
    ended = links_ended(monkeypatch)
    network, port = broker.network, broker.port
    old = TestClient(network.bundle("kh-blo-bavet"), port)
    assert old.connect()
    assert old.subscribe("blo/node/kh-blo-bavet")
    old.client.loop_stop()  # the old link stays open, silent, as a half-dead one does
    new = TestClient(network.bundle("kh-blo-bavet"), port)
    nacd = TestClient(network.bundle("kh-nacd"), port, clean=True)
    try:
        assert new.connect()
        assert new.subscribe("blo/node/kh-blo-bavet")
        assert nacd.connect()
        if broker.kind == "amqtt":  # the old link's end has run: the case under test
            assert wait_for(lambda: ended == ["kh-blo-bavet"], 10), ended
        for i in range(3):
            assert nacd.publish("blo/node/kh-blo-bavet", f"after {i}".encode())
        got = sorted(p for t, p, _ in new.collect(quiet=1.0) if t == "blo/node/kh-blo-bavet")
        assert got == [b"after 0", b"after 1", b"after 2"]
    finally:
        for client in (new, nacd, old):
            client.close()


def test_a_taken_over_session_whose_links_have_both_ended_queues_for_the_node(
    broker: BrokerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old link of a take-over may end late, after the newer link has ended too:
    the node is then away, and what comes for it must wait in its session rather than
    go to a closed link (amqtt drops those after its PUBACK wait)."""
    ended = links_ended(monkeypatch, first_late=2.0)
    network, port = broker.network, broker.port
    old = TestClient(network.bundle("kh-blo-bavet"), port)
    assert old.connect()
    assert old.subscribe("blo/node/kh-blo-bavet")
    old.client.loop_stop()  # the old link stays open, silent
    new = TestClient(network.bundle("kh-blo-bavet"), port)
    nacd = TestClient(network.bundle("kh-nacd"), port, clean=True)
    again = TestClient(network.bundle("kh-blo-bavet"), port)
    try:
        assert new.connect()
        new.close()  # the newer link ends first, while the old one's end waits
        if broker.kind == "amqtt":  # both ended, the old one last: the case under test
            assert wait_for(lambda: len(ended) == 2, 10), ended
        assert nacd.connect()
        assert nacd.publish("blo/node/kh-blo-bavet", b"while away")
        assert again.connect()
        assert again.session_present
        got = [p for t, p, _ in again.collect(quiet=1.5) if t == "blo/node/kh-blo-bavet"]
        assert got == [b"while away"]
    finally:
        for client in (again, nacd, old):
            client.close()
