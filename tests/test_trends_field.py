"""Trends back to the field: HQ signs one summary per office; the tablet shows it.

The summary is a message kind of its own (``Kind.TREND``), to one office, on
that office's topic; only an HQ may send it, to its own country's offices.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from netsim import Net
from nodekit import Nodes, wait_for

from certs import EnrolmentBundle
from publisher import Outbox
from schemas import (
    Kind,
    Lang,
    Reason,
    Receiver,
    Rejected,
    Scope,
    SignalKind,
    SummarySignal,
    TrendSummary,
    may_send,
    open_envelope,
    seal,
    topics_for,
)
from subscriber.cli import main as sub_main
from trends.cli import main as trends_main

KM = "បាវិត៖ ៧ ករណីសប្តាហ៍នេះ"


def _summary(office: str = "kh-blo-bavet") -> TrendSummary:
    return TrendSummary(
        office=office,
        crossing="Bavet",
        week=2900,
        this_week=7,
        usual=1.4,
        country_usual=2.1,
        headline={Lang.EN: "Bavet: 7 incidents this week; usual 1.4", Lang.KM: KM},
        signals=(
            SummarySignal(
                kind=SignalKind.POISSON,
                place="Bavet",
                observed=7,
                expected=1.4,
                text={
                    Lang.EN: "Bavet, methamphetamine: 7 incidents this week, baseline 1.4",
                    Lang.KM: "បាវិត មេតំហ្វេតាមីន៖ ៧ ករណី",
                },
            ),
        ),
    )


def test_only_an_hq_sends_trends_to_its_own_offices() -> None:
    net = Net()
    store = net.store()
    keyset = store.keyset("kh")
    assert keyset is not None
    hq, bavet = store.node("kh-nacd"), store.node("kh-blo-bavet")
    assert hq is not None
    assert bavet is not None
    assert may_send(hq, Kind.TREND, Scope.node("kh-blo-bavet"), keyset) is None
    assert may_send(hq, Kind.TREND, Scope.node("vn-blo-mocbai"), keyset)  # not its office
    assert may_send(hq, Kind.TREND, Scope.country("kh"), keyset)  # one office at a time
    assert may_send(bavet, Kind.TREND, Scope.node("kh-blo-poipet"), keyset)  # not a BLO's
    assert topics_for(Kind.TREND, Scope.node("kh-blo-bavet"), "kh-nacd") == (
        "blo/node/kh-blo-bavet",
    )
    assert topics_for(Kind.TREND, Scope.country("kh"), "kh-nacd") == ()
    # The receiver refuses a BLO's trend summary even on a topic it may publish to.
    now = net.now
    wire = seal(
        net.signers["kh-blo-bavet"],
        _summary("kh-blo-poipet"),
        seq=1,
        scope=Scope.node("kh-blo-poipet"),
        issued=now,
        expires=now + timedelta(days=7),
    )
    result = Receiver(store, me="kh-blo-poipet").receive("blo/node/kh-blo-poipet", wire, now)
    assert isinstance(result, Rejected)
    assert result.reason is Reason.UNAUTHORIZED
    # Positive control: HQ's is accepted.
    wire = seal(
        net.signers["kh-nacd"],
        _summary(),
        seq=1,
        scope=Scope.node("kh-blo-bavet"),
        issued=now,
        expires=now + timedelta(days=7),
    )
    assert Receiver(store, me="kh-blo-bavet").receive("blo/node/kh-blo-bavet", wire, now).ok


def test_trend_summary_reaches_the_tablet_and_is_shown(
    nodes: Nodes, capsys: pytest.CaptureFixture[str]
) -> None:
    hq = nodes.start("kh-nacd")
    bavet = nodes.start("kh-blo-bavet")
    assert hq.connected.wait(10)
    assert bavet.connected.wait(10)
    hq.send(_summary(), Scope.node("kh-blo-bavet"), days=14)
    assert wait_for(lambda: len(bavet.inbox.messages((Kind.TREND,))) == 1, 30)
    # Not an inbox item: the officer's inbox lists alerts, bulletins and incidents.
    assert bavet.inbox.messages() == []
    args = ["trends", "--bundle", str(nodes.network.bundle("kh-blo-bavet"))]
    args += ["--data", str(nodes.folder("kh-blo-bavet"))]
    capsys.readouterr()
    assert sub_main(args) == 0
    out = capsys.readouterr().out
    assert "Bavet: 7 incidents this week" in out
    assert "Bavet, methamphetamine: 7 incidents this week, baseline 1.4" in out
    assert sub_main([*args, "--lang", "km"]) == 0
    assert KM in capsys.readouterr().out
    assert sub_main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "trend"
    assert doc["sender"] == "kh-nacd"
    assert doc["this_week"] == 7


def test_blo_trends_publish_queues_one_signed_summary_per_office(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = tmp_path / "sim"
    argv = ["simulate", "--offices", "24", "--years", "1", "--seed", "3", "--out", str(sim)]
    assert trends_main([*argv, "--end", "2026-06-29"]) == 0
    bundle = sim / "pki" / "kh" / "bundles" / "kh-nacd.json"
    data = sim / "data" / "kh-nacd"
    capsys.readouterr()
    assert trends_main(["--bundle", str(bundle), "--data", str(data), "--publish"]) == 0
    out = capsys.readouterr().out
    assert "trend summaries queued" in out
    loaded = EnrolmentBundle.load(bundle)
    outbox = Outbox(data / "outbox.sqlite3", loaded.signer())
    queued = [q for q in outbox.range(1, None) if q.kind is Kind.TREND]
    outbox.close()
    assert queued, out
    now = datetime.now(UTC)
    for q in queued:
        sealed = open_envelope(q.data)
        office = sealed.header.scope.target
        assert office.startswith("kh-blo-")
        receiver = Receiver(loaded.trust_store(now), me=office)
        result = receiver.receive(f"blo/node/{office}", q.data, now)
        assert result.ok, result
        assert isinstance(result.body, TrendSummary)
        assert result.body.office == office
        assert len(sealed.body) <= 1024
    # An office's summary can be read by that office only (another is refused).
    offices = {open_envelope(q.data).header.scope.target for q in queued}
    assert len(offices) == len(queued) > 1  # one each
    other = next(o for o in sorted(offices) if o != office)
    wrong = Receiver(loaded.trust_store(now), me=other).receive(
        f"blo/node/{office}", queued[-1].data, now
    )
    assert isinstance(wrong, Rejected)
    assert wrong.reason is Reason.NOT_FOR_ME
    # Publishing signs as an HQ: without a bundle it says what to give.
    assert trends_main(["--data", str(data), "--publish"]) == 1
    assert "--bundle" in capsys.readouterr().err
