"""Photos end to end on both brokers: blo-pub --photo at Bavet, byte for byte at HQ.

Each test runs on amqtt and Mosquitto (the ``nodes`` fixture), with the archive
beside them. Photos are made here with GPS written into EXIF (photos.exif.with_gps).
"""

from __future__ import annotations

import io
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mqttc import TestClient
from netsim import ALERT
from nodekit import Nodes, wait_for
from PIL import Image

from certs import EnrolmentBundle
from demo.flaky import FaultProxy
from photos.chunks import Chunk
from photos.exif import with_gps
from photos.images import load_photo
from photos.store import BlobStore, blob_refs
from publisher.cli import main as blo_pub
from publisher.outbox import Outbox
from schemas import Crime, Kind, Scope
from schemas.messages import Incident, Position, PositionSource
from schemas.topics import chunk_topic
from subscriber import NodeClient
from subscriber.cli import main as blo_sub
from subscriber.photos import BLOB_FILE

BAVET = Position(lat=11.0791, lon=106.1846)


def make_photo(path: Path, seed: int, side: int = 900, where: Position = BAVET) -> Path:
    """A noisy JPEG (does not compress away) with GPS in its EXIF."""
    noise = Image.frombytes("RGB", (side, side * 3 // 4), os.urandom(side * side * 9 // 4))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=80)
    shifted = Position(lat=where.lat + seed * 0.0007, lon=where.lon + seed * 0.0005)
    path.write_bytes(
        with_gps(out.getvalue(), shifted, taken=datetime(2026, 11, 28, 9, 41, tzinfo=UTC))
    )
    return path


def send_incident(nodes: Nodes, photos: list[Path], *extra: str) -> int:
    argv = ["incident", "--bundle", str(nodes.network.bundle("kh-blo-bavet"))]
    argv += ["--data", str(nodes.folder("kh-blo-bavet")), "--crime", "drug_trafficking"]
    argv += ["--lat", str(BAVET.lat), "--lon", str(BAVET.lon)]
    for photo in photos:
        argv += ["--photo", str(photo)]
    return blo_pub([*argv, *extra])


def expected_bytes(path: Path, *, keep_original: bool = False) -> tuple[bytes, bytes]:
    photo = load_photo(path, incident_position=BAVET, keep_original=keep_original)
    return photo.preview, photo.full


def hq_files(nodes: Nodes, node: str = "kh-nacd") -> set[bytes]:
    folder = nodes.folder(node) / "photos"
    return (
        {p.read_bytes() for p in folder.glob("*") if p.suffix != ".part"}
        if folder.exists()
        else set()
    )


def test_two_photos_from_bavet_arrive_byte_identical(
    nodes: Nodes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bavet = nodes.start("kh-blo-bavet")
    hq = nodes.start("kh-nacd")
    assert bavet.connected.wait(10)
    assert hq.connected.wait(10)
    photos = [make_photo(tmp_path / f"p{i}.jpg", i) for i in range(2)]
    assert send_incident(nodes, photos) == 0
    want = {b for p in photos for b in expected_bytes(p)}
    assert wait_for(lambda: hq_files(nodes) >= want, 40), (hq.photos.stats, bavet.photos.stats)
    # The signed incident carries the EXIF positions, not the incident's.
    body = hq.inbox.messages((Kind.INCIDENT,))[0].body
    assert isinstance(body, Incident)
    assert [a.position_source for a in body.attachments] == [PositionSource.EXIF] * 2
    # Reading them at HQ: show (states and paths), photos (the files), map (the PNG).
    msg_id = hq.inbox.messages((Kind.INCIDENT,))[0].msg_id.hex()
    hq_args = [
        "--bundle",
        str(nodes.network.bundle("kh-nacd")),
        "--data",
        str(nodes.folder("kh-nacd")),
    ]
    capsys.readouterr()
    assert blo_sub(["show", *hq_args, msg_id[:8]]) == 0
    shown = capsys.readouterr().out
    assert shown.count("complete") == 2, shown
    assert "GPS" in shown
    assert blo_sub(["show", *hq_args, msg_id[:8], "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["photos"]
    assert [p["state"] for p in listed] == ["complete", "complete"]
    assert all(Path(p["file"]).read_bytes() in want for p in listed)
    out = tmp_path / "out"
    assert blo_sub(["photos", *hq_args, msg_id[:8], "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["photo-1.jpg", "photo-2.jpg"]
    assert {p.read_bytes() for p in out.iterdir()} == {expected_bytes(p)[1] for p in photos}
    assert blo_sub(["map", *hq_args, msg_id[:8], "--out", str(tmp_path / "map.png")]) == 0
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def incident_roots(node: NodeClient) -> list[bytes]:
    """The blobs of the newest incident a node holds: preview, full, preview, full..."""
    body = node.inbox.messages((Kind.INCIDENT,))[0].body
    assert isinstance(body, Incident)
    return [ref.merkle_root for a in body.attachments for ref in blob_refs(a)]


def test_tampered_and_misrouted_chunks_are_refused_then_fetched(
    nodes: Nodes, tmp_path: Path
) -> None:
    bavet = nodes.start("kh-blo-bavet")
    hq = nodes.start("kh-nacd")
    assert bavet.connected.wait(10)
    assert hq.connected.wait(10)
    bavet.photos.window = 0  # Bavet serves nothing until the forgeries are in
    photo = make_photo(tmp_path / "p.jpg", 1)
    assert send_incident(nodes, [photo]) == 0
    assert wait_for(lambda: bool(hq.inbox.messages((Kind.INCIDENT,))), 20)
    preview_root = incident_roots(hq)[0]
    assert wait_for(lambda: hq.photos.stats["asked"] > 0)
    genuine = bavet.photos.store.chunk(preview_root, 0)
    assert genuine is not None
    tampered = Chunk(
        root=genuine.root,
        index=0,
        proof=genuine.proof,
        data=bytes([genuine.data[0] ^ 1]) + genuine.data[1:],
    )
    poipet = TestClient(nodes.network.bundle("kh-blo-poipet"), nodes.port, clean=True)
    try:
        assert poipet.connect()
        # A changed byte, on the right topic from the right node: the proof fails.
        bavet.client.publish(chunk_topic("kh", "kh-blo-bavet"), tampered.encode(), qos=1)
        # The genuine chunk, from an office that did not send the incident.
        assert poipet.publish(chunk_topic("kh", "kh-blo-poipet"), genuine.encode())
        assert wait_for(lambda: hq.photos.stats["refused_bad_proof"] == 1)
        assert wait_for(lambda: hq.photos.stats["refused_wrong_topic"] == 1)
    finally:
        poipet.close()
    assert hq.photos.store.need(preview_root).missing()[0] == 0  # neither was kept
    bavet.photos.window = 4
    want = set(expected_bytes(photo))
    assert wait_for(lambda: hq_files(nodes) >= want, 30), hq.photos.stats


def test_a_photo_over_the_quota_is_refused_at_the_sender(
    nodes: Nodes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = make_photo(tmp_path / "big.jpg", 2, side=1600)
    assert send_incident(nodes, [photo], "--keep-original", "--quota", "0.1") == 1
    err = capsys.readouterr().err
    assert "quota" in err
    assert "kh-blo-bavet" in err
    folder = nodes.folder("kh-blo-bavet")
    outbox = Outbox(
        folder / "outbox.sqlite3",
        EnrolmentBundle.load(nodes.network.bundle("kh-blo-bavet")).signer(),
    )
    try:
        assert outbox.counts() == (0, 0)  # nothing signed, nothing queued
    finally:
        outbox.close()
    # The positive control: the same photo fits the default quota.
    assert send_incident(nodes, [photo], "--keep-original") == 0


def test_a_tablet_stopped_mid_transfer_asks_only_for_what_is_missing(
    nodes: Nodes, tmp_path: Path
) -> None:
    bavet = nodes.start("kh-blo-bavet")
    hq = nodes.start("kh-nacd")
    assert bavet.connected.wait(10)
    assert hq.connected.wait(10)
    bavet.photos.window = 1  # slow enough to stop HQ half-way
    photo = make_photo(tmp_path / "p.jpg", 3, side=2400)
    assert send_incident(nodes, [photo], "--keep-original") == 0
    assert wait_for(lambda: bool(hq.inbox.messages((Kind.INCIDENT,))), 20)
    full = incident_roots(hq)[1]
    total = hq.photos.store.status(full).chunks
    assert total > 100
    assert wait_for(lambda: hq.photos.store.status(full).held > total // 4, 30)
    nodes.stop("kh-nacd")
    store = BlobStore(nodes.folder("kh-nacd") / BLOB_FILE)
    held = store.status(full).held
    store.close()
    assert 0 < held < total, "stopped too late to test a resume"
    served = bavet.photos.stats["served"]
    bavet.photos.window = 2
    hq = nodes.start("kh-nacd")
    want = set(expected_bytes(photo, keep_original=True))
    assert wait_for(lambda: hq_files(nodes) >= want, 60), hq.photos.stats
    # Asked only for what was missing (the need map), not for the whole photo again.
    assert 0 < hq.photos.stats["asked_chunks"] <= total - held, hq.photos.stats
    # ... and the sender sent no more than that (bar what it had in flight at the stop).
    assert bavet.photos.stats["served"] - served <= total - held + 4, bavet.photos.stats
    # What came twice is what the broker had in flight to it when it stopped.
    assert hq.photos.stats["duplicate"] <= 64, hq.photos.stats


def test_the_archive_serves_photos_when_the_sender_is_gone(nodes: Nodes, tmp_path: Path) -> None:
    # HQ's node starts for the first time after Bavet is gone: no broker session kept
    # the incident or the chunks multicast while Bavet served the archive (Mosquitto
    # did, and HQ completed without asking anyone), so both can only come from the
    # archive: the incident by HQ's catch-up, the photos by its need requests.
    bavet = nodes.start("kh-blo-bavet")
    assert bavet.connected.wait(10)
    photos = [make_photo(tmp_path / f"p{i}.jpg", i) for i in range(2)]
    assert send_incident(nodes, photos) == 0
    archive = nodes.archive.blobs  # type: ignore[attr-defined]
    assert wait_for(lambda: bool(archive.stats["complete"] == 4), 30), archive.stats
    nodes.stop("kh-blo-bavet")
    hq = nodes.start("kh-nacd")
    want = {b for p in photos for b in expected_bytes(p)}
    assert wait_for(lambda: hq_files(nodes) >= want, 40), (
        hq.photos.stats,
        archive.stats,
        hq.inbox.messages(),
    )
    assert archive.stats["served"] > 0


def test_messages_are_not_stuck_behind_photos(nodes: Nodes, tmp_path: Path) -> None:
    # Bavet behind a slow link (~640 kbit/s): its photos take many seconds to go up.
    proxy = FaultProxy(nodes.port, delay=0.05)
    port = proxy.start()
    try:
        bavet = nodes.start("kh-blo-bavet", port=port)
        hq = nodes.start("kh-nacd")
        assert bavet.connected.wait(10)
        assert hq.connected.wait(10)
        photos = [make_photo(tmp_path / f"p{i}.jpg", i, side=1200) for i in range(2)]
        assert send_incident(nodes, photos, "--keep-original") == 0
        assert wait_for(lambda: hq.photos.stats["chunks"] > 10, 30)
        # Mid-transfer: an alert from HQ, and a second incident from Bavet.
        start = time.monotonic()
        alert_id = hq.send(ALERT, Scope.country("kh"))
        second = bavet.send(
            Incident(
                crime=Crime.OTHER, occurred=datetime.now(UTC).replace(microsecond=0), position=BAVET
            ),
            Scope.country("kh"),
        )
        assert wait_for(lambda: alert_id in {m.msg_id for m in bavet.inbox.messages()}, 5)
        assert wait_for(lambda: second in {m.msg_id for m in hq.inbox.messages()}, 5)
        took = time.monotonic() - start
        # ... while the photos were still moving (the positive control).
        assert hq.photos.store.missing(), "the photos were done: nothing was behind them"
        assert took < 5
        want = {b for p in photos for b in expected_bytes(p, keep_original=True)}
        assert wait_for(lambda: hq_files(nodes) >= want, 90), hq.photos.stats
    finally:
        nodes.stop_all()
        proxy.stop()


def test_photos_of_an_incident_stored_just_before_a_crash_are_fetched_after_it(
    nodes: Nodes, tmp_path: Path
) -> None:
    bavet = nodes.start("kh-blo-bavet")
    hq = nodes.start("kh-nacd")
    assert bavet.connected.wait(10)
    assert hq.connected.wait(10)
    # The crash: HQ's inbox commits the incident, its photos are never registered (the
    # redelivery after a real crash is refused as a duplicate, or on amqtt never comes).
    hq.photos.accepted = lambda results: None  # type: ignore[method-assign]
    photo = make_photo(tmp_path / "p.jpg", 5)
    assert send_incident(nodes, [photo]) == 0
    assert wait_for(lambda: bool(hq.inbox.messages((Kind.INCIDENT,))), 20)
    msg_id = hq.inbox.messages((Kind.INCIDENT,))[0].msg_id
    assert not hq.photos.store.described(msg_id)
    nodes.stop("kh-nacd")
    assert not hq_files(nodes)
    hq = nodes.start("kh-nacd")
    want = set(expected_bytes(photo))
    assert wait_for(lambda: hq_files(nodes) >= want, 30), hq.photos.stats
    assert hq.photos.stats["resumed"] == 1
