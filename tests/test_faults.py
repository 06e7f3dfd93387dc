"""Faults at the ends: a tablet killed again and again, a revocation learned late, forged input."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from brokers import BrokerHandle, Network, embedded_broker
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mqttc import TestClient
from netsim import ALERT
from nodekit import Nodes, wait_for

from broker.archive_service import ArchiveService
from certs import EnrolmentBundle, Pki
from demo.flaky import FaultProxy
from schemas import (
    Crime,
    Incident,
    Kind,
    Position,
    ReplayWindow,
    Scope,
    Signer,
    gap_requests,
    seal,
)
from subscriber import Inbox
from subscriber.cli import main as sub_main

KILLS = int(os.environ.get("BLO_TABLET_KILLS", "20"))


def test_tablet_killed_repeatedly_keeps_a_complete_consistent_inbox(
    network: Network, tmp_path: Path
) -> None:
    count = 150
    rng = random.Random(3)
    with embedded_broker(network) as handle:
        group = Nodes(network, handle.port, tmp_path)
        from broker.archive_service import ArchiveService

        archive = ArchiveService(
            EnrolmentBundle.load(network.bundle("kh-archive")),
            "127.0.0.1",
            handle.port,
            tmp_path / "archive.sqlite3",
            trust_source=Pki(network.kh).trust_messages,
            gap_grace=timedelta(seconds=1),
            probe_every=3.0,
        )
        archive.start()
        hq = group.start("kh-nacd")
        data = tmp_path / "tablet"
        command = [
            sys.executable,
            "-m",
            "subscriber.cli",
            "run",
            "--bundle",
            str(network.bundle("kh-blo-bavet")),
            "--data",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(handle.port),
        ]
        log = (tmp_path / "tablet.log").open("ab")
        try:
            assert hq.connected.wait(10)
            sent = 0
            for _ in range(KILLS):
                tablet = subprocess.Popen(command, stdout=log, stderr=log)
                # HQ keeps publishing while the tablet lives, then it dies mid-stream.
                for _ in range(count // KILLS):
                    hq.send(ALERT, Scope.country("kh"))
                    sent += 1
                time.sleep(rng.uniform(0.2, 1.2))
                tablet.send_signal(signal.SIGKILL)
                tablet.wait(5)
            while sent < count:
                hq.send(ALERT, Scope.country("kh"))
                sent += 1
            tablet = subprocess.Popen(command, stdout=log, stderr=log)
            inbox = Inbox(data / "inbox.sqlite3")

            def complete() -> bool:
                return [s for n, _, s in inbox.sequences() if n == "kh-nacd"] == list(
                    range(1, count + 1)
                )

            assert wait_for(complete, 120), len(inbox.sequences())
            tablet.send_signal(signal.SIGTERM)
            assert tablet.wait(10) == 0
        finally:
            log.close()
            group.stop_all()
            archive.stop()
    db = sqlite3.connect(data / "inbox.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = db.execute(
        "SELECT count(*), count(DISTINCT msg_id) FROM messages WHERE sender = 'kh-nacd'"
    ).fetchone()
    assert rows == (count, count)  # complete, and each exactly once


def test_offline_tablet_learns_revocation_on_reconnect(broker: BrokerHandle, nodes: Nodes) -> None:
    rc = nodes.start("kh-rc")
    bavet = nodes.start("kh-blo-bavet")
    assert rc.connected.wait(10)
    assert bavet.connected.wait(10)
    before = rc.send(ALERT, Scope.all())
    assert wait_for(lambda: before in [s.msg_id for s in bavet.inbox.messages()])
    nodes.stop("kh-blo-bavet")  # the tablet goes offline
    rc.send(ALERT, Scope.all())  # sent before the revocation: legitimately its
    old = Pki(broker.network.kh).keyset().version
    Pki(broker.network.kh).revoke("kh-rc", datetime.now(UTC), reason="tablet lost")
    bavet = nodes.start("kh-blo-bavet")
    assert wait_for(lambda: (bavet.inbox.state().get("keysets") or {}).get("kh", 0) > old)
    # From now on anything signed by kh-rc is refused, replays of old messages included.
    from schemas import ReplayRequest, encode_request

    request = ReplayRequest(sender="kh-rc", first=1)
    bavet.client.publish("blo/request/kh-blo-bavet", encode_request(request), qos=1)
    assert wait_for(lambda: bavet.inbox.rejections().get("revoked_key", 0) >= 1)


def test_forged_tampered_and_replayed_envelopes_are_shown_nowhere(
    broker: BrokerHandle,
    nodes: Nodes,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    rc = nodes.start("kh-rc")
    tablets = [nodes.start(n) for n in ("kh-blo-bavet", "kh-blo-poipet")]
    assert all(c.connected.wait(10) for c in [rc, *tablets])
    genuine = rc.send(ALERT, Scope.all())
    assert wait_for(lambda: all(t.inbox.count() == 1 for t in tablets))
    sealed = tablets[0].inbox.messages()[0].sealed
    original = sealed.signed + sealed.signature
    nodes.stop("kh-rc")
    # The attacker holds kh-rc's connection (allowed to publish on blo/all) and
    # HQ's (allowed on blo/country/kh), but not kh-rc's signing key.
    attacker = TestClient(broker.network.bundle("kh-rc"), broker.port, clean=True)
    hq = TestClient(broker.network.bundle("kh-nacd"), broker.port, clean=True)
    assert attacker.connect()
    assert hq.connect()
    now = datetime.now(UTC).replace(microsecond=0)
    forged = seal(
        Signer("kh-rc", Ed25519PrivateKey.generate()),
        ALERT,
        seq=2,
        scope=Scope.all(),
        issued=now,
        expires=now + timedelta(days=1),
    )
    tampered = bytearray(original)
    tampered[-100] ^= 0x01  # inside the body, before the signature
    assert attacker.publish("blo/all", forged)
    assert attacker.publish("blo/all", bytes(tampered))
    assert attacker.publish("blo/all", original)  # a replay
    assert hq.publish("blo/country/kh", original)  # replayed onto another topic
    attacker.close()
    hq.close()

    def refused(tablet: object) -> bool:
        counts = tablet.inbox.rejections()  # type: ignore[attr-defined]
        return all(counts.get(r) for r in ("bad_signature", "duplicate", "wrong_topic")) and bool(
            tablet.inbox.quarantined()
        )  # type: ignore[attr-defined]

    for tablet in tablets:
        assert wait_for(lambda t=tablet: refused(t)), tablet.inbox.rejections()
        assert [s.msg_id for s in tablet.inbox.messages()] == [genuine]  # shown nowhere
    args = [
        "--bundle",
        str(broker.network.bundle("kh-blo-bavet")),
        "--data",
        str(nodes.folder("kh-blo-bavet")),
    ]
    capsys.readouterr()
    assert sub_main(["status", *args]) == 0
    out = capsys.readouterr().out
    for word in ("bad_signature: 1", "wrong_topic: 1", "1 quarantined"):
        assert word in out
    capsys.readouterr()
    assert sub_main(["inbox", *args]) == 0
    assert "inbox (1)" in capsys.readouterr().out


# -- issue 9, items 2 and 4: a failed commit, dying threads ---------------------------------


class FailingFor:
    """Wraps a store's ``add_many``: every call with something to store raises
    ``sqlite3.OperationalError`` from the first such call until ``seconds`` later."""

    def __init__(self, add_many: Callable[..., list[bool]], seconds: float) -> None:
        self.add_many, self.seconds = add_many, seconds
        self.started: float | None = None
        self.failed = 0  # calls that raised
        self.refused = 0  # messages in the batches that raised

    def __call__(self, batch: list[object], *args: object, **kwargs: object) -> list[bool]:
        if batch:
            if self.started is None:
                self.started = time.monotonic()
            if time.monotonic() - self.started < self.seconds:
                self.failed += 1
                self.refused += len(batch)
                raise sqlite3.OperationalError("disk I/O error (injected by the test)")
        return self.add_many(batch, *args, **kwargs)


def test_failed_inbox_commit_is_redelivered_and_the_link_goes_on(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    """On Mosquitto without the archive, only the broker's redelivery can bring a batch
    back: the tablet must not acknowledge it before its commit, must forget it (window
    and message ids) and must not leave the broker's in-flight window full of
    unacknowledged messages. amqtt drops what is in flight at a disconnect, so there
    the archive's catch-up brings it back (and is refused if the ids are not forgotten)."""
    archive = None
    if broker.kind == "amqtt":
        archive = ArchiveService(
            EnrolmentBundle.load(broker.network.bundle("kh-archive")),
            "127.0.0.1",
            broker.port,
            tmp_path / "archive.sqlite3",
            trust_source=Pki(broker.network.kh).trust_messages,
            gap_grace=timedelta(seconds=1),
            probe_every=3.0,
        )
        archive.start()
        assert archive.connected.wait(10)
    group = Nodes(broker.network, broker.port, tmp_path)
    try:
        hq = group.start("kh-nacd")
        tablet = group.start("kh-blo-bavet")
        assert hq.connected.wait(10)
        assert tablet.connected.wait(10)
        failing = FailingFor(tablet.inbox.add_many, seconds=2.0)
        tablet.inbox.add_many = failing  # type: ignore[method-assign]
        first = 150  # more than the broker's in-flight window (100) while commits fail
        for _ in range(first):
            hq.send(ALERT, Scope.country("kh"))
        assert wait_for(lambda: failing.failed > 0)  # positive control: the fault happened

        def held() -> list[int]:
            return [s for n, _, s in tablet.inbox.sequences() if n == "kh-nacd"]

        assert wait_for(lambda: held() == list(range(1, first + 1)), 60), len(held())
        assert failing.refused >= 100, failing.refused
        for _ in range(50):  # and the link goes on after it
            hq.send(ALERT, Scope.country("kh"))
        assert wait_for(lambda: held() == list(range(1, first + 51)), 60), len(held())
        state = tablet.inbox.state()
        assert state["faults"] >= 1
        assert "OperationalError" in state["last_fault"]
        assert tablet.faults == state["faults"]
    finally:
        group.stop_all()
        if archive is not None:
            archive.stop()


def test_gaps_can_be_read_while_another_thread_commits() -> None:
    """The tablet's ticker reads the window's gaps while its committer commits:
    "dictionary changed size during iteration" killed the ticker."""
    window = ReplayWindow()
    now = datetime.now(UTC)
    for i in range(3_000):  # a gap each, so one gaps() call spans many thread switches
        window.commit(f"kh-blo-s{i}", 5, now)
    stop = threading.Event()

    def commit() -> None:
        i = 0
        while not stop.is_set():
            window.commit(f"kh-blo-n{i}", 3, now)  # a new sender: the dict grows
            i += 1
            if i % 50 == 0:
                time.sleep(0.0005)  # bounded growth

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    writer = threading.Thread(target=commit, daemon=True)
    writer.start()
    try:
        for _ in range(50):
            assert len(window.gaps()) >= 3_000
    finally:
        stop.set()
        writer.join(5)
        sys.setswitchinterval(old)
    assert len(window.senders()) > 3_000  # positive control: the writer did run meanwhile


def test_ticker_and_paho_callbacks_outlive_unexpected_exceptions(
    network: Network, tmp_path: Path
) -> None:
    Pki(network.kh).write_bundle("kh-nacd")  # so HQ knows the tablet's key without the archive
    with embedded_broker(network) as handle:
        proxy = FaultProxy(handle.port)
        flaky = proxy.start()
        group = Nodes(network, handle.port, tmp_path)
        try:
            hq = group.start("kh-nacd")
            tablet = group.start("kh-blo-bavet", port=flaky)
            assert hq.connected.wait(10)
            assert tablet.connected.wait(10)
            # The ticker meets an exception that is not a BloError, once.
            counts = tablet.outbox.counts
            calls = {"n": 0}

            def counts_once_broken() -> tuple[int, int]:
                calls["n"] += 1
                if calls["n"] == 1:
                    raise RuntimeError("outbox counts failed (injected by the test)")
                return counts()

            tablet.outbox.counts = counts_once_broken  # type: ignore[method-assign]
            assert wait_for(lambda: tablet.faults >= 1)
            assert "RuntimeError" in tablet.inbox.state()["last_fault"]
            # ... and goes on: what the tablet queues now is still sent.
            incident = Incident(
                crime=Crime.MIGRANT_SMUGGLING,
                occurred=datetime.now(UTC).replace(microsecond=0),
                position=Position(lat=13.6581, lon=102.5621),
            )
            tablet.send(incident, Scope.country("kh"))
            assert wait_for(lambda: len(hq.inbox.messages((Kind.INCIDENT,))) == 1)
            assert wait_for(lambda: calls["n"] > 1, 10)

            # paho's callbacks write the link state to the inbox; a failing write must
            # not end paho's thread (which would end the link for good).
            def broken(**values: object) -> None:
                raise sqlite3.OperationalError("database is locked (injected by the test)")

            tablet.inbox.set_state = broken  # type: ignore[method-assign]
            proxy.cut_all()
            assert wait_for(lambda: not tablet.connected.is_set(), 10)
            assert wait_for(tablet.connected.is_set, 30)  # reconnected
            hq.send(ALERT, Scope.country("kh"))
            assert wait_for(lambda: tablet.inbox.count() == 1)
            del tablet.inbox.set_state  # the class's own again, for stop()
        finally:
            group.stop_all()
            proxy.stop()


def test_archive_ticker_outlives_an_unexpected_exception(network: Network, tmp_path: Path) -> None:
    with embedded_broker(network) as handle:
        pki = Pki(network.kh)
        archive = ArchiveService(
            EnrolmentBundle.load(network.bundle("kh-archive")),
            "127.0.0.1",
            handle.port,
            tmp_path / "archive.sqlite3",
            trust_source=pki.trust_messages,
        )
        archive.start()
        try:
            assert archive.connected.wait(10)
            calls = {"n": 0}

            def trust_once_broken() -> list[bytes]:
                calls["n"] += 1
                if calls["n"] == 1:
                    raise OSError("PKI folder unreadable (injected by the test)")
                return pki.trust_messages()

            archive.trust_source = trust_once_broken
            assert wait_for(lambda: calls["n"] >= 3, 10), calls  # the ticker goes on
            assert archive.stats["faults"] >= 1
            assert "PKI folder unreadable" in archive.last_fault
        finally:
            archive.stop()


def test_gap_requests_are_short_and_mostly_missing() -> None:
    """A request a link cut every few seconds can carry: one span over all gaps
    replayed 1,257 envelopes for 173 missing, and the full soak on amqtt never ended."""
    window = ReplayWindow()
    now = datetime.now(UTC)
    for seq in [1, 2, 3, 10, 12, 13, 14, 20, 400, 2000]:
        window.commit("kh-nacd", seq, now)
    for seq in [5, 9]:
        window.commit("kh-rc", seq, now)
    asked = gap_requests(window.gaps())
    # 4-9, 11, 15-19 and the first part of 21-399 (256 numbers, 251 of them missing)
    assert asked == {("kh-nacd", 1): (4, 259), ("kh-rc", 1): (1, 8)}
    # Far-apart single gaps are asked one by one, not as one long span.
    sparse = ReplayWindow()
    for seq in range(1, 301):
        if seq not in (2, 150, 299):
            sparse.commit("kh-nacd", seq, now)
    assert gap_requests(sparse.gaps()) == {("kh-nacd", 1): (2, 2)}
    assert gap_requests([]) == {}


def test_outbox_marks_sent_only_after_the_broker_acknowledged(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    """A link that holds every byte (a stalled uplink, the socket still open): paho has
    written the alert, no PUBACK comes. The outbox must keep it unsent, or a crash then
    loses it; once the link moves again the PUBACK marks it sent (the positive control)."""
    proxy = FaultProxy(broker.port)
    flaky = proxy.start()
    nodes = Nodes(broker.network, broker.port, tmp_path)
    try:
        hq = nodes.start("kh-nacd", port=flaky)
        assert hq.connected.wait(10)
        proxy.set_stalled(True)
        hq.send(ALERT, Scope.country("kh"))
        # Published into the socket (paho holds it in flight) ...
        assert wait_for(lambda: 1 in hq._inflight, 10)
        time.sleep(1.0)  # five ticks of the test nodes' 0.2 s ticker
        # ... but never acknowledged: still pending.
        assert [q.seq for q in hq.outbox.pending()] == [1]
        proxy.set_stalled(False)
        assert wait_for(lambda: hq.outbox.pending() == [], 15), "the PUBACK never marked it sent"
    finally:
        nodes.stop_all()
        proxy.stop()
