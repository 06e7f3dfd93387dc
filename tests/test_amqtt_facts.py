"""One test per known amqtt 0.12.1 behaviour (the broker issue's list).

Each shows the project's behaviour is right regardless, and where it can, also
pins the upstream behaviour itself: when an amqtt upgrade changes one, the
test that fails names what changed.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from amqtt.broker import Broker
from brokers import BrokerHandle, Network, embedded_broker
from mqttc import TestClient
from netsim import ALERT
from nodekit import Nodes, wait_for
from test_bad_clients import _length, _string, closed_within, raw_session, still_open

from broker.config import BrokerSettings
from broker.embedded import _server_context
from certs import EnrolmentBundle
from schemas import Accepted, Receiver, Scope, seal


def signed_alert(network: Network, seq: int = 1) -> bytes:
    signer = EnrolmentBundle.load(network.bundle("kh-nacd")).signer()
    now = datetime.now(UTC).replace(microsecond=0)
    return seal(
        signer,
        ALERT,
        seq=seq,
        scope=Scope.country("kh"),
        issued=now,
        expires=now + timedelta(days=1),
    )


def test_1_sessions_are_not_anonymous_so_offline_messages_queue(network: Network) -> None:
    """Fact 1: anonymous sessions never queue and are dropped ~1 s after disconnect."""
    with embedded_broker(network) as handle:
        bavet = TestClient(network.bundle("kh-blo-bavet"), handle.port)
        assert bavet.connect()
        assert bavet.subscribe("blo/country/kh")
        bavet.close()
        time.sleep(2.0)  # longer than amqtt's anonymous-session expiry
        nacd = TestClient(network.bundle("kh-nacd"), handle.port, clean=True)
        assert nacd.connect()
        wire = signed_alert(network)
        assert nacd.publish("blo/country/kh", wire)
        nacd.close()
        bavet = TestClient(network.bundle("kh-blo-bavet"), handle.port)
        assert bavet.connect()
        assert [p for t, p, _ in bavet.collect(quiet=1.0) if t == "blo/country/kh"] == [wire]
        bavet.close()


def test_2_tls_requires_a_client_certificate(network: Network) -> None:
    """Fact 2: amqtt's own TLS listener uses CERT_OPTIONAL; ours requires a certificate."""
    listener = {
        "certfile": str(network.kh / "servers/broker/tls.crt"),
        "keyfile": str(network.kh / "servers/broker/tls.key"),
    }
    upstream = Broker._create_ssl_context(listener)  # what amqtt would do
    assert upstream.verify_mode == ssl.CERT_OPTIONAL
    ours = _server_context(BrokerSettings(pki=network.kh))
    assert ours.verify_mode == ssl.CERT_REQUIRED


def test_3_queued_messages_arrive_flagged_retained_and_still_verify(network: Network) -> None:
    """Fact 3: offline-queued messages come with RETAIN=1; receivers ignore the flag."""
    with embedded_broker(network) as handle:
        bavet = TestClient(network.bundle("kh-blo-bavet"), handle.port)
        assert bavet.connect()
        assert bavet.subscribe("blo/country/kh")
        bavet.close()
        nacd = TestClient(network.bundle("kh-nacd"), handle.port, clean=True)
        assert nacd.connect()
        wire = signed_alert(network)
        assert nacd.publish("blo/country/kh", wire)
        nacd.close()
        bavet = TestClient(network.bundle("kh-blo-bavet"), handle.port)
        assert bavet.connect()
        got = [(p, r) for t, p, r in bavet.collect(quiet=1.0) if t == "blo/country/kh"]
        bavet.close()
        assert got == [(wire, True)]  # upstream behaviour, pinned
        receiver = Receiver(
            EnrolmentBundle.load(network.bundle("kh-blo-bavet")).trust_store(datetime.now(UTC)),
            me="kh-blo-bavet",
        )
        assert isinstance(
            receiver.receive("blo/country/kh", got[0][0], datetime.now(UTC)), Accepted
        )


def test_4_only_public_trust_data_can_be_retained(network: Network, tmp_path: Path) -> None:
    """Fact 4: amqtt 0.12.1 hands every retained message to a new client whose
    subscriptions do not match it (at connect, for the filters *other* sessions
    hold), past the ACL. The embedded broker delivers a retained message only for
    the session's own matching subscription (embedded._Broker; mosquitto_sub in
    tests/test_trust_retained.py), and only trust is ever retained."""
    with embedded_broker(network) as handle:
        archive = TestClient(network.bundle("kh-archive"), handle.port, clean=True)
        assert archive.connect()
        keyset = (network.kh / "trust" / "keyset.msg").read_bytes()
        assert archive.subscribe("blo/trust/kh/keyset")
        assert archive.publish("blo/trust/kh/keyset", keyset, retain=True)
        # A client that subscribed to nothing is handed nothing (upstream sent the keyset).
        poipet = TestClient(network.bundle("kh-blo-poipet"), handle.port, clean=True)
        assert poipet.connect()
        assert poipet.collect(quiet=1.0) == []
        # The control: once it asks for the slot, the keyset comes, flagged retained.
        assert poipet.subscribe("blo/trust/+/keyset")
        got = poipet.collect(quiet=1.0)
        assert [(t, p, r) for t, p, r in got] == [("blo/trust/kh/keyset", keyset, True)]
        poipet.close()
        archive.close()
        # A BLO's retained incident, on a topic its ACL lets it write: the guard refuses it.
        sock = raw_session(network.bundle("kh-blo-bavet"), handle.port, tmp_path)
        assert still_open(sock)
        topic = _string("blo/incident/kh/kh-blo-bavet")
        sock.sendall(b"\x31" + _length(len(topic) + 6) + topic + b"secret")
        assert closed_within(sock)
        sock.close()


def test_5_in_flight_message_lost_on_disconnect_is_replayed(
    network: Network, tmp_path: Path
) -> None:
    """Fact 5: a QoS 1 message in flight at a disconnect is not redelivered (upstream #401)."""
    with embedded_broker(network) as handle:
        # A raw persistent session that receives a PUBLISH and leaves without PUBACK.
        sock = raw_session(network.bundle("kh-blo-bavet"), handle.port, tmp_path)
        sock.close()
        persistent = _persistent_raw(network, handle.port, tmp_path)
        topic = _string("blo/country/kh")
        persistent.sendall(b"\x82" + _length(2 + len(topic) + 1) + b"\x00\x01" + topic + b"\x01")
        assert persistent.recv(5)[:1] == b"\x90"  # SUBACK
        nacd = TestClient(network.bundle("kh-nacd"), handle.port, clean=True)
        assert nacd.connect()
        wire = signed_alert(network)
        assert nacd.publish("blo/country/kh", wire)
        persistent.settimeout(5)
        first = persistent.recv(4096)
        assert first[:1] in (b"\x32", b"\x3a")  # the PUBLISH arrived; no PUBACK is sent
        persistent.close()
        nacd.close()
        again = _persistent_raw(network, handle.port, tmp_path)
        again.settimeout(2)
        with contextlib.suppress(TimeoutError, ssl.SSLError, OSError):
            redelivered = again.recv(4096)
            assert b"blo/country/kh" not in redelivered, "amqtt now redelivers: update fact 5"
        again.close()
        # The project does not depend on it: the archive replays (tests/test_archive.py).


def _persistent_raw(network: Network, port: int, tmp_path: Path) -> ssl.SSLSocket:
    from test_bad_clients import tls_files

    bundle = EnrolmentBundle.load(network.bundle("kh-blo-bavet"))
    ca, cert, key = tls_files(bundle, tmp_path / "persistent")
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    import socket

    sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost"
    )
    body = _string("MQTT") + bytes([4, 0x00]) + struct.pack("!H", 30) + _string("kh-blo-bavet")
    sock.sendall(b"\x10" + _length(len(body)) + body)
    assert sock.recv(4)[:2] == b"\x20\x02"
    return sock


def test_6_nothing_survives_a_restart_so_the_archive_is_separate(network: Network) -> None:
    """Fact 6: sessions are gone after a restart; the archive keeps its own SQLite file."""
    with embedded_broker(network) as handle:
        bavet = TestClient(network.bundle("kh-blo-bavet"), handle.port)
        assert bavet.connect()
        assert not bavet.session_present
        bavet.close()
        bavet = TestClient(network.bundle("kh-blo-bavet"), handle.port)
        assert bavet.connect()
        assert bavet.session_present  # kept while the broker runs
        bavet.close()
    with embedded_broker(network) as handle:
        bavet = TestClient(network.bundle("kh-blo-bavet"), handle.port)
        assert bavet.connect()
        assert not bavet.session_present, "amqtt now keeps sessions across restarts: fact 6"
        bavet.close()
    # Clients therefore subscribe on every connect and ask the archive to catch up;
    # the archive survives SIGKILL and restarts: test_archive.py::test_broker_killed_*


def test_7_denied_publish_is_acknowledged_but_logged_and_dropped(
    network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    """Fact 7: a denied publish is still PUBACKed: nobody receives it; the log names it."""
    caplog.set_level(logging.WARNING, logger="blo.broker")
    with embedded_broker(network) as handle:
        poipet = TestClient(network.bundle("kh-blo-poipet"), handle.port, clean=True)
        bavet = TestClient(network.bundle("kh-blo-bavet"), handle.port, clean=True)
        assert poipet.connect()
        assert bavet.connect()
        assert poipet.subscribe("blo/country/kh")
        assert bavet.publish("blo/country/kh", b"forged national alert")  # PUBACKed
        assert poipet.collect(quiet=1.0) == []
        poipet.close()
        bavet.close()
    assert any("denied kh-blo-bavet publish blo/country/kh" in r.message for r in caplog.records)


@pytest.mark.parametrize("broker", ["amqtt"], indirect=True)
def test_8_what_was_acknowledged_is_delivered_when_the_publisher_leaves_at_once(
    broker: BrokerHandle, nodes: Nodes
) -> None:
    """Fact 8 (found by the benchmarks): amqtt acknowledges a PUBLISH before it fans
    it out, and stops fanning out when the publisher disconnects. A publisher that
    leaves right after its PUBACKs (as ``blo-pub --send`` does) had about half of
    200 alerts delivered to no one, the archive included. The embedded broker
    delivers what is left before ending the session (embedded._Broker)."""
    network = broker.network
    bavet = nodes.start("kh-blo-bavet")
    assert wait_for(bavet.connected.is_set, 10)
    time.sleep(1.0)  # its subscriptions go out after CONNACK
    nodes.stop("kh-blo-bavet")
    raw = TestClient(network.bundle("kh-analyst"), broker.port)  # what amqtt itself queues
    assert raw.connect()
    assert raw.subscribe("blo/country/kh")
    raw.close()
    count = 200
    wires = [signed_alert(network, seq) for seq in range(1, count + 1)]
    hq = TestClient(network.bundle("kh-nacd"), broker.port, clean=True)
    assert hq.connect()
    infos = [hq.client.publish("blo/country/kh", wire, 1) for wire in wires]
    for info in infos:
        info.wait_for_publish(20)
    hq.close()  # at once
    archive = nodes.archive  # type: ignore[attr-defined]
    assert wait_for(lambda: archive.store.count() >= count, 20), archive.store.count()
    raw = TestClient(network.bundle("kh-analyst"), broker.port)
    assert raw.connect()
    queued = {p for t, p, _ in raw.collect(quiet=1.5) if t == "blo/country/kh"}
    raw.close()
    assert len(queued) == count
    bavet = nodes.start("kh-blo-bavet")
    assert wait_for(lambda: bavet.inbox.count() >= count, 30), bavet.inbox.count()
