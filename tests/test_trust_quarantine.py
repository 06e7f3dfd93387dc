"""The quarantine of unknown-key envelopes: bounded, counted, and retried (issue 9, item 9)."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from brokers import Network, embedded_broker, mosquitto_broker
from mqttc import TestClient
from netsim import ALERT
from nodekit import Nodes, wait_for
from rich.console import Console

from certs import EnrolmentBundle, Pki
from schemas import Scope, open_envelope, seal
from subscriber import InboxError
from subscriber.inbox import QUARANTINE_DROPPED, QUARANTINE_PER_SENDER, Inbox
from subscriber.views import status_table

NOW = datetime(2026, 6, 20, 9, 12, tzinfo=UTC)


def rendered(inbox: Inbox, warnings: list[str]) -> str:
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    table = status_table(
        {"node": "kh-blo-bavet", "warnings": warnings},
        0,
        0,
        inbox.count(),
        inbox.rejections(),
        len(inbox.quarantined()),
    )
    console.print(table)
    return console.export_text()


def test_one_attacker_fills_only_its_own_share(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    # 150 envelopes under unknown keys, all claiming one sender (the attack)
    for i in range(150):
        inbox.quarantine("blo/country/kh", f"forged {i}".encode(), "unknown key", NOW, "kh-nacd")
    kept = inbox.quarantined()
    assert len(kept) == QUARANTINE_PER_SENDER
    assert kept[0][2] == f"forged {150 - QUARANTINE_PER_SENDER}".encode()  # the oldest went
    assert inbox.rejections()[QUARANTINE_DROPPED] == 150 - QUARANTINE_PER_SENDER
    # Another sender's envelope still finds room.
    inbox.quarantine("blo/all", b"honest", "unknown key", NOW, "kh-rc")
    assert b"honest" in [data for _, _, data in inbox.quarantined()]
    # The same envelope delivered twice is kept once.
    inbox.quarantine("blo/all", b"honest", "unknown key", NOW, "kh-rc")
    assert [data for _, _, data in inbox.quarantined()].count(b"honest") == 1
    text = rendered(inbox, [])
    assert f"{150 - QUARANTINE_PER_SENDER} dropped from a full quarantine" in text
    assert "fresh" in text
    inbox.close()


def test_many_claimed_senders_are_bounded_in_total(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    dropped = 0
    for i in range(40):
        dropped += inbox.quarantine(
            "blo/all", f"x{i}".encode(), "unknown key", NOW, f"kh-n{i % 10}", per_sender=3, total=20
        )
    assert len(inbox.quarantined()) == 20
    assert dropped == 20
    assert inbox.rejections()[QUARANTINE_DROPPED] == 20
    # The newest 20 are kept.
    assert [d for _, _, d in inbox.quarantined()] == [f"x{i}".encode() for i in range(20, 40)]
    inbox.close()


def test_an_inbox_of_an_older_layout_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE quarantine (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
            "data BLOB NOT NULL, received INTEGER NOT NULL, detail TEXT NOT NULL)"
        )
    with pytest.raises(InboxError, match=r"inbox.sqlite3 was written by an older .* move the file"):
        Inbox(path)
    # Positive control: a new file opens, and opens again.
    Inbox(tmp_path / "new.sqlite3").close()
    Inbox(tmp_path / "new.sqlite3").close()


def test_status_shows_trust_stale(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    stale = "trust stale: keyset kh v3 expired at 2026-01-01T00:00:00+00:00"
    rows = [line.strip("│ ") for line in rendered(inbox, [stale]).splitlines()]
    assert any(row.startswith("trust") and row.endswith("trust stale") for row in rows), rows
    rows = [line.strip("│ ") for line in rendered(inbox, []).splitlines()]
    assert any(row.startswith("trust") and row.endswith("fresh") for row in rows), rows
    inbox.close()


@pytest.mark.parametrize("kind", ["amqtt", "mosquitto"])
def test_quarantined_message_is_stored_when_the_newer_keyset_arrives(
    network: Network, tmp_path: Path, kind: str
) -> None:
    """HQ signs with a key of keyset v(n+1) while Bavet holds v(n): quarantined, then
    accepted and stored when v(n+1) arrives. No archive runs, so nothing else can
    bring the alert back: only the retry can store it."""
    pki = Pki(network.kh)
    pki.rotate("kh-nacd", datetime.now(UTC))  # a new HQ key, in the next keyset only
    new_keyset = (network.kh / "trust" / "keyset.msg").read_bytes()
    signer = EnrolmentBundle.load(network.bundle("kh-nacd")).signer()
    now = datetime.now(UTC).replace(microsecond=0)
    alert = seal(
        signer, ALERT, seq=1, scope=Scope.country("kh"), issued=now, expires=now + timedelta(1)
    )
    start = embedded_broker if kind == "amqtt" else mosquitto_broker
    with start(network) as handle:  # type: ignore[operator]
        nodes = Nodes(network, handle.port, tmp_path)
        bavet = nodes.start("kh-blo-bavet")  # enrolled before the rotation
        hq = TestClient(network.bundle("kh-nacd"), handle.port, clean=True)
        archive = TestClient(network.bundle("kh-archive"), handle.port, clean=True)
        try:
            assert wait_for(bavet.connected.is_set, 10)
            time.sleep(1.0)  # its subscriptions go out after CONNACK
            old = bavet.receiver.trust.keyset("kh")
            assert old is not None
            assert hq.connect()
            assert hq.publish("blo/country/kh", alert)
            assert wait_for(lambda: len(bavet.inbox.quarantined()) == 1, 15), "not quarantined"
            assert bavet.inbox.count() == 0
            assert archive.connect()
            assert archive.publish("blo/trust/kh/keyset", new_keyset, retain=True)
            assert wait_for(lambda: bavet.inbox.count() == 1, 15), "not retried"
            # Released once stored (and its receipt queued): not kept for another retry.
            assert wait_for(lambda: bavet.inbox.quarantined() == [], 5), "not released"
            held = bavet.receiver.trust.keyset("kh")
            assert held is not None
            assert held.version == open_envelope(new_keyset).header.seq > old.version
        finally:
            hq.close()
            archive.close()
            nodes.stop_all()
