"""photo: one camera-sized photo from a tablet at Bavet to HQ over a shaped link, ours vs raw paho.

* project: a real ``NodeClient`` for the tablet, behind the fault proxy, and HQ's
  ``NodeClient`` on loopback; ``blo-pub incident --photo P --keep-original`` commits
  the incident, and the clock stops when HQ's ``photos/`` folder holds both of the
  photo's blobs (the preview and the full image) byte for byte.
* raw: paho clients with the same certificates publish the same two blobs' bytes
  in the same 8 KiB chunks at QoS 1 on the same chunk topic, through the same
  kind of proxy; the clock stops when HQ's paho subscriber holds every byte.

``--keep-original`` makes the full image the camera's file (metadata stripped),
not a re-encoded copy, so the bytes are the photo's and both paths move the
same preview + full image. The link is rate-limited but never cut here: the cuts
are random in time, so with them the figure would measure where the seeded cuts
fell relative to each path's traffic, and raw paho has no resume to compare
with (tests/test_photos_shaped.py checks the resumption over a cut link).
"""

from __future__ import annotations

import io
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image, ImageDraw

from bench.harness import HQ, Fleet
from certs import EnrolmentBundle
from demo.flaky import FaultProxy
from photos.chunks import DEFAULT_CHUNK_SIZE
from photos.exif import with_gps
from photos.images import load_photo
from publisher.cli import main as blo_pub
from schemas.messages import Position
from schemas.topics import chunk_topic
from subscriber import NodeClient

BAVET = Position(lat=11.0791, lon=106.1846)
#: ~256 kbit/s each way: the shaped link of the issue's tests.
SHAPED_RATE = 32_000.0


def camera_photo(path: Path, side: int, *, seed: int = 1) -> Path:
    """A deterministic 4:3 JPEG shaped like a camera's: a scene with sensor noise, GPS in EXIF.

    A smooth picture alone compresses to a fraction of a real photo's size;
    the seeded noise stands in for a sensor's, so ``side`` sets the file size
    (about 2 MB at 2400, about 100 KB at 520).
    """
    rng = random.Random(seed)  # reproducible pixels, not secrets
    width, height = side, side * 3 // 4
    scene = Image.new("RGB", (width, height), (90, 140, 200))
    draw = ImageDraw.Draw(scene)
    draw.rectangle((0, height // 2, width, height), fill=(70, 110, 60))  # ground under sky
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(side // 40 + 1, side // 8 + 2)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    noise = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    picture = Image.blend(scene, noise, 0.35)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    taken = datetime(2026, 11, 28, 9, 41, tzinfo=UTC)
    path.write_bytes(with_gps(out.getvalue(), BAVET, taken=taken))
    return path


def blobs(photo: Path) -> tuple[bytes, bytes]:
    """(preview, full image) as ``blo-pub --keep-original`` sends them."""
    prepared = load_photo(photo, incident_position=BAVET, keep_original=True)
    return prepared.preview, prepared.full


def _wait(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _files(folder: Path) -> set[bytes]:
    photos = folder / "photos"
    if not photos.exists():
        return set()
    return {p.read_bytes() for p in photos.glob("*") if p.suffix != ".part"}


def project_round(
    made: Fleet, port: int, folder: Path, photo: Path, rate: float, within: float
) -> dict[str, Any]:
    """The project's path: Bavet's NodeClient behind the proxy, HQ's on loopback."""
    tablet = made.tablets[0]
    want = set(blobs(photo))
    proxy = FaultProxy(port, seed=7, rate=rate)
    via = proxy.start()
    clients: list[NodeClient] = []
    try:
        for node, at in ((tablet, via), (HQ, port)):
            client = NodeClient(
                EnrolmentBundle.load(made.bundle(node)),
                "127.0.0.1",
                at,
                folder / node,
                gap_grace=timedelta(seconds=1),
                tick=0.2,
                catch_up_every=3.0,
            )
            client.start()
            clients.append(client)
            if not client.connected.wait(60):
                raise RuntimeError(f"{node} did not connect to the broker on port {at}")
        before = proxy.stats.up_bytes
        start = time.monotonic()
        argv = ["incident", "--bundle", str(made.bundle(tablet)), "--data", str(folder / tablet)]
        argv += ["--crime", "drug_trafficking", "--lat", str(BAVET.lat), "--lon", str(BAVET.lon)]
        if blo_pub([*argv, "--photo", str(photo), "--keep-original"]) != 0:
            raise RuntimeError(f"blo-pub incident --photo {photo} failed")
        if not _wait(lambda: _files(folder / HQ) >= want, within):
            raise RuntimeError(f"HQ did not get the photo within {within:.0f} s: {proxy.stats}")
        return {"seconds": time.monotonic() - start, "wire": proxy.stats.up_bytes - before}
    finally:
        for client in clients:
            client.stop()
        proxy.stop()


def _raw_client(made: Fleet, node: str) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=node, clean_session=True, protocol=mqtt.MQTTv311
    )
    client.tls_set_context(EnrolmentBundle.load(made.bundle(node)).tls_context())
    client.max_inflight_messages_set(100)  # as the project's clients (subscriber.link)
    client.max_queued_messages_set(0)
    return client


def _connect(client: mqtt.Client, port: int) -> None:
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect_async("127.0.0.1", port, keepalive=60)
    client.loop_start()
    if not connected.wait(60):
        raise RuntimeError(f"raw paho client could not connect on port {port}")


def raw_round(
    made: Fleet, port: int, folder: Path, photo: Path, rate: float, within: float
) -> dict[str, Any]:
    """Raw paho: the same blobs, 8 KiB chunks, QoS 1, on Bavet's chunk topic, through the proxy."""
    del folder  # raw paho keeps nothing on disk
    tablet = made.tablets[0]
    topic = chunk_topic("kh", tablet)
    step = DEFAULT_CHUNK_SIZE
    chunks = [b[at : at + step] for b in blobs(photo) for at in range(0, len(b), step)]
    total = sum(len(c) for c in chunks)
    got = [0]
    subscribed = threading.Event()
    hq = _raw_client(made, HQ)

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        got[0] += len(message.payload)

    hq.on_message = on_message
    hq.on_subscribe = lambda *_: subscribed.set()
    proxy = FaultProxy(port, seed=7, rate=rate)
    via = proxy.start()
    sender = _raw_client(made, tablet)
    try:
        _connect(hq, port)
        hq.subscribe(topic, qos=1)
        if not subscribed.wait(30):
            raise RuntimeError(f"HQ could not subscribe to {topic}")
        _connect(sender, via)
        before = proxy.stats.up_bytes
        start = time.monotonic()
        for chunk in chunks:
            sender.publish(topic, chunk, qos=1)
        if not _wait(lambda: got[0] >= total, within):
            raise RuntimeError(f"raw: HQ got {got[0]} of {total} bytes in {within:.0f} s")
        return {"seconds": time.monotonic() - start, "wire": proxy.stats.up_bytes - before}
    finally:
        for client in (sender, hq):
            client.disconnect()
            client.loop_stop()
        proxy.stop()
