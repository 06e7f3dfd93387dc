"""trace: one alert's path, HQ -> broker -> tablet, with a timestamp at every stage.

    python bench/trace.py [--alerts 40] [--gap 0.1] [--brokers amqtt,mosquitto] [--json F]

Stages (``time.monotonic_ns``, one clock for every process on Linux):

    publish      HQ starts ``Outbox.submit`` (seal + commit), as ``blo-pub`` does
    outbox       the outbox transaction is committed (fsync done)
    write        paho writes the PUBLISH to HQ's TLS socket
    broker_out   the first bytes after it leave the broker towards the tablet
                 (a pass-through relay in front of the tablet times them)
    paho_in      the tablet's ``on_message`` is entered
    picked       the tablet's committer thread takes the message from the queue
    verify       the Ed25519 signature is checked (end of ``Sealed.verify``)
    decode       the body is decoded and validated (end of ``Sealed.decode_body``)
    commit       the inbox transaction is committed (end of ``Inbox.add_many``)
    ack          the PUBACK is queued in paho (end of ``client.ack``)

The hook costs nothing when off: ``Tracer.install`` wraps the functions above on
the objects of this one run (and the two ``Sealed`` methods for the process),
so neither the client nor the receiver core carries a single test for tracing.
Alerts go one at a time, ``--gap`` apart: this is the path's own latency, not a
backlog (bench/run.py's fanout measures the fleet).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib
import itertools

from bench.harness import Fleet, broker, fleet
from bench.sender import Sender
from certs import EnrolmentBundle
from schemas.envelope import Sealed

STAGES = (
    "publish",
    "outbox",
    "write",
    "broker_out",
    "paho_in",
    "picked",
    "verify",
    "decode",
    "commit",
    "ack",
)


class Tracer:
    """Timestamps of the alert in flight, by stage (one alert at a time)."""

    def __init__(self) -> None:
        self.now: dict[str, int] = {}
        self.done: list[dict[str, int]] = []
        self.armed = False

    def mark(self, stage: str) -> None:
        if self.armed and stage not in self.now:
            self.now[stage] = time.monotonic_ns()

    def wrap(self, owner: Any, name: str, stage: str, *, before: bool = False) -> None:
        """Replace ``owner.name`` by a version that marks ``stage`` (after it returns)."""
        original: Callable[..., Any] = getattr(owner, name)
        mark = self.mark

        def traced(*args: Any, **kwargs: Any) -> Any:
            if before:
                mark(stage)
            result = original(*args, **kwargs)
            if not before:
                mark(stage)
            return result

        setattr(owner, name, traced)


class Relay:
    """broker -> tablet pass-through on loopback; marks the first bytes towards the tablet."""

    def __init__(self, target: int, on_down: Callable[[int], None]) -> None:
        self.target = target
        self.on_down = on_down
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.server.accept()
            except OSError:
                return
            far = socket.create_connection(("127.0.0.1", self.target))
            for sock in (near, far):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(near, far, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(far, near, self.on_down), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, mark: Callable[[int], None] | None) -> None:
        try:
            while data := src.recv(65536):
                if mark is not None:
                    mark(len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self.server.close()


def trace_broker(kind: str, made: Fleet, work: Path, alerts: int, gap: float) -> dict[str, Any]:
    """Trace ``alerts`` alerts, one at a time, on broker ``kind``; per-stage medians in ms."""
    from subscriber import NodeClient

    tracer = Tracer()
    original_verify, original_decode = Sealed.verify, Sealed.decode_body
    tracer.wrap(Sealed, "verify", "verify")
    tracer.wrap(Sealed, "decode_body", "decode")
    try:
        with broker(kind, made, work / kind / "broker") as run:
            relay = Relay(run.port, lambda n: tracer.mark("broker_out"))
            node = made.tablets[0]
            tablet = NodeClient(
                EnrolmentBundle.load(made.bundle(node)),
                "127.0.0.1",
                relay.port,
                work / kind / "tablet",
                gap_grace=timedelta(seconds=30),
                catch_up_every=3600,
                receipts=False,
                on_stored=lambda accepted: None,
            )
            tracer.wrap(tablet, "_on_message", "paho_in", before=True)
            tracer.wrap(tablet, "_commit", "picked", before=True)
            tracer.wrap(tablet.inbox, "add_many", "commit")
            tracer.wrap(tablet.client, "ack", "ack")
            # paho looks its callbacks up when it calls them: set it again, wrapped.
            from subscriber.link import guarded

            tablet.client.on_message = guarded(tablet._on_message, "on_message", tablet._fault)
            tablet.start()
            if not tablet.connected.wait(30):
                raise RuntimeError(f"{node} did not connect to {kind}")
            time.sleep(1.0)  # subscriptions go right after CONNACK
            sender = Sender("project", made, run.port, work / kind)
            assert sender.outbox is not None
            tracer.wrap(sender.outbox, "submit", "outbox")
            tracer.wrap(sender.client, "_packet_write", "write", before=True)
            for _ in range(alerts):
                held = len(tracer.done)
                tracer.now = {}
                tracer.armed = True
                tracer.mark("publish")
                sender.send(0)
                deadline = time.monotonic() + 10
                while "ack" not in tracer.now and time.monotonic() < deadline:
                    time.sleep(0.001)
                tracer.armed = False
                if "ack" in tracer.now:
                    tracer.done.append(tracer.now)
                assert len(tracer.done) <= held + 1
                time.sleep(gap)
            sender.close()
            tablet.stop()
            relay.close()
    finally:
        Sealed.verify, Sealed.decode_body = original_verify, original_decode  # type: ignore[method-assign]
    return summarise(tracer.done)


def summarise(done: list[dict[str, int]]) -> dict[str, Any]:
    """Median and p90 of each stage's step from the stage before it, in ms."""
    steps: dict[str, list[float]] = {s: [] for s in STAGES[1:]}
    totals = []
    for marks in done:
        if any(s not in marks for s in STAGES):
            continue
        for before, stage in itertools.pairwise(STAGES):
            steps[stage].append((marks[stage] - marks[before]) / 1e6)
        totals.append((marks["ack"] - marks["publish"]) / 1e6)
        # the end-to-end figure bench/run.py's fanout measures
    out: dict[str, Any] = {"alerts": len(totals)}
    for stage, values in steps.items():
        if values:
            ordered = sorted(values)
            out[stage] = {
                "p50_ms": statistics.median(values),
                "p90_ms": ordered[int(0.9 * (len(ordered) - 1))],
            }
    if totals:
        out["total_p50_ms"] = statistics.median(totals)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/trace.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.1)
    parser.add_argument("--brokers", default="amqtt,mosquitto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="blo-trace-") as tmp:
        made = fleet(Path(tmp) / "fleet", 1)
        for kind in [b for b in args.brokers.split(",") if b]:
            out[kind] = figures = trace_broker(kind, made, Path(tmp), args.alerts, args.gap)
            print(f"{kind}: {figures['alerts']} alerts traced; step from the stage before, ms")
            for stage in STAGES[1:]:
                if stage in figures:
                    cell = figures[stage]
                    print(f"  {stage:<11} p50 {cell['p50_ms']:7.3f}  p90 {cell['p90_ms']:7.3f}")
            if "total_p50_ms" in figures:
                print(f"  {'total':<11} p50 {figures['total_p50_ms']:7.3f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
