"""Sealed messages on a real broker with real nodes: nobody in the middle reads them.

A tap with the broker operator's reach (an archive-role identity subscribed to
the bulletin and incident topics) captures the traffic; the archive's SQLite
files, the broker's files and log, and every node's folder are searched for a
marker that only the sealed messages carry. A positive control in the same run
(an incident sent in clear with its own marker) must be found in the capture
and the archive, and the sealed marker must be found once its recipient opens it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from brokers import Network
from mqttc import TestClient
from nodekit import Nodes, wait_for

from certs import EnrolmentBundle, Pki
from schemas import (
    Accepted,
    Bulletin,
    BulletinText,
    Category,
    Crime,
    Incident,
    Kind,
    Lang,
    Position,
    Receiver,
    ReplayRequest,
    Role,
    Scope,
    encode_request,
)
from schemas.recipients import seal_recipients
from subscriber.cli import main as blo_sub

SECRET = "SEALED-7c1e-NOT-FOR-THE-MIDDLE"
CONTROL = "CLEAR-CONTROL-5b2d"
BAVET, MOCBAI, HQ = "kh-blo-bavet", "vn-blo-mocbai", "kh-nacd"


@pytest.fixture
def network(tmp_path: Path) -> Network:
    """The test network plus ``kh-tap``: an archive-role identity, the operator's eyes."""
    net = Network(tmp_path)
    Pki(net.kh).issue("kh-tap", Role.ARCHIVE, datetime.now(UTC))
    return net


def _incident(text: str) -> Incident:
    return Incident(
        crime=Crime.DRUG_TRAFFICKING,
        occurred=datetime.now(UTC).replace(microsecond=0),
        position=Position(lat=11.0791, lon=106.1846),
        narrative={Lang.EN: text},
    )


def _files_holding(root: Path, marker: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and marker in p.read_bytes()
    )


def test_nobody_in_the_middle_reads_a_sealed_message(
    nodes: Nodes,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    net = nodes.network
    tap = TestClient(net.bundle("kh-tap"), nodes.port)
    assert tap.connect()
    assert tap.subscribe("blo/bulletin/+/+")
    assert tap.subscribe("blo/incident/+/+")
    bavet, mocbai, hq = nodes.start(BAVET), nodes.start(MOCBAI), nodes.start(HQ)
    assert all(c.connected.wait(20) for c in (bavet, mocbai, hq))

    def opened(client: object, msg_id: bytes) -> str:
        found = [s for s in client.inbox.messages() if s.msg_id == msg_id]  # type: ignore[attr-defined]
        return found[0].body.model_dump_json() if found else ""

    # The positive control goes first, in clear, with a sealed greeting to Moc Bai, until
    # both hold one: amqtt handles a new session's SUBSCRIBEs one by one, and a message
    # published before the last one is missed (a later one from the same sender shows
    # the gap, which the archive fills).
    to_mocbai = Scope.parse(f"bulletin:{MOCBAI}")
    hello = Bulletin(category=Category.OTHER, text={Lang.EN: BulletinText(headline="hello")})
    for _ in range(6):
        control_id = bavet.send(_incident(CONTROL), Scope.country("kh"), days=1)
        hello_id = bavet.send(hello, to_mocbai, days=1)
        both = (hq, control_id), (mocbai, hello_id)
        if wait_for(lambda b=both: all(opened(c, m) for c, m in b), 5):  # type: ignore[misc]
            break
    assert CONTROL in opened(hq, control_id)
    bulletin = Bulletin(
        category=Category.DRUG_SEIZURE,
        text={Lang.EN: BulletinText(headline=f"White van {SECRET}", body=f"plates {SECRET}")},
    )
    bulletin_id = bavet.send(bulletin, to_mocbai, days=1)
    secret_id = bavet.send(_incident(SECRET), Scope.country("kh"), days=1, confidential=True)
    # Re-addressed: sealed also for a third office (Poipet) that the scope does not name.
    now = datetime.now(UTC).replace(microsecond=0)
    trust = bavet.receiver.trust
    third = seal_recipients(Kind.BULLETIN, Scope.parse("bulletin:kh-blo-poipet"), BAVET, trust, now)
    assert not isinstance(third, str)
    mine = seal_recipients(Kind.BULLETIN, to_mocbai, BAVET, trust, now)
    assert not isinstance(mine, str)
    readdressed = bavet.outbox.submit(
        bulletin, to_mocbai, issued=now, expires=now + timedelta(days=1), seal_for=[*mine, *third]
    )

    # Each recipient opens its own: the marker is there once unsealed (positive control).
    assert wait_for(lambda: SECRET in opened(mocbai, bulletin_id), 45)
    assert wait_for(lambda: SECRET in opened(hq, secret_id), 45)
    # The re-addressed bulletin is refused by its counterpart and by the archive.
    assert wait_for(lambda: mocbai.inbox.rejections().get("bad_recipients", 0) >= 1, 30)
    archive = nodes.archive  # type: ignore[attr-defined]
    assert wait_for(lambda: archive.stats["stored"] >= 3 and archive.stats["rejected"] >= 1, 30)
    assert not [s for s in mocbai.inbox.messages() if s.msg_id == readdressed.msg_id]

    # The operator's capture: the sealed messages went by, unreadable; the control did not.
    captured = tap.collect(quiet=1.0, total=10)
    tap.close()
    payloads = [payload for _, payload, _ in captured]
    assert any(bulletin_id in p for p in payloads)  # the sealed bulletin was captured
    assert not [p for p in payloads if SECRET.encode() in p]
    assert [p for p in payloads if CONTROL.encode() in p]
    # Everything on disk: the archive's database, the broker's files, every node's folder.
    assert _files_holding(tmp_path, CONTROL.encode()), "positive control: the archive holds it"
    assert any("archive.sqlite3" in f for f in _files_holding(tmp_path, CONTROL.encode()))
    assert _files_holding(tmp_path, SECRET.encode()) == []
    # Every log line of this process (brokers, archive, clients) and Mosquitto's log.
    assert "bad_recipients" in caplog.text  # the refusal was logged: the log was captured
    assert SECRET not in caplog.text

    # blo-sub show: Moc Bai reads its bulletin; a node it is not sealed for is told why.
    nodes.stop(MOCBAI)
    folder = nodes.folder(MOCBAI)
    capsys.readouterr()
    args = ["show", "--data", str(folder), bulletin_id.hex()[:10]]
    assert blo_sub([*args[:1], "--bundle", str(net.bundle(MOCBAI)), *args[1:]]) == 0
    shown = capsys.readouterr().out
    assert SECRET in shown
    assert f"for {MOCBAI}" in shown
    poipet = ["--bundle", str(net.bundle("kh-blo-poipet")), "--json"]
    assert blo_sub([*args[:1], *poipet, *args[1:]]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["readable"] is False
    assert doc["sealed_for"] == [MOCBAI]
    assert "kh-blo-poipet is not a recipient" in doc["reason"]
    assert SECRET not in json.dumps(doc)

    # The archive replays what it holds sealed, byte for byte, to the recipient only.
    def replay(node: str) -> list[bytes]:
        client = TestClient(net.bundle(node), nodes.port, clean=True)
        try:
            assert client.connect()
            assert client.subscribe(f"blo/replay/{node}")
            request = encode_request(ReplayRequest(sender=BAVET, first=1))
            assert client.publish(f"blo/request/{node}", request)
            return [p for t, p, _ in client.collect(quiet=1.5) if t == f"blo/replay/{node}"]
        finally:
            client.close()

    again = [w for w in replay(MOCBAI) if bulletin_id in w]
    assert len(again) == 1  # held once, whatever the redeliveries
    mocbai_bundle = EnrolmentBundle.load(net.bundle(MOCBAI))
    reader = Receiver(mocbai_bundle.trust_store(now), me=MOCBAI, opener=mocbai_bundle.opener())
    result = reader.receive(f"blo/replay/{MOCBAI}", again[0], datetime.now(UTC))
    assert isinstance(result, Accepted)
    assert SECRET in result.body.model_dump_json()
    assert not [w for w in replay("kh-blo-poipet") if bulletin_id in w]
