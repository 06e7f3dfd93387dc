"""blo-pub composing and queueing (no broker needed), and the outbox's sequence numbers."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from brokers import BrokerHandle, Network
from netsim import ALERT, REFERENCE
from nodekit import Nodes, wait_for
from PIL import Image

from certs import EnrolmentBundle, Pki
from publisher import Outbox, OutboxError
from publisher.cli import main
from schemas import (
    Alert,
    Incident,
    Kind,
    Lang,
    MsgType,
    Receipt,
    ReceiptStatus,
    Scope,
    open_envelope,
)
from schemas.messages import PositionSource
from schemas.seal import SealedBody
from subscriber.views import headline


@pytest.fixture(autouse=True)
def current_hq(network: Network) -> None:
    """HQ's bundle re-issued with the current keyset: blo-pub refuses an alert to a
    country in which its keyset knows no office (the fixture's bundle predates them)."""
    Pki(network.kh).write_bundle("kh-nacd")


def queued(folder: Path, bundle: Path) -> list[object]:
    outbox = Outbox(folder / "outbox.sqlite3", EnrolmentBundle.load(bundle).signer())
    return [open_envelope(q.data).decode_body() for q in outbox.range(1, None)]


def test_alert_from_flags_then_cancel(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = str(network.bundle("kh-nacd"))
    args = ["--bundle", bundle, "--data", str(tmp_path)]
    assert (
        main(
            [
                "alert",
                *args,
                "--scope",
                "country:kh",
                "--category",
                "drug_seizure",
                "--severity",
                "severe",
                "--headline",
                "Heroin at Poipet",
                "--headline-km",
                "ហេរ៉ូអ៊ីននៅប៉ោយប៉ែត",
                "--expires-in",
                "12h",
            ]
        )
        == 0
    )
    first = capsys.readouterr().out.split()[1]
    assert (
        main(
            [
                "alert",
                *args,
                "--scope",
                "country:kh",
                "--category",
                "drug_seizure",
                "--severity",
                "minor",
                "--headline",
                "Cancelled",
                "--cancel",
                first[:8],
            ]
        )
        == 0
    )
    alert, cancel = queued(tmp_path, network.bundle("kh-nacd"))
    assert isinstance(alert, Alert)
    assert isinstance(cancel, Alert)
    assert cancel.msg_type is MsgType.CANCEL
    assert cancel.references == (bytes.fromhex(first),)


def test_reference_alert_from_a_file(network: Network, tmp_path: Path) -> None:
    doc = json.loads(REFERENCE.read_text("utf-8"))
    doc["scope"] = "country:kh"  # an HQ alerts its own country
    # Sent now: the fixture's date lies before the test PKI's keys were issued.
    del doc["sent"], doc["expires"]
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(doc, ensure_ascii=False))
    assert (
        main(
            [
                "alert",
                "--bundle",
                str(network.bundle("kh-nacd")),
                "--data",
                str(tmp_path),
                "--file",
                str(path),
            ]
        )
        == 0
    )
    (alert,) = queued(tmp_path, network.bundle("kh-nacd"))
    assert isinstance(alert, Alert)
    assert alert.incident is not None
    assert alert.incident.items[0].quantity == 1.9


def test_incident_with_photo_and_bulletin(network: Network, tmp_path: Path) -> None:
    photo = tmp_path / "seizure.jpg"
    Image.new("RGB", (800, 600), (90, 120, 60)).save(photo, "JPEG")  # a photo without GPS
    bundle = str(network.bundle("kh-blo-bavet"))
    args = ["--bundle", bundle, "--data", str(tmp_path)]
    assert (
        main(
            [
                "incident",
                *args,
                "--crime",
                "drug_trafficking",
                "--lat",
                "11.0791",
                "--lon",
                "106.1846",
                "--accuracy",
                "10",
                "--crossing",
                "Bavet",
                "--item",
                "methamphetamine:1.9:kg:crystal",
                "--detained",
                "2",
                "--agency",
                "police",
                "--narrative-km",
                "រឹបអូសនៅបាវិត",
                "--photo",
                str(photo),
            ]
        )
        == 0
    )
    assert main(["bulletin", *args, "--to", "vn-blo-mocbai", "--headline", "Van at night"]) == 0
    incident, bulletin = queued(tmp_path, network.bundle("kh-blo-bavet"))
    assert isinstance(incident, Incident)
    # The photo itself travels (issue 10): preview + full image described and signed,
    # and without GPS it takes the incident's position, marked so.
    (attached,) = incident.attachments
    assert attached.media_type == "image/jpeg"
    assert attached.full is not None
    assert attached.preview is not None
    assert attached.position == incident.position
    assert attached.position_source is PositionSource.INCIDENT
    assert incident.items[0].form == "crystal"
    # Bulletins are sealed for their counterparts: the outbox holds only the sealed form.
    assert isinstance(bulletin, SealedBody)
    assert bulletin.nodes == ["vn-blo-mocbai"]


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        (["--item", "heroin:lots:kg"], "not a number"),
        (["--expires-in", "soon"], "duration"),
        (["--lat", "123.0", "--lon", "1.0"], "lat"),
    ],
)
def test_bad_options_name_the_field(
    network: Network,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    complaint: str,
) -> None:
    assert (
        main(
            [
                "incident",
                "--bundle",
                str(network.bundle("kh-blo-bavet")),
                "--data",
                str(tmp_path),
                "--crime",
                "other",
                "--lat",
                "11",
                "--lon",
                "106",
                *extra,
            ]
        )
        == 1
    )
    assert complaint in capsys.readouterr().err


def test_outbox_queues_what_has_a_topic_and_refuses_what_has_none(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The outbox itself refuses only what has no topic; authority is the receivers' (and
    # the ACL's) call, so a BLO's alert is queued there, then refused everywhere ...
    bundle = EnrolmentBundle.load(network.bundle("kh-blo-bavet"))
    box = Outbox(tmp_path / "box.sqlite3", bundle.signer())
    now = datetime.now(UTC).replace(microsecond=0)
    box.submit(ALERT, Scope.region("kh-vn-bavet"), issued=now, expires=now + timedelta(days=1))
    box.close()
    # ... while blo-pub checks those same rules first and queues nothing (issue 9.12).
    args = ["--bundle", str(network.bundle("kh-blo-bavet")), "--data", str(tmp_path)]
    alert = ["--category", "other", "--severity", "minor", "--headline", "x"]
    assert main(["alert", *args, "--scope", "region:kh-vn-bavet", *alert]) == 1
    assert "may not send alert" in capsys.readouterr().err
    assert main(["bulletin", *args, "--headline", "no recipients"]) == 1
    assert "not valid" in capsys.readouterr().err
    assert queued(tmp_path, network.bundle("kh-blo-bavet")) == []


def test_sequence_numbers_are_never_reused(network: Network, tmp_path: Path) -> None:
    signer = EnrolmentBundle.load(network.bundle("kh-nacd")).signer()
    now = datetime.now(UTC).replace(microsecond=0)
    boxes = [Outbox(tmp_path / "outbox.sqlite3", signer) for _ in range(3)]

    def submit(box: Outbox) -> None:
        for _ in range(30):
            box.submit(ALERT, Scope.country("kh"), issued=now, expires=now + timedelta(days=1))

    threads = [threading.Thread(target=submit, args=(b,)) for b in boxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [q.seq for q in boxes[0].range(1, None)]
    assert seqs == list(range(1, 91))
    headers = [open_envelope(q.data).header for q in boxes[0].range(1, None)]
    assert [h.seq for h in headers] == seqs
    assert all(h.kind is Kind.ALERT for h in headers)
    # A reopened outbox continues after the highest number ever handed out.
    again = Outbox(tmp_path / "outbox.sqlite3", signer)
    assert (
        again.submit(ALERT, Scope.country("kh"), issued=now, expires=now + timedelta(days=1)).seq
        == 91
    )


def test_send_now_reaches_a_running_tablet(
    broker: BrokerHandle, nodes: Nodes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``blo-pub alert --send``: HQ connects, sends, leaves at once; the tablet has it."""
    bavet = nodes.start("kh-blo-bavet")
    assert wait_for(bavet.connected.is_set, 10)
    time.sleep(1.0)  # its subscriptions go out after CONNACK
    bundle = str(broker.network.bundle("kh-nacd"))
    status = main(
        [
            "alert",
            "--bundle",
            bundle,
            "--data",
            str(tmp_path / "hq"),
            "--scope",
            "country:kh",
            "--category",
            "drug_seizure",
            "--severity",
            "severe",
            "--headline",
            "Sent at once",
            "--send",
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "sent" in out
    assert wait_for(lambda: bavet.inbox.count() >= 1, 20)
    assert [headline(s.body, Lang.EN) for s in bavet.inbox.messages()] == ["Sent at once"]


def test_submit_many_numbers_in_order_and_queues_all_or_none(
    network: Network, tmp_path: Path
) -> None:
    """A tablet's receipts for a batch of alerts: one transaction, consecutive numbers."""
    outbox = Outbox(
        tmp_path / "outbox.sqlite3", EnrolmentBundle.load(network.bundle("kh-blo-bavet")).signer()
    )
    now = datetime.now(UTC).replace(microsecond=0)
    later = now + timedelta(days=30)
    receipts = [
        (Receipt(of=bytes([i]) * 16, status=ReceiptStatus.DELIVERED, at=now), Scope.node("kh-nacd"))
        for i in range(3)
    ]
    assert [q.seq for q in outbox.submit_many(receipts, issued=now, expires=later)] == [1, 2, 3]
    # One item without a topic (a receipt to a country) and none of the batch is queued.
    bad = [receipts[0], (receipts[1][0], Scope.country("kh"))]
    with pytest.raises(OutboxError):
        outbox.submit_many(bad, issued=now, expires=later)
    assert outbox.counts() == (0, 3)
    assert outbox.submit(*receipts[2], issued=now, expires=later).seq == 4
    outbox.close()


def test_photos_are_kept_before_their_incident_is_queued(
    network: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the two writes must not leave an incident whose photos nobody
    holds: blo-pub stores the chunks first, under the id the incident will carry."""
    import sqlite3

    from publisher.outbox import Outbox

    photo = tmp_path / "seizure.jpg"
    Image.new("RGB", (640, 480), (90, 120, 60)).save(photo, "JPEG")

    class Crash(Exception):
        pass

    def crash(*args: object, **kwargs: object) -> None:
        raise Crash

    monkeypatch.setattr(Outbox, "submit", crash)
    args = ["incident", "--bundle", str(network.bundle("kh-blo-bavet")), "--data", str(tmp_path)]
    args += ["--crime", "drug_trafficking", "--lat", "11.0791", "--lon", "106.1846"]
    with pytest.raises(Crash):
        main([*args, "--photo", str(photo)])
    (blobs,) = tmp_path.rglob("blobs.sqlite3")
    with sqlite3.connect(blobs) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert chunks > 0, tables  # the photo's chunks were kept before the queueing failed
    monkeypatch.undo()
    assert main([*args, "--photo", str(photo)]) == 0  # and a retry queues it
    (incident,) = queued(tmp_path, network.bundle("kh-blo-bavet"))
    assert isinstance(incident, Incident)
