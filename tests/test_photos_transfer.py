"""Photos end to end on both brokers: blo-pub --photo at Bavet, byte for byte at HQ.

Each test runs on amqtt and Mosquitto (the ``nodes`` fixture), with the archive
beside them. Photos are made here with GPS written into EXIF (photos.exif.with_gps).
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path

from nodekit import Nodes, wait_for
from PIL import Image

from photos.exif import with_gps
from photos.images import load_photo
from publisher.cli import main as blo_pub
from schemas import Kind
from schemas.messages import Incident, Position, PositionSource

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


def expected_bytes(path: Path) -> tuple[bytes, bytes]:
    photo = load_photo(path, incident_position=BAVET)
    return photo.preview, photo.full


def hq_files(nodes: Nodes, node: str = "kh-nacd") -> set[bytes]:
    folder = nodes.folder(node) / "photos"
    return (
        {p.read_bytes() for p in folder.glob("*") if p.suffix != ".part"}
        if folder.exists()
        else set()
    )


def test_two_photos_from_bavet_arrive_byte_identical(nodes: Nodes, tmp_path: Path) -> None:
    bavet = nodes.start("kh-blo-bavet")
    hq = nodes.start("kh-nacd")
    assert bavet.connected.wait(10) and hq.connected.wait(10)
    photos = [make_photo(tmp_path / f"p{i}.jpg", i) for i in range(2)]
    assert send_incident(nodes, photos) == 0
    want = {b for p in photos for b in expected_bytes(p)}
    assert wait_for(lambda: hq_files(nodes) >= want, 40), (hq.photos.stats, bavet.photos.stats)
    # The signed incident carries the EXIF positions, not the incident's.
    body = hq.inbox.messages((Kind.INCIDENT,))[0].body
    assert isinstance(body, Incident)
    assert [a.position_source for a in body.attachments] == [PositionSource.EXIF] * 2
