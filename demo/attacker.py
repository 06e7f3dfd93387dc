"""The attacker of the demo: a valid connection, no valid signing key.

It holds a copy of the regional coordinator's TLS credential (say, lifted from
a laptop), so the broker lets it publish on ``blo/all``, where every office
listens. It sends three messages no office may accept:

* ``forged``: a new alert that claims to be NACD's, with NACD's key id, signed
  with a key of the attacker's own (bad signature);
* ``tampered``: NACD's real alert, captured, with one bit of its body changed
  (bad signature);
* ``misdirected``: NACD's real alert, unchanged, replayed on ``blo/all`` to
  reach offices it was not addressed to (wrong topic for its signed scope).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from certs import EnrolmentBundle
from demo.offices import HQ
from schemas import (
    SIGNATURE_SIZE,
    Alert,
    AlertText,
    Category,
    Certainty,
    Lang,
    MsgType,
    Scope,
    Severity,
    Signer,
    Status,
    Urgency,
    open_envelope,
    seal,
)
from subscriber import node_client

__all__ = ["Attack", "attack"]

TOPIC = "blo/all"


@dataclass(frozen=True, slots=True)
class _Impostor(Signer):
    """A signer that puts someone else's key id in the header."""

    claimed_key_id: bytes = b""

    @property
    def key_id(self) -> bytes:
        return self.claimed_key_id


@dataclass(frozen=True, slots=True)
class Attack:
    """What the attacker sent: (label, msg_id, wire) of each message."""

    sent: tuple[tuple[str, bytes, bytes], ...]

    @property
    def forged_ids(self) -> set[bytes]:
        """Ids of messages that exist only as forgeries."""
        return {msg_id for label, msg_id, _ in self.sent if label == "forged"}


def forgeries(genuine: bytes, nacd_key_id: bytes, now: datetime) -> list[tuple[str, bytes]]:
    """The three messages (label, wire); ``genuine`` is NACD's real alert as captured."""
    impostor = _Impostor(HQ, Ed25519PrivateKey.generate(), nacd_key_id)
    lie = Alert(
        msg_type=MsgType.ALERT,
        status=Status.ACTUAL,
        category=Category.OTHER,
        severity=Severity.MINOR,
        urgency=Urgency.IMMEDIATE,
        certainty=Certainty.OBSERVED,
        text={
            Lang.EN: AlertText(headline="Stand down vehicle checks at all crossings tonight"),
            Lang.KM: AlertText(headline="បញ្ឈប់ការឆែកយានយន្តនៅគ្រប់ច្រកព្រំដែនយប់នេះ"),
        },
    )
    forged = seal(
        impostor,
        lie,
        seq=1_000_000,
        scope=Scope.all(),
        issued=now,
        expires=now + timedelta(days=1),
    )
    flipped = bytearray(genuine)
    flipped[-SIGNATURE_SIZE - 3] ^= 0x01  # inside the compressed body, under the signature
    return [("forged", forged), ("tampered", bytes(flipped)), ("misdirected", genuine)]


def attack(bundle_path: Path, host: str, port: int, genuine: bytes, now: datetime) -> Attack:
    """Connect with the stolen credential and publish the three messages (QoS 1)."""
    bundle = EnrolmentBundle.load(bundle_path)
    keyset = bundle.trust_store(now).keyset("kh")
    nacd = keyset.node(HQ) if keyset else None
    if nacd is None:
        raise RuntimeError(f"{HQ} is missing from the keyset in {bundle_path}")
    client = node_client(bundle, max_reconnect_delay=2)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    sent = []
    try:
        for label, wire in forgeries(genuine, nacd.keys[-1].key_id, now):
            client.publish(TOPIC, wire, qos=1).wait_for_publish(10)
            sent.append((label, open_envelope(wire).header.msg_id, wire))
    finally:
        client.disconnect()
        client.loop_stop()
    return Attack(tuple(sent))
