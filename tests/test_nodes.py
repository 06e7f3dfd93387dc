"""Nodes over real brokers: alerts, receipts, and incidents written offline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from brokers import free_port
from netsim import ALERT
from nodekit import Nodes, wait_for

from publisher.cli import main as pub_main
from schemas import Crime, Incident, Kind, Position, Scope
from subscriber.cli import main as sub_main

ALERT_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


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


@pytest.mark.parametrize("broker", ["amqtt"], indirect=True)
def test_a_failing_batch_does_not_stop_the_receive_loop(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    """A fault inside the commit path (here the officer-notification hook) is logged;
    the client keeps receiving, and nothing accepted is lost."""
    hq = nodes.start("kh-nacd")
    bavet = nodes.start("kh-blo-bavet")
    assert hq.connected.wait(10)
    assert bavet.connected.wait(10)
    calls: list[int] = []

    def notify(accepted: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the notification service is down")

    bavet.on_stored = notify
    first = hq.send(ALERT, Scope.country("kh"), days=7)
    assert wait_for(lambda: len(calls) >= 1)
    second = hq.send(ALERT, Scope.country("kh"), days=7)
    assert wait_for(lambda: {s.msg_id for s in bavet.inbox.messages()} == {first, second})
    assert any("a batch of" in r.message for r in caplog.records)
