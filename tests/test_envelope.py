"""The signed envelope on the reference alert: size, round trip, every truncation and bit flip."""

from __future__ import annotations

from datetime import UTC, datetime

import msgpack
import pytest
from netsim import Net, reference_alert, reference_document

from schemas import (
    Accepted,
    DecodeError,
    EncodeError,
    Reason,
    Rejected,
    Scope,
    UnsupportedError,
    open_envelope,
    seal,
    to_document,
)
from schemas.envelope import SIGNATURE_SIZE

TOPIC = "blo/all"
SENDER = "th-unodc-rbm"  # the reference alert is scoped to all: a regional coordinator's


@pytest.fixture(scope="module")
def wire(net: Net) -> bytes:
    body, scope, issued, expires = reference_alert()
    return net.send(SENDER, body, scope, seq=7, issued=issued, expires=expires)


def test_reference_alert_fits_640_bytes(wire: bytes) -> None:
    assert len(wire) <= 640, f"signed reference alert is {len(wire)} bytes"


def test_reference_alert_round_trips_losslessly(net: Net, wire: bytes) -> None:
    result = net.receiver().receive(TOPIC, wire, net.now)
    assert isinstance(result, Accepted)
    doc = to_document(result.header, result.body)
    assert doc == {**reference_document(), "sender": SENDER}
    # Times keep their UTC offset (+07:00), not just the instant.
    assert doc["sent"] == "2026-06-20T09:12:00+07:00"


def _field_spans(wire: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges of the header's key id and of the signature."""
    signed = wire[:-SIGNATURE_SIZE]
    header = open_envelope(wire).header
    start = signed.index(b"\xc4\x08" + header.key_id) + 2
    return {"key_id": (start, start + 8), "signature": (len(signed), len(wire))}


def test_every_truncated_prefix_rejected(net: Net, wire: bytes) -> None:
    receiver = net.receiver()
    for cut in range(len(wire)):
        result = receiver.receive(TOPIC, wire[:cut], net.now)
        assert isinstance(result, Rejected), cut
        # A cut leaves a malformed message; only a cut inside the signature can
        # leave a parsable header, whose signature then fails.
        assert result.reason in (Reason.MALFORMED, Reason.BAD_SIGNATURE), (cut, str(result))
    assert receiver.receive(TOPIC, wire, net.now).ok


def test_every_single_bit_flip_rejected(net: Net, wire: bytes) -> None:
    receiver = net.receiver()
    spans = _field_spans(wire)
    body_start = len(wire) - SIGNATURE_SIZE - len(open_envelope(wire).body)
    for index in range(len(wire)):
        for bit in range(8):
            flipped = bytearray(wire)
            flipped[index] ^= 1 << bit
            result = receiver.receive(TOPIC, bytes(flipped), net.now)
            assert isinstance(result, Rejected), (index, bit)
            if spans["key_id"][0] <= index < spans["key_id"][1]:
                expected = {Reason.UNKNOWN_KEY}
            elif index >= body_start:  # body and signature bytes
                expected = {Reason.BAD_SIGNATURE}
            else:  # header structure and fields
                expected = {
                    Reason.MALFORMED,
                    Reason.UNSUPPORTED,
                    Reason.UNKNOWN_KEY,
                    Reason.BAD_SIGNATURE,
                }
            assert result.reason in expected, (index, bit, str(result))
    assert receiver.receive(TOPIC, wire, net.now).ok


def test_signature_covers_received_bytes_not_a_re_encoding(net: Net, wire: bytes) -> None:
    # Re-encode the same header with a wider integer form: same values, other bytes.
    fields = list(msgpack.unpackb(wire[:-SIGNATURE_SIZE], raw=False))
    packer_bytes = msgpack.packb(fields, use_bin_type=True)
    assert packer_bytes == wire[:-SIGNATURE_SIZE]
    widened = b"\x9d\xce\x00\x00\x00\x02" + msgpack.packb(fields[1:], use_bin_type=True)[1:]
    assert msgpack.unpackb(widened, raw=False) == fields
    forged = widened + wire[-SIGNATURE_SIZE:]
    result = net.receiver().receive(TOPIC, forged, net.now)
    assert isinstance(result, Rejected)
    assert result.reason is Reason.BAD_SIGNATURE
    # Signed over those very bytes, the wide form is accepted: bytes are what count.
    signer = net.signers[SENDER]
    resigned = widened + signer.private_key.sign(widened)
    assert net.receiver().receive(TOPIC, resigned, net.now).ok


def test_future_version_is_unsupported(net: Net, wire: bytes) -> None:
    fields = list(msgpack.unpackb(wire[:-SIGNATURE_SIZE], raw=False))
    fields[0] = 3
    signed = msgpack.packb(fields, use_bin_type=True)
    with pytest.raises(UnsupportedError, match="upgrade"):
        open_envelope(signed + b"\x00" * 64)
    result = net.receiver().receive(TOPIC, signed + b"\x00" * 64, net.now)
    assert isinstance(result, Rejected)
    assert result.reason is Reason.UNSUPPORTED


@pytest.mark.parametrize(
    ("index", "value", "complaint"),
    [
        (1, 99, "unknown message kind"),
        (2, "KH-NACD", "malformed sender"),
        (2, "kh/../nacd", "malformed sender"),
        (3, b"\x00" * 7, "key id must be 8 bytes"),
        (4, 0, "epoch 0 is out of range"),
        (4, 2**63, "epoch"),
        (4, True, "expected int, got bool"),
        (5, 0, "sequence number"),
        (5, 1.0, "expected int, got float"),
        (7, 61, "UTC offset"),
        (8, 0, "expires before"),
        (9, "x" * 16, "expected bytes, got str"),
        (10, "everyone", "scope"),
        (10, "node:kh-a,kh-b", "exactly one"),
        (11, True, "expected int, got bool"),
        (12, "body", "expected bytes, got str"),
    ],
)
def test_header_fields_checked(wire: bytes, index: int, value: object, complaint: str) -> None:
    fields = list(msgpack.unpackb(wire[:-SIGNATURE_SIZE], raw=False))
    fields[index] = value
    signed = msgpack.packb(fields, use_bin_type=True)
    with pytest.raises(DecodeError, match=complaint):
        open_envelope(signed + wire[-SIGNATURE_SIZE:])


def test_trust_message_carries_epoch_zero(net: Net) -> None:
    keyset = net.keyset("kh")
    scope = Scope.country("kh")
    wire = seal(net.roots["kh"], keyset, seq=1, scope=scope, issued=net.now, expires=net.now)
    assert open_envelope(wire).header.epoch == 0
    with pytest.raises(EncodeError, match="epoch"):
        seal(net.roots["kh"], keyset, seq=1, scope=scope, issued=net.now, expires=net.now, epoch=5)
    fields = list(msgpack.unpackb(wire[:-SIGNATURE_SIZE], raw=False))
    fields[4] = 7
    with pytest.raises(DecodeError, match="epoch 7 is out of range for a keyset"):
        open_envelope(msgpack.packb(fields, use_bin_type=True) + wire[-SIGNATURE_SIZE:])


def test_trust_message_must_be_scoped_to_its_country(net: Net) -> None:
    keyset = net.keyset("kh")
    wire = seal(net.roots["kh"], keyset, seq=1, scope=Scope.all(), issued=net.now, expires=net.now)
    with pytest.raises(DecodeError, match="own country"):
        open_envelope(wire)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seq": 0},
        {"seq": 2**63},
        {"issued": datetime(2026, 1, 1)},  # naive
        {"issued": datetime(2026, 1, 1, tzinfo=UTC), "expires": datetime(2025, 1, 1, tzinfo=UTC)},
        {"msg_id": b"short"},
        {"epoch": 0},
        {"epoch": 2**63},
    ],
)
def test_seal_refuses_bad_header(net: Net, kwargs: dict[str, object]) -> None:
    body, scope, issued, expires = reference_alert()
    args: dict[str, object] = {"seq": 1, "scope": scope, "issued": issued, "expires": expires}
    args.update(kwargs)
    with pytest.raises(EncodeError):
        seal(net.signers[SENDER], body, **args)  # type: ignore[arg-type]


def test_seal_refuses_oversized_message(net: Net) -> None:
    import os

    from schemas import KeyEntry, Keyset, NodeEntry, Role

    # 2,000 nodes with 8 random (incompressible) keys each: about 1 MB.
    def keys() -> tuple[KeyEntry, ...]:
        return tuple(
            KeyEntry(
                key_id=os.urandom(8),
                public_key=os.urandom(32),
                not_before=net.now,
                not_after=net.now,
            )
            for _ in range(8)
        )

    nodes = tuple(NodeEntry(node=f"kh-n{i}", role=Role.BLO, keys=keys()) for i in range(2000))
    keyset = Keyset(country="kh", version=2, issued=net.now, expires=net.now, nodes=nodes)
    with pytest.raises(EncodeError, match="over the"):
        seal(
            net.roots["kh"],
            keyset,
            seq=2,
            scope=Scope.country("kh"),
            issued=net.now,
            expires=net.now,
        )


def test_a_body_over_the_receivers_limit_is_refused_at_the_sender() -> None:
    """A keyset too large for any receiver to decode fails where it is made, naming
    the limit, instead of being published and dropped by every tablet."""
    from schemas import EncodeError, Keyset
    from schemas.envelope import MAX_BODY

    net = Net()
    one = net.entries["kh-blo-bavet"]

    def keyset(count: int) -> Keyset:
        nodes = tuple(one.model_copy(update={"node": f"kh-blo-t{i:05d}"}) for i in range(count))
        return net.keyset("kh").model_copy(update={"nodes": nodes})

    with pytest.raises(EncodeError, match=f"over the {MAX_BODY:,}-byte limit"):
        net.trust_message(keyset(3_000))
    assert (
        len(net.trust_message(keyset(1_400))) < MAX_BODY
    )  # control: the fleet size the bench uses
