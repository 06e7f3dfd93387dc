"""fanout, receive and catch-up: the project's path against raw paho, same broker, same run.

* fanout: HQ -> every tablet at a fixed rate, QoS 1; latency from the start of
  the send (sign and commit to the outbox, for the project) to the commit in
  each tablet's inbox (to ``on_message``, raw).
* receive: one tablet while HQ publishes messages made ahead as fast as it can;
  messages per second from the first arrival to the last.
* catch-up: one tablet offline while N messages are queued for it; seconds from
  its reconnect to the last message committed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.harness import Fleet, broker, percentile
from bench.sender import Sender
from bench.tablets import Spec, Workers


def _firsts(pairs: list[tuple[int, float]]) -> dict[int, float]:
    """Each message number's first arrival (at-least-once may deliver twice)."""
    seen: dict[int, float] = {}
    for seq, at in pairs:
        seen.setdefault(seq, at)
    return seen


def fanout_round(
    kind: str, mode: str, made: Fleet, folder: Path, *, tablets: int, rate: float, seconds: float
) -> dict[str, Any]:
    """One round of HQ -> ``tablets`` tablets; latencies in ms, losses, broker peak RSS."""
    count = max(1, round(rate * seconds))
    nodes = tuple(made.tablets[:tablets])
    with broker(kind, made, folder / "broker") as run:
        spec = Spec(mode, nodes, made, run.port, count, folder / "tablets", seconds + 120)
        workers = Workers(spec)
        connected = workers.ready()
        sender = Sender(mode, made, run.port, folder)
        sent: dict[int, float] = {}
        start = time.monotonic()
        for seq in range(1, count + 1):
            pause = start + (seq - 1) / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sent[seq] = sender.send(seq)
        behind = time.monotonic() - (start + (count - 1) / rate)
        _, times, _ = workers.results(seconds + 150)
        broker_mib = run.peak_rss_mib()
        sender.close()
    latencies = [
        (at - sent[seq]) * 1000
        for pairs in times.values()
        for seq, at in _firsts(pairs).items()
        if seq in sent
    ]
    return {
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "delivered": len(latencies),
        "lost": count * len(nodes) - len(latencies),
        "connected": connected,
        "sender_behind_s": max(behind, 0.0),
        "broker_mib": broker_mib,
    }


def receive_round(kind: str, mode: str, made: Fleet, folder: Path, *, count: int) -> dict[str, Any]:
    """One tablet drains ``count`` messages published as fast as HQ can."""
    with broker(kind, made, folder / "broker") as run:
        spec = Spec(mode, (made.tablets[0],), made, run.port, count, folder / "tablets", 300)
        workers = Workers(spec, processes=1)
        workers.ready()
        sender = Sender(mode, made, run.port, folder)
        payloads = [sender.payload(seq) for seq in range(1, count + 1)]
        for payload in payloads:
            sender.publish(payload)
        _, times, _ = workers.results(320)
        sender.close()
    arrivals = sorted(_firsts(next(iter(times.values()))).values())
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return {"msgs_per_s": (len(arrivals) - 1) / span, "received": len(arrivals)}


def catchup_round(kind: str, mode: str, made: Fleet, folder: Path, *, count: int) -> dict[str, Any]:
    """One tablet, offline while ``count`` messages are queued, reconnects and drains."""
    node = (made.tablets[0],)
    data = folder / "tablets"
    with broker(kind, made, folder / "broker") as run:
        primer = Workers(Spec(mode, node, made, run.port, 0, data, 60, prime_only=True), 1)
        primer.ready()
        primer.results(60)
        sender = Sender(mode, made, run.port, folder)
        for payload in [sender.payload(seq) for seq in range(1, count + 1)]:
            sender.publish(payload)
        if not sender.flush(120):
            raise RuntimeError("the broker did not acknowledge the queued messages")
        sender.close()
        workers = Workers(Spec(mode, node, made, run.port, count, data, 120), 1)
        workers.ready()
        started, times, tablet_mib = workers.results(320)
    arrivals = sorted(_firsts(next(iter(times.values()))).values())
    return {
        "seconds": arrivals[-1] - started if arrivals else float("nan"),
        "received": len(arrivals),
        "tablet_mib": tablet_mib,
    }
