"""NACD's side of the benchmarks: the project's send path, or raw paho with equal payloads.

``project``: seal the reference alert with the next sequence number and commit
it to the HQ's SQLite outbox (``Outbox.submit``, as ``blo-pub`` does), then
publish it at QoS 1. ``raw``: publish a payload of the same size at QoS 1, its
first 8 bytes being its number.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import HQ, ROOT, Fleet
from certs import EnrolmentBundle
from publisher import Outbox
from schemas import Scope, WireModel, draft_from_document, seal
from subscriber import node_client

TOPIC = "blo/country/kh"
REFERENCE = ROOT / "bench" / "fixtures" / "reference-alert.json"


def reference_body() -> WireModel:
    """The reference alert's body (bench/fixtures/reference-alert.json)."""
    doc = json.loads(REFERENCE.read_text("utf-8"))
    doc.pop("_about", None)
    return draft_from_document(doc).body


class Sender:
    """HQ connected to the broker under test; ``send(n)`` returns the time it started."""

    def __init__(self, mode: str, made: Fleet, port: int, data: Path) -> None:
        self.mode = mode
        bundle = EnrolmentBundle.load(made.bundle(HQ))
        self.signer = bundle.signer()
        self.body = reference_body()
        self.scope = Scope.country("kh")
        self.outbox = Outbox(data / "hq-outbox.sqlite3", self.signer) if mode == "project" else None
        size = len(self.sealed(1))
        self.filler = b"\x00" * (size - 8)
        self.client = node_client(bundle)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        connected = threading.Event()
        self.client.on_connect = lambda *_: connected.set()
        self.client.connect_async("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        if not connected.wait(30):
            raise RuntimeError(f"{HQ} could not connect to the broker on port {port}")
        self.infos: list[object] = []

    def sealed(self, seq: int) -> bytes:
        """The reference alert sealed as HQ's number ``seq`` (no outbox)."""
        now = datetime.now(UTC).replace(microsecond=0)
        return seal(
            self.signer,
            self.body,
            seq=seq,
            scope=self.scope,
            issued=now,
            expires=now + timedelta(days=7),
        )

    def payload(self, seq: int) -> bytes:
        """What ``send`` would publish as ``seq``, made ahead (for receive and catch-up)."""
        return self.sealed(seq) if self.mode == "project" else self.raw(seq)

    def raw(self, seq: int) -> bytes:
        return seq.to_bytes(8, "big") + self.filler

    def send(self, seq: int) -> float:
        """Publish message ``seq`` the way ``mode`` does; returns when the work began."""
        began = time.monotonic()
        if self.outbox is not None:
            now = datetime.now(UTC).replace(microsecond=0)
            queued = self.outbox.submit(
                self.body, self.scope, issued=now, expires=now + timedelta(days=7)
            )
            for topic in queued.topics:
                self.infos.append(self.client.publish(topic, queued.data, qos=1))
        else:
            self.infos.append(self.client.publish(TOPIC, self.raw(seq), qos=1))
        return began

    def publish(self, payload: bytes) -> None:
        """Publish a payload made ahead."""
        self.infos.append(self.client.publish(TOPIC, payload, qos=1))

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until the broker has acknowledged everything sent."""
        deadline = time.monotonic() + timeout
        for info in self.infos:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            info.wait_for_publish(remaining)  # type: ignore[attr-defined]
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        if self.outbox is not None:
            self.outbox.close()
