"""Sealed messages, sans I/O: sealing, opening, recipient checks, keys, the codec.

Real PKI folders (built once for the module) give real keysets with X25519
encryption keys; everything else is the receiver core and schemas/seal.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from certs import EnrolmentBundle, Pki
from publisher.errors import ComposeError
from publisher.sealing import seal_for
from schemas import (
    Accepted,
    Bulletin,
    BulletinText,
    Category,
    Crime,
    DecodeError,
    EncodeError,
    Incident,
    Kind,
    Lang,
    Position,
    Reason,
    Receiver,
    Rejected,
    Role,
    Scope,
    TrustStore,
    open_envelope,
    pack,
    seal,
    topics_for,
    unpack_model,
)
from schemas.recipients import seal_recipients
from schemas.seal import (
    WRAP_SIZE,
    Opened,
    Opener,
    RecipientKey,
    SealedBody,
    SealedRecipient,
    Unopened,
    open_body,
    seal_body,
)

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
SECRET = "SEALED-MARKER-7f3a"
BULLETIN = Bulletin(
    category=Category.DRUG_SEIZURE,
    text={Lang.EN: BulletinText(headline=f"Van at night {SECRET}", body=f"{SECRET} plates")},
)
BAVET, MOCBAI, XAMAT, POIPET = "kh-blo-bavet", "vn-blo-mocbai", "vn-blo-xamat", "kh-blo-poipet"


@dataclass
class World:
    kh: Pki
    vn: Pki

    def bundle(self, node: str) -> EnrolmentBundle:
        pki = self.vn if node.startswith("vn-") else self.kh
        return EnrolmentBundle.load(pki.dir / "bundles" / f"{node}.json")

    def receiver(self, node: str | None, *, keys: bool = True) -> Receiver:
        """``node``'s receiver (None: the archive's, which reads every audience)."""
        b = self.bundle(node or "kh-archive")
        opener = b.opener() if node and keys else None
        return Receiver(b.trust_store(NOW), me=node, opener=opener)


def _world(root: Path) -> World:
    kh, vn = Pki(root / "kh"), Pki(root / "vn")
    vn.init("vn", "vn-sodc", NOW)
    vn.issue(MOCBAI, Role.BLO, NOW, regions=["kh-vn-bavet"], counterparts=[BAVET])
    vn.issue(XAMAT, Role.BLO, NOW, regions=["kh-vn-xamat"], counterparts=[BAVET])
    kh.init("kh", "kh-nacd", NOW)
    kh.issue(BAVET, Role.BLO, NOW, regions=["kh-vn-bavet"], counterparts=[MOCBAI, XAMAT])
    kh.issue(POIPET, Role.BLO, NOW, regions=["kh-th-poipet"])
    kh.issue("kh-analyst", Role.OBSERVER, NOW)
    kh.issue("kh-archive", Role.ARCHIVE, NOW)
    kh.import_root(vn.dir)
    vn.import_root(kh.dir)
    for node in ("kh-nacd", BAVET, POIPET, "kh-analyst", "kh-archive"):
        kh.write_bundle(node)
    for node in (MOCBAI, XAMAT):
        vn.write_bundle(node)
    return World(kh, vn)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _world(tmp_path_factory.mktemp("seal-pki"))


def _topic(kind: Kind, scope: Scope, sender: str, to: str | None = None) -> str:
    topics = topics_for(kind, scope, sender)
    return next(t for t in topics if to is None or f"/{to}/" in t)


def _sealed_bulletin(
    w: World,
    *,
    scope: str = f"bulletin:{MOCBAI}",
    recipients: list[RecipientKey] | None = None,
    seq: int = 1,
) -> bytes:
    bavet = w.bundle(BAVET)
    s = Scope.parse(scope)
    if recipients is None:
        found = seal_recipients(Kind.BULLETIN, s, BAVET, bavet.trust_store(NOW), NOW)
        assert not isinstance(found, str)
        recipients = found
    return seal(
        bavet.signer(),
        BULLETIN,
        seq=seq,
        scope=s,
        issued=NOW,
        expires=NOW + timedelta(days=1),
        epoch=7,
        seal_for=recipients,
    )


def _key(w: World, node: str) -> RecipientKey:
    found = seal_recipients(Kind.BULLETIN, Scope.parse(f"bulletin:{node}"), BAVET, _trust(w), NOW)
    assert not isinstance(found, str)
    return found[0]


def _trust(w: World) -> TrustStore:
    return w.bundle(BAVET).trust_store(NOW)


# -- the round trip and who can read -------------------------------------------------


def test_a_sealed_bulletin_opens_for_its_counterpart_only(world: World) -> None:
    wire = _sealed_bulletin(world)
    assert SECRET.encode() not in wire
    topic = _topic(Kind.BULLETIN, Scope.parse(f"bulletin:{MOCBAI}"), BAVET)
    got = world.receiver(MOCBAI).receive(topic, wire, NOW)
    assert isinstance(got, Accepted), got
    assert got.body == BULLETIN  # positive control: the marker is there once opened
    # The archive checks signature and recipients without a key, and keeps it sealed.
    archived = world.receiver(None).receive(topic, wire, NOW)
    assert isinstance(archived, Accepted), archived
    assert isinstance(archived.body, SealedBody)
    assert archived.body.nodes == [MOCBAI]
    # Without its keys the counterpart still accepts it (signed, for it) but cannot read it.
    blind = world.receiver(MOCBAI, keys=False).receive(topic, wire, NOW)
    assert isinstance(blind, Accepted)
    assert isinstance(blind.body, SealedBody)


def test_the_signature_is_checked_without_opening(world: World) -> None:
    wire = bytearray(_sealed_bulletin(world))
    wire[-70] ^= 1  # inside the ciphertext, covered by the signature
    topic = _topic(Kind.BULLETIN, Scope.parse(f"bulletin:{MOCBAI}"), BAVET)
    got = world.receiver(None).receive(topic, bytes(wire), NOW)
    assert isinstance(got, Rejected)
    assert got.reason is Reason.BAD_SIGNATURE


def test_a_non_recipient_is_told_why_it_cannot_read(world: World) -> None:
    sealed = open_envelope(_sealed_bulletin(world))
    body = sealed.open_body(world.bundle(POIPET).opener())
    assert isinstance(body, Unopened)
    assert f"sealed for {MOCBAI}; {POIPET} is not a recipient" in body.reason


# -- re-addressing ------------------------------------------------------------------------


def test_a_bulletin_sealed_for_a_third_office_is_refused(world: World) -> None:
    """Addressed to Moc Bai, but its key also wrapped for Xa Mat: refused everywhere."""
    extra = [_key(world, MOCBAI), _key(world, XAMAT)]
    wire = _sealed_bulletin(world, recipients=extra)
    topic = _topic(Kind.BULLETIN, Scope.parse(f"bulletin:{MOCBAI}"), BAVET)
    for who in (None, MOCBAI):
        got = world.receiver(who).receive(topic, wire, NOW)
        assert isinstance(got, Rejected), got
        assert got.reason is Reason.BAD_RECIPIENTS, got
        assert XAMAT in got.detail


def test_a_sealed_body_moved_to_another_audience_is_refused_or_unreadable(world: World) -> None:
    """The sender's own key re-signs Moc Bai's sealed body addressed to Xa Mat (a third
    office): the recipients no longer match the scope. Put back under a new header for
    Moc Bai, the recipients match but the seal is bound to the old header: it opens for
    no one."""
    original = open_envelope(_sealed_bulletin(world))
    stolen = original.body
    bavet = world.bundle(BAVET)

    def resign(scope: str, seq: int) -> bytes:
        fields = list(msgpack.unpackb(original.signed, raw=False))
        fields[5], fields[9], fields[10], fields[12] = seq, bytes(16), scope, stolen
        signed = bytes(msgpack.packb(fields, use_bin_type=True))
        return signed + bavet.signer().private_key.sign(signed)

    to_xamat = resign(f"bulletin:{XAMAT}", 2)
    topic = _topic(Kind.BULLETIN, Scope.parse(f"bulletin:{XAMAT}"), BAVET)
    for who in (None, XAMAT):
        got = world.receiver(who).receive(topic, to_xamat, NOW)
        assert isinstance(got, Rejected), got
        assert got.reason is Reason.BAD_RECIPIENTS, got
    replayed = resign(f"bulletin:{MOCBAI}", 3)
    topic = _topic(Kind.BULLETIN, Scope.parse(f"bulletin:{MOCBAI}"), BAVET)
    got = world.receiver(MOCBAI).receive(topic, replayed, NOW)
    assert isinstance(got, Accepted), got
    assert isinstance(got.body, Unopened), got
    assert "does not open" in got.body.reason


def test_another_signer_cannot_pass_off_a_sealed_body_as_its_own(world: World) -> None:
    """Xa Mat signs Bavet's sealed bulletin (for Moc Bai) as its own, to Bavet: the
    recipients are not its scope, so it is refused before anyone tries to open it."""
    original = open_envelope(_sealed_bulletin(world))
    xamat = world.bundle(XAMAT).signer()
    fields = list(msgpack.unpackb(original.signed, raw=False))
    fields[2], fields[3], fields[10] = XAMAT, xamat.key_id, f"bulletin:{BAVET}"
    signed = msgpack.packb(fields, use_bin_type=True)
    wire = signed + xamat.private_key.sign(signed)
    topic = _topic(Kind.BULLETIN, Scope.parse(f"bulletin:{BAVET}"), XAMAT)
    got = world.receiver(None).receive(topic, wire, NOW)
    assert isinstance(got, Rejected)
    assert got.reason is Reason.BAD_RECIPIENTS


# -- keys: independent, rotated, revoked ------------------------------------------------


def test_the_encryption_key_is_its_own(world: World) -> None:
    entry = world.kh.keyset().node(BAVET)
    assert entry is not None
    assert len(entry.seal_keys) == 1
    assert entry.seal_keys[0].public_key != entry.keys[0].public_key
    assert (world.kh.dir / "nodes" / BAVET / "seal.key").stat().st_mode & 0o077 == 0
    assert len(world.bundle(BAVET).seal_keys) == 1


def test_rotation_seals_to_the_new_key_and_the_old_one_still_opens(tmp_path: Path) -> None:
    w = _world(tmp_path)
    old_wire = _sealed_bulletin(w)
    later = NOW + timedelta(hours=1)
    fresh = w.vn.rotate(MOCBAI, later)
    w.kh.import_root(w.vn.dir)
    w.kh.write_bundle(BAVET)
    trust = w.bundle(BAVET).trust_store(later)
    found = seal_recipients(Kind.BULLETIN, Scope.parse(f"bulletin:{MOCBAI}"), BAVET, trust, later)
    assert not isinstance(found, str)
    (chosen,) = found
    entry = w.vn.keyset().node(MOCBAI)
    assert entry is not None
    assert chosen.key_id == entry.seal_keys[-1].key_id
    assert chosen.key_id != fresh.key_id  # the signing key rotated apart
    opener = w.bundle(MOCBAI).opener()
    assert len(opener.keys) == 2
    assert open_envelope(old_wire).open_body(opener) == BULLETIN


def test_a_revoked_recipient_key_is_not_used_for_new_messages(tmp_path: Path) -> None:
    w = _world(tmp_path)
    old_key = _key(w, MOCBAI)
    stale_wire = _sealed_bulletin(w)  # sealed before the revocation
    later = NOW + timedelta(hours=1)
    w.vn.rotate(MOCBAI, later)
    w.vn.revoke(MOCBAI, later, reason="tablet lost", key_id=old_key.key_id)
    w.kh.import_root(w.vn.dir)
    w.kh.write_bundle(BAVET)
    w.kh.write_bundle("kh-archive")
    trust = w.bundle(BAVET).trust_store(later)
    scope = Scope.parse(f"bulletin:{MOCBAI}")
    found = seal_for(Kind.BULLETIN, scope, BAVET, trust, later)
    assert found is not None
    assert [r.key_id for r in found] != [old_key.key_id]
    # A sender still holding the old keyset sealed to the revoked key: refused.
    archive = Receiver(w.bundle("kh-archive").trust_store(later))
    got = archive.receive(_topic(Kind.BULLETIN, scope, BAVET), stale_wire, later)
    assert isinstance(got, Rejected), got
    assert got.reason is Reason.REVOKED_KEY, got
    # With the only key revoked, nothing is sealed to it: the message is refused.
    w.vn.revoke(MOCBAI, later, key_id=found[0].key_id)
    w.kh.import_root(w.vn.dir)
    w.kh.write_bundle(BAVET)
    with pytest.raises(ComposeError, match="no current encryption key"):
        seal_for(Kind.BULLETIN, scope, BAVET, w.bundle(BAVET).trust_store(later), later)


# -- confidential alerts and incidents ------------------------------------------------------


def test_a_confidential_incident_is_sealed_for_its_readers_not_the_archive(world: World) -> None:
    bavet = world.bundle(BAVET)
    scope = Scope.country("kh")
    incident = Incident(
        crime=Crime.DRUG_TRAFFICKING,
        occurred=NOW,
        position=Position(lat=11.07, lon=106.18),
        narrative={Lang.EN: SECRET},
    )
    recipients = seal_for(
        Kind.INCIDENT, scope, BAVET, bavet.trust_store(NOW), NOW, confidential=True
    )
    assert recipients is not None
    assert sorted(r.node for r in recipients) == ["kh-analyst", "kh-nacd"]
    assert seal_for(Kind.INCIDENT, scope, BAVET, bavet.trust_store(NOW), NOW) is None
    wire = seal(
        bavet.signer(),
        incident,
        seq=5,
        scope=scope,
        issued=NOW,
        expires=NOW + timedelta(days=1),
        epoch=7,
        seal_for=recipients,
    )
    assert SECRET.encode() not in wire
    topic = _topic(Kind.INCIDENT, scope, BAVET)
    hq = world.receiver("kh-nacd").receive(topic, wire, NOW)
    assert isinstance(hq, Accepted)
    assert hq.body == incident
    assert isinstance(world.receiver(None).receive(topic, wire, NOW), Accepted)
    # Sealed for a node that may not read incidents (a BLO): refused.
    wrong = [*recipients, _key(world, POIPET)]
    wire = seal(
        bavet.signer(),
        incident,
        seq=6,
        scope=scope,
        issued=NOW,
        expires=NOW + timedelta(days=1),
        epoch=7,
        seal_for=wrong,
    )
    got = world.receiver(None).receive(topic, wire, NOW)
    assert isinstance(got, Rejected)
    assert got.reason is Reason.BAD_RECIPIENTS


def test_receipts_and_trust_are_never_sealed(world: World) -> None:
    with pytest.raises(EncodeError, match="never sealed"):
        seal(
            world.bundle(BAVET).signer(),
            world.kh.keyset(),
            seq=1,
            scope=Scope.country("kh"),
            issued=NOW,
            expires=NOW + timedelta(days=1),
            seal_for=[_key(world, MOCBAI)],
        )


# -- the codec: truncations and bit flips --------------------------------------------------

_KEYS: dict[str, X25519PrivateKey] = {}


def _sealed_core(plain: bytes) -> tuple[SealedBody, Opener, bytes]:
    """A sealed body for one recipient, its opener and the context it is bound to."""
    if not _KEYS:
        _KEYS["k"] = X25519PrivateKey.generate()
    key = _KEYS["k"]
    opener = Opener.from_keys(MOCBAI, [key])
    (key_id,) = opener.keys
    recipient = RecipientKey(MOCBAI, key_id, key.public_key().public_bytes_raw())
    context = b"header-context"
    return seal_body(plain, 0, [recipient], context), opener, context


@given(st.binary(min_size=0, max_size=300))
def test_sealed_bodies_round_trip(plain: bytes) -> None:
    body, opener, context = _sealed_core(plain)
    again = unpack_model(SealedBody, pack(body), max_len=1 << 20)
    assert again == body
    opened = opener.open(again, context)
    assert isinstance(opened, Opened)
    assert opened.coded == plain
    assert opened.coding == 0


@given(st.data())
def test_a_truncated_sealed_body_never_parses(data: st.DataObject) -> None:
    body, _, _ = _sealed_core(b"x" * 40)
    raw = pack(body)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    with pytest.raises(DecodeError):
        unpack_model(SealedBody, raw[:cut], max_len=1 << 20)


@given(st.data())
def test_a_flipped_bit_never_opens(data: st.DataObject) -> None:
    body, opener, context = _sealed_core(SECRET.encode())
    raw = bytearray(pack(body))
    bit = data.draw(st.integers(min_value=0, max_value=len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    try:
        flipped = unpack_model(SealedBody, bytes(raw), max_len=1 << 20)
    except DecodeError:
        return
    assert not isinstance(opener.open(flipped, context), Opened)


@given(st.binary(min_size=1, max_size=40))
def test_another_context_never_opens(other: bytes) -> None:
    body, opener, context = _sealed_core(SECRET.encode())
    if other != context:
        assert not isinstance(opener.open(body, other), Opened)


def test_opening_garbage_returns_a_reason_not_an_exception() -> None:
    body, opener, context = _sealed_core(b"payload")
    junk = body.model_copy(
        update={
            "recipients": (
                SealedRecipient(
                    node=MOCBAI, key_id=body.recipients[0].key_id, wrap=bytes(WRAP_SIZE)
                ),
            )
        }
    )
    result = open_body(junk, context, MOCBAI, opener.keys)
    assert isinstance(result, Unopened)
    assert "does not open" in result.reason


def test_a_content_key_other_than_the_committed_one_is_refused() -> None:
    """A sender cannot hand two recipients two content keys (two readings of one
    signed message): each checks its key against the commitment everyone sees."""
    body, opener, context = _sealed_core(b"what everyone reads")
    other, _, _ = _sealed_core(b"what one office reads")
    swapped = body.model_copy(update={"recipients": other.recipients})
    result = opener.open(swapped, context)
    assert isinstance(result, Unopened)
    assert "not the one committed" in result.reason


def test_the_size_bench_reports_the_sealed_bulletin_beside_the_plain_one() -> None:
    from rich.console import Console

    from bench.run import bench_size

    with open(os.devnull, "w") as sink:
        figures = bench_size(Console(file=sink))
    # One counterpart: an 80-byte wrap, its key id and name, the commitment and the tag.
    assert 0 < figures["bulletin_sealed"] - figures["bulletin_plain"] < 200


def test_blo_certs_rotates_and_revokes_one_encryption_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from certs.cli import main as blo_certs

    w = _world(tmp_path)
    old = w.vn.keyset().node(MOCBAI)
    assert old is not None
    assert blo_certs(["rotate", "--dir", str(w.vn.dir), MOCBAI]) == 0
    assert "encryption key" in capsys.readouterr().out
    key = old.seal_keys[0].key_id.hex()
    assert blo_certs(["revoke", "--dir", str(w.vn.dir), MOCBAI, "--key", key]) == 0
    revocation = w.vn.revocation()
    assert revocation is not None
    assert [r.key_id.hex() for r in revocation.revoked if r.key_id] == [key]
    entry = w.vn.keyset().node(MOCBAI)
    assert entry is not None
    assert entry.revoked is None  # the node stays
    assert blo_certs(["revoke", "--dir", str(w.vn.dir), MOCBAI, "--key", "zz"]) == 1


@given(st.data())
def test_a_damaged_sealed_envelope_is_refused(world: World, data: st.DataObject) -> None:
    """Truncated or bit-flipped on the wire: the archive refuses it with a reason."""
    if not _WIRE:
        _WIRE["w"], _RECEIVERS["archive"] = _sealed_bulletin(world), world.receiver(None)
    wire = bytearray(_WIRE["w"])
    if data.draw(st.booleans()):
        wire = wire[: data.draw(st.integers(min_value=0, max_value=len(wire) - 1))]
    else:
        bit = data.draw(st.integers(min_value=0, max_value=len(wire) * 8 - 1))
        wire[bit // 8] ^= 1 << (bit % 8)
    topic = _topic(Kind.BULLETIN, Scope.parse(f"bulletin:{MOCBAI}"), BAVET)
    got = _RECEIVERS["archive"].receive(topic, bytes(wire), NOW)
    assert isinstance(got, Rejected)


_WIRE: dict[str, bytes] = {}
_RECEIVERS: dict[str, Receiver] = {}


def test_blo_pub_seals_a_confidential_alert_and_refuses_confidential_photos(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from publisher import Outbox
    from publisher.cli import main as blo_pub

    nacd = str(world.kh.dir / "bundles" / "kh-nacd.json")
    alert = ["alert", "--bundle", nacd, "--data", str(tmp_path / "nacd"), "--scope", "country:kh"]
    alert += ["--category", "drug_seizure", "--severity", "severe", "--headline", SECRET]
    assert blo_pub([*alert, "--confidential"]) == 0
    assert "sealed for" in capsys.readouterr().out
    outbox = Outbox(tmp_path / "nacd" / "outbox.sqlite3", world.bundle("kh-nacd").signer())
    (queued,) = outbox.range(1, None)
    outbox.close()
    assert SECRET.encode() not in queued.data
    body = open_envelope(queued.data).decode_body()
    assert isinstance(body, SealedBody)
    assert set(body.nodes) == {BAVET, POIPET, "kh-analyst"}  # its readers; not the archive
    photo = tmp_path / "seizure.jpg"
    Image.new("RGB", (64, 48), (90, 120, 60)).save(photo, "JPEG")
    bavet = str(world.kh.dir / "bundles" / f"{BAVET}.json")
    incident = ["incident", "--bundle", bavet, "--data", str(tmp_path / "bavet")]
    incident += ["--crime", "drug_trafficking", "--lat", "11.07", "--lon", "106.18"]
    assert blo_pub([*incident, "--photo", str(photo), "--confidential"]) == 1
    assert "photo chunks travel unsealed" in capsys.readouterr().err
