"""Soak under faults: links cut at random, in both directions, on both brokers.

HQ publishes alerts while twelve tablets' links are cut at random moments
(often mid-packet) by a proxy; afterwards every tablet holds every alert
exactly once and HQ's receipts show every delivery. Then twelve BLOs write
incidents while offline and while their links flap; HQ ends with all of them
exactly once. Sized to finish in a few minutes on two cores; set
BLO_SOAK_ALERTS=2000 BLO_SOAK_INCIDENTS=100 for the full run (bench/soak.py).

The embedded broker runs as its own process (``blo-broker run``), as it does in
service: in this test's process it would share one interpreter lock with twelve
tablets, HQ, the archive and the proxy, and at full size it answered so slowly
that amqtt gave up waiting for acknowledgements (5 s) and dropped the messages.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from brokers import BrokerHandle, Network, free_port, mosquitto_broker
from netsim import ALERT
from nodekit import Nodes, wait_for

from broker.archive_service import ArchiveService
from certs import EnrolmentBundle, Pki
from demo.flaky import FaultProxy
from schemas import Crime, Incident, Kind, Position, Role, Scope

ALERTS = int(os.environ.get("BLO_SOAK_ALERTS", "150"))
INCIDENTS = int(os.environ.get("BLO_SOAK_INCIDENTS", "30"))
TABLETS = [f"kh-blo-t{i:02d}" for i in range(1, 13)]


@contextlib.contextmanager
def embedded_process(network: Network) -> Iterator[BrokerHandle]:
    """``blo-broker run`` (amqtt) in its own process, on a free port."""
    port = free_port()
    log = network.root / "blo-broker.log"
    command = [sys.executable, "-m", "broker.cli", "run", "-p", str(port)]
    command += ["--pki", str(network.kh), "--data", str(network.root / "data"), "--no-archive"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=out, env={**os.environ, "COLUMNS": "200"}
        )
    try:
        assert wait_for(lambda: "listening on" in log.read_text(), 30), log.read_text()
        yield BrokerHandle("amqtt", port, network, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(params=["amqtt", "mosquitto"])
def soak(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Network, int, str]]:
    """Twelve more tablets, a broker, and the archive (which tells the older bundles of them)."""
    network = Network(tmp_path)
    pki = Pki(network.kh)
    now = datetime.now(UTC)
    for node in TABLETS:
        pki.issue(node, Role.BLO, now, regions=["kh-soak"])
    start = embedded_process if request.param == "amqtt" else mosquitto_broker
    with start(network) as handle:
        archive = ArchiveService(
            EnrolmentBundle.load(network.bundle("kh-archive")),
            "127.0.0.1",
            handle.port,
            tmp_path / "archive.sqlite3",
            trust_source=pki.trust_messages,
            gap_grace=timedelta(seconds=2),
            probe_every=3.0,
        )
        archive.start()
        assert archive.connected.wait(10)
        try:
            yield network, handle.port, request.param
        finally:
            archive.stop()


class Progress:
    """Every 30 s, one line of where a long wait stands (the full soak runs for minutes)."""

    def __init__(self, kind: str, what: str) -> None:
        self.kind, self.what = kind, what
        self.started = self.last = time.monotonic()

    def __call__(self, state: object) -> None:
        now = time.monotonic()
        if now - self.last >= 30:
            self.last = now
            elapsed = round(now - self.started)
            print(f"\nSOAK-PROGRESS {self.kind} {self.what} +{elapsed} s: {state}")


def report(kind: str, what: str, **figures: object) -> None:
    line = ", ".join(f"{k} {v}" for k, v in figures.items())
    print(f"\nSOAK {kind} {what}: {line}")


def test_alerts_reach_every_flapping_tablet_exactly_once(
    soak: tuple[Network, int, str], tmp_path: Path
) -> None:
    network, port, kind = soak
    proxy = FaultProxy(port, seed=7, mean_life=1.5)
    flaky = proxy.start()
    nodes = Nodes(network, port, tmp_path)
    started = time.monotonic()
    try:
        hq = nodes.start("kh-nacd")
        tablets = {n: nodes.start(n, port=flaky) for n in TABLETS}
        assert hq.connected.wait(10)
        ids = [hq.send(ALERT, Scope.country("kh")) for _ in range(ALERTS)]

        progress = Progress(kind, "alerts")

        def complete() -> bool:
            counts = {n[-3:]: c.inbox.count() for n, c in tablets.items()}
            progress(counts)
            return all(count >= ALERTS for count in counts.values())

        assert wait_for(complete, 600), {n: c.inbox.count() for n, c in tablets.items()}
        cuts = proxy.stats.cuts
        proxy.mean_life = None  # let the receipts drain over a calm link
        proxy.cut_all()

        def delivered_receipts() -> int:
            count = sum(len(hq.inbox.receipts(i)) for i in ids)
            progress(f"receipts {count} of {ALERTS * len(TABLETS)}")
            return count

        assert wait_for(lambda: delivered_receipts() == ALERTS * len(TABLETS), 300), (
            delivered_receipts()
        )
        delivered = delivered_receipts()
        duplicates = 0
        for node, client in tablets.items():
            seqs = [s for sender, _, s in client.inbox.sequences() if sender == "kh-nacd"]
            assert seqs == list(range(1, ALERTS + 1)), node  # all, once, in HQ's order
            duplicates += client.inbox.rejections().get("duplicate", 0)
        report(
            kind,
            "alerts",
            alerts=ALERTS,
            tablets=len(TABLETS),
            cuts=cuts,
            mid_packet=proxy.stats.mid_chunk_cuts,
            connections=proxy.stats.connections,
            lost=0,
            duplicates_dropped=duplicates,
            duplicates_shown=0,
            receipts_delivered=delivered,
            seconds=round(time.monotonic() - started),
        )
        assert delivered == ALERTS * len(TABLETS)
    finally:
        nodes.stop_all()
        proxy.stop()


def test_incidents_written_offline_reach_hq_exactly_once(
    soak: tuple[Network, int, str], tmp_path: Path
) -> None:
    network, port, kind = soak
    proxy = FaultProxy(port, seed=11, mean_life=1.0)
    flaky = proxy.start()
    proxy.set_down(True)  # every BLO starts offline
    nodes = Nodes(network, port, tmp_path)
    started = time.monotonic()
    try:
        hq = nodes.start("kh-nacd")
        blos = {n: nodes.start(n, port=flaky) for n in TABLETS}
        occurred = datetime.now(UTC).replace(microsecond=0)
        incident = Incident(
            crime=Crime.MIGRANT_SMUGGLING,
            occurred=occurred,
            position=Position(lat=13.6581, lon=102.5621),
            persons_detained=1,
        )
        for i in range(INCIDENTS):
            if i == INCIDENTS // 2:
                proxy.set_down(False)  # the links come back, and flap
            for client in blos.values():
                client.send(incident, Scope.country("kh"))
        expected = INCIDENTS * len(TABLETS)

        progress = Progress(kind, "incidents")

        def arrived() -> int:
            count = len(hq.inbox.messages((Kind.INCIDENT,)))
            progress(f"{count} of {expected}")
            return count

        assert wait_for(lambda: arrived() >= expected, 600), arrived()
        per_sender: dict[str, list[int]] = {}
        for sender, _, seq in hq.inbox.sequences():
            per_sender.setdefault(sender, []).append(seq)
        for node in TABLETS:
            assert per_sender[node] == list(range(1, INCIDENTS + 1)), node
        report(
            kind,
            "incidents",
            incidents=expected,
            cuts=proxy.stats.cuts,
            refused_while_down=proxy.stats.refused,
            lost=0,
            duplicates_dropped=hq.inbox.rejections().get("duplicate", 0),
            seconds=round(time.monotonic() - started),
        )
        assert arrived() == expected
    finally:
        nodes.stop_all()
        proxy.stop()
