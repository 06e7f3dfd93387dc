"""Nodes over real brokers: alerts, receipts, and incidents written offline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from brokers import BrokerHandle, Network, free_port
from netsim import ALERT

from broker.archive_service import ArchiveService
from certs import EnrolmentBundle, Pki
from publisher.cli import main as pub_main
from schemas import Crime, Incident, Kind, Position, Scope
from subscriber import NodeClient
from subscriber.cli import main as sub_main

ALERT_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def wait_for(predicate: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


class Nodes:
    """Running clients of a test network, each with its own data folder."""

    def __init__(self, network: Network, port: int, root: Path) -> None:
        self.network, self.port, self.root = network, port, root
        self.running: dict[str, NodeClient] = {}

    def folder(self, node: str) -> Path:
        return self.root / "nodes" / node

    def start(self, node: str, port: int | None = None) -> NodeClient:
        client = NodeClient(
            EnrolmentBundle.load(self.network.bundle(node)),
            "127.0.0.1",
            port or self.port,
            self.folder(node),
            gap_grace=timedelta(seconds=1),
            tick=0.2,
        )
        client.start()
        self.running[node] = client
        return client

    def stop(self, node: str) -> None:
        self.running.pop(node).stop()

    def stop_all(self) -> None:
        for node in list(self.running):
            self.stop(node)


@pytest.fixture
def nodes(broker: BrokerHandle, tmp_path: Path) -> Iterator[Nodes]:
    """Node clients, beside the archive (which publishes the current keysets, retained)."""
    archive = ArchiveService(
        EnrolmentBundle.load(broker.network.bundle("kh-archive")),
        "127.0.0.1",
        broker.port,
        tmp_path / "archive.sqlite3",
        trust_source=Pki(broker.network.kh).trust_messages,
        gap_grace=timedelta(seconds=1),
    )
    archive.start()
    assert archive.connected.wait(10)
    group = Nodes(broker.network, broker.port, tmp_path)
    group.archive = archive  # type: ignore[attr-defined]
    yield group
    group.stop_all()
    archive.stop()


def test_alert_delivered_read_and_receipted(
    nodes: Nodes, capsys: pytest.CaptureFixture[str]
) -> None:
    hq = nodes.start("kh-nacd")
    tablets = [nodes.start(n) for n in ("kh-blo-bavet", "kh-blo-poipet")]
    assert all(c.connected.wait(10) for c in [hq, *tablets])
    alert_id = hq.send(ALERT, Scope.country("kh"), days=7)
    for tablet in tablets:
        assert wait_for(lambda t=tablet: [s.msg_id for s in t.inbox.messages()] == [alert_id])
    assert wait_for(lambda: set(hq.inbox.receipts(alert_id)) == {"kh-blo-bavet", "kh-blo-poipet"})
    assert tablets[0].mark_read(alert_id)
    assert not tablets[0].mark_read(alert_id)  # only the first reading counts
    assert wait_for(lambda: "read" in hq.inbox.receipts(alert_id).get("kh-blo-bavet", {}))
    capsys.readouterr()
    bundle = str(nodes.network.bundle("kh-nacd"))
    assert (
        pub_main(
            [
                "receipts",
                "--bundle",
                bundle,
                "--data",
                str(nodes.folder("kh-nacd")),
                alert_id.hex()[:8],
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "kh-blo-bavet" in out
    assert "kh-blo-poipet" in out
    assert "2 offices: 2 delivered, 1 read, 0 not yet received" in out


def test_incident_written_offline_reaches_hq_once(nodes: Nodes) -> None:
    hq = nodes.start("kh-nacd")
    dead_port = free_port()  # nothing listens there: the tablet's link is down
    bavet = nodes.start("kh-blo-bavet", port=dead_port)
    incident = Incident(
        crime=Crime.DRUG_TRAFFICKING,
        occurred=ALERT_TIME,
        position=Position(lat=11.0791, lon=106.1846, accuracy_m=10),
        crossing="Bavet",
    )
    msg_id = bavet.send(incident, Scope.country("kh"))
    assert bavet.outbox.counts() == (0, 1)
    nodes.stop("kh-blo-bavet")  # the tablet is switched off with the incident unsent
    bavet = nodes.start("kh-blo-bavet")
    assert wait_for(lambda: bavet.outbox.counts() == (1, 0))
    assert wait_for(lambda: [s.msg_id for s in hq.inbox.messages((Kind.INCIDENT,))] == [msg_id])
    assert hq.inbox.count() >= 1


def test_officer_commands_show_khmer(
    nodes: Nodes, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    hq = nodes.start("kh-nacd")
    bavet = nodes.start("kh-blo-bavet")
    assert hq.connected.wait(10)
    assert bavet.connected.wait(10)
    alert_id = hq.send(ALERT, Scope.country("kh"))
    assert wait_for(lambda: bavet.inbox.count() == 1)
    assert wait_for(lambda: bavet.outbox.counts() == (1, 0))  # the delivered receipt went out
    nodes.stop("kh-blo-bavet")
    args = [
        "--bundle",
        str(nodes.network.bundle("kh-blo-bavet")),
        "--data",
        str(nodes.folder("kh-blo-bavet")),
    ]
    capsys.readouterr()
    assert sub_main(["inbox", *args, "--lang", "km"]) == 0
    out = capsys.readouterr().out
    assert "រឹបអូសហេរ៉ូអ៊ីននៅប៉ោយប៉ែត" in out
    assert "unread" in out
    assert "severe" in out
    assert sub_main(["show", *args, alert_id.hex()[:6], "--lang", "km"]) == 0
    out = capsys.readouterr().out
    assert "[km] រឹបអូសហេរ៉ូអ៊ីននៅប៉ោយប៉ែត" in out
    assert "Heroin seized at Poipet" in out
    assert "read receipt" in out
    assert sub_main(["status", *args]) == 0
    out = capsys.readouterr().out
    assert "1 waiting" in out  # delivered went out; the read receipt waits for the link
    assert "kh v" in out
