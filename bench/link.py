"""link: what a tablet's metered link carries, through the fault proxy (demo/flaky.py).

* bytes per delivered alert: HQ (on the broker directly) sends alerts at a steady
  rate to one tablet whose link is cut at random, every ``mean_life`` seconds on
  average; every byte that crosses the proxy in either direction counts (TLS
  handshakes of the reconnects, keepalives, subscriptions, duplicates, the
  tablet's ``delivered`` receipts, replay requests and answers), from the
  tablet's first connection settled to its last receipt sent; divided by the
  envelopes' own bytes. The archive runs (amqtt drops what is in flight at a cut;
  the archive is how a tablet gets it back).
* an idle tablet: connected, nothing to deliver; bytes over ``seconds``, as KB a day.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.harness import HQ, Fleet, broker
from bench.sender import Sender
from certs import EnrolmentBundle
from demo.flaky import FaultProxy
from schemas import Accepted, Kind


def _tablet(made: Fleet, port: int, data: Path, on_stored: Any = None) -> Any:
    from subscriber import NodeClient  # the tablet's own imports, as blo-sub run makes them

    return NodeClient(
        EnrolmentBundle.load(made.bundle(made.tablets[0])),
        "127.0.0.1",
        port,
        data,
        gap_grace=timedelta(seconds=5),
        on_stored=on_stored,
    )


def _crossed(proxy: FaultProxy) -> int:
    return proxy.stats.up_bytes + proxy.stats.down_bytes


def bytes_round(
    kind: str, made: Fleet, folder: Path, *, alerts: int, rate: float, mean_life: float
) -> dict[str, Any]:
    """Bytes on the tablet's link per delivered alert, with cuts; see the module's text."""
    got: dict[int, float] = {}
    done = threading.Event()

    def stored(accepted: Accepted) -> None:
        if accepted.header.sender == HQ:
            got.setdefault(accepted.header.seq, time.monotonic())
            if len(got) >= alerts:
                done.set()

    with broker(kind, made, folder / "broker", archive=True) as run:
        proxy = FaultProxy(run.port, seed=15)
        port = proxy.start()
        tablet = _tablet(made, port, folder / "tablet", stored)
        tablet.start()
        try:
            if not tablet.connected.wait(60):
                raise RuntimeError(f"the tablet did not connect to {kind} through the proxy")
            time.sleep(2.0)  # subscriptions, trust and catch-up answers of the first connect
            sender = Sender("project", made, run.port, folder)
            envelope = len(sender.sealed(1))
            base = _crossed(proxy)
            proxy.mean_life = mean_life  # cuts from now on (each new connection's life)
            proxy.cut_all()
            start = time.monotonic()
            for seq in range(1, alerts + 1):
                pause = start + (seq - 1) / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                sender.send(seq)
            sender.flush(60)
            sender.close()
            delivered = done.wait(240)
            # Its receipts too: until the outbox holds nothing unsent (on a link that is
            # still being cut, so this takes a few seconds).
            deadline = time.monotonic() + 120
            while tablet.outbox.counts()[1] and time.monotonic() < deadline:
                time.sleep(0.2)
            crossed = _crossed(proxy) - base
            duplicates = tablet.inbox.rejections().get("duplicate", 0)
            receipts = [q for q in tablet.outbox.range(1, None) if q.kind is Kind.RECEIPT]
        finally:
            tablet.stop()
            proxy.stop()
    if not delivered:
        raise RuntimeError(f"{len(got)} of {alerts} alerts reached the tablet on {kind}")
    # The envelopes that had to cross: each alert, and the receipt it is answered with.
    own = envelope * alerts + sum(len(q.data) for q in receipts)
    return {
        "bytes": crossed,
        "envelope_bytes": own,
        "bytes_per_alert": crossed / alerts,
        "bytes_per_alert_ratio": crossed / own,
        "bytes_per_alert_alert_only_ratio": crossed / (envelope * alerts),
        "envelope": envelope,
        "receipt_envelope": len(receipts[0].data) if receipts else 0,
        "alerts": alerts,
        "rate": rate,
        "mean_life_s": mean_life,
        "cuts": proxy.stats.cuts,
        "connections": proxy.stats.connections,
        "duplicates": duplicates,
        "receipts_sent": len(receipts),
    }


def idle_round(kind: str, made: Fleet, folder: Path, *, seconds: float) -> dict[str, Any]:
    """KB a day an idle tablet's link carries (no cuts; measured over ``seconds``)."""
    with broker(kind, made, folder / "broker", archive=True) as run:
        proxy = FaultProxy(run.port, seed=16)
        port = proxy.start()
        tablet = _tablet(made, port, folder / "tablet")
        tablet.start()
        try:
            if not tablet.connected.wait(60):
                raise RuntimeError(f"the tablet did not connect to {kind} through the proxy")
            time.sleep(5.0)  # the connect's own traffic is not idling
            base = _crossed(proxy)
            time.sleep(seconds)
            crossed = _crossed(proxy) - base
        finally:
            tablet.stop()
            proxy.stop()
    return {"bytes": crossed, "seconds": seconds, "kb_per_day": crossed / seconds * 86400 / 1000}
