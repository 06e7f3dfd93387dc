"""What a retained message on a non-trust topic can and cannot do on Mosquitto (issue 9, item 10).

The embedded broker's guard refuses a retained PUBLISH off the trust topics.
Mosquitto 2.0.11 cannot: its ``retain_available`` is global (and trust must be
retained), and its ACL file has no notion of the retain flag. So a node may
leave a retained message on any topic it may write. This test pins what that
can do (be handed again, flagged retained, to later readers of that very topic)
and what it cannot (reach anyone who may not read the topic, stick on a topic
the node may not write, touch the trust slots, or make a receiver store a
message twice or unsigned). docs/design.md, "Retained messages on Mosquitto".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from brokers import Network, mosquitto_broker
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mqttc import TestClient

from certs import EnrolmentBundle, Pki
from schemas import Crime, Incident, Position, Reason, Receiver, Rejected, Scope, Signer, seal

INCIDENT = "blo/incident/kh/kh-blo-bavet"


def incident(signer: Signer, seq: int) -> bytes:
    now = datetime.now(UTC).replace(microsecond=0)
    body = Incident(
        crime=Crime.DRUG_TRAFFICKING,
        occurred=now - timedelta(hours=1),
        position=Position(lat=11.0791, lon=106.1846, accuracy_m=10),
        crossing="Bavet",
    )
    return seal(
        signer, body, seq=seq, scope=Scope.country("kh"), issued=now, expires=now + timedelta(1)
    )


def test_what_a_retained_message_can_and_cannot_do_on_mosquitto(network: Network) -> None:
    bavet_bundle = EnrolmentBundle.load(network.bundle("kh-blo-bavet"))
    genuine = incident(bavet_bundle.signer(), 1)
    forged = incident(Signer("kh-blo-bavet", Ed25519PrivateKey.generate()), 2)
    keyset = (network.kh / "trust" / "keyset.msg").read_bytes()
    with mosquitto_broker(network) as handle:
        port = handle.port
        archive = TestClient(network.bundle("kh-archive"), port, clean=True)
        assert archive.connect()
        assert archive.publish("blo/trust/kh/keyset", keyset, retain=True)
        archive.close()
        bavet = TestClient(network.bundle("kh-blo-bavet"), port, clean=True)
        assert bavet.connect()
        assert bavet.publish(INCIDENT, genuine, retain=True)  # its own topic: kept
        assert bavet.publish(INCIDENT, forged, retain=True)  # replaces it: one per topic
        assert bavet.publish("blo/country/kh", b"fake national alert", retain=True)
        assert bavet.publish("blo/trust/kh/keyset", b"not a keyset", retain=True)
        bavet.close()

        # CAN: a later reader of that topic is handed the last one, flagged retained.
        hq = TestClient(network.bundle("kh-nacd"), port, clean=True)
        assert hq.connect()
        assert hq.subscribe("blo/incident/kh/+")
        assert hq.subscribe("blo/trust/+/keyset")
        got = hq.collect(quiet=1.0)
        hq.close()
        assert (INCIDENT, forged, True) in got
        # CANNOT: touch a trust slot (only the archive writes trust topics).
        assert [p for t, p, _ in got if t == "blo/trust/kh/keyset"] == [keyset]
        # CANNOT: make a receiver accept it: forged is refused, a genuine one is a duplicate.
        receiver = Receiver(Pki(network.kh).trust_store(datetime.now(UTC)), me="kh-nacd")
        now = datetime.now(UTC)
        assert receiver.receive(INCIDENT, genuine, now).ok
        again = receiver.receive(INCIDENT, genuine, now)
        assert isinstance(again, Rejected)
        assert again.reason is Reason.DUPLICATE
        refused = receiver.receive(INCIDENT, forged, now)
        assert isinstance(refused, Rejected)
        assert refused.reason in (Reason.UNKNOWN_KEY, Reason.BAD_SIGNATURE)

        # CANNOT: reach a node that may not read the topic, or stick where Bavet may not
        # write. Poipet subscribes to both (Mosquitto grants and filters per message); the
        # control is HQ's live alert on blo/country/kh, which Poipet must receive.
        poipet = TestClient(network.bundle("kh-blo-poipet"), port, clean=True)
        assert poipet.connect()
        poipet.subscribe("blo/incident/kh/+")
        assert poipet.subscribe("blo/country/kh")
        hq = TestClient(network.bundle("kh-nacd"), port, clean=True)
        assert hq.connect()
        assert hq.publish("blo/country/kh", b"live alert")
        got = poipet.collect(quiet=1.0)
        hq.close()
        poipet.close()
        assert got == [("blo/country/kh", b"live alert", False)], got
