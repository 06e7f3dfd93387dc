"""The outbox's sequence numbers: one file, any number of writers, never a number twice.

``blo-pub`` and ``blo-sub run`` open the same outbox file, each with its own
``Outbox``; the next number must come from the file inside the writing
transaction, never from what one instance remembers.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from netsim import ALERT, Net

from publisher import Outbox
from schemas import Scope, open_envelope
from subscriber import Inbox


def _submit(box: Outbox, net: Net) -> int:
    queued = box.submit(
        ALERT, Scope.country("kh"), issued=net.now, expires=net.now + timedelta(days=1)
    )
    return queued.seq


def test_two_writers_interleaved_never_reuse_a_number(tmp_path: Path) -> None:
    net = Net()
    signer = net.signers["kh-nacd"]
    hq_client = Outbox(tmp_path / "outbox.sqlite3", signer)  # blo-sub run
    blo_pub = Outbox(tmp_path / "outbox.sqlite3", signer)  # blo-pub, beside it
    order = [hq_client, blo_pub, hq_client, hq_client, blo_pub, hq_client]
    assert [_submit(box, net) for box in order] == [1, 2, 3, 4, 5, 6]
    # Both see all six, each sealed with the number it is filed under.
    for box in (hq_client, blo_pub):
        held = box.range(1, None)
        assert [q.seq for q in held] == [1, 2, 3, 4, 5, 6]
        assert [open_envelope(q.data).header.seq for q in held] == [1, 2, 3, 4, 5, 6]
    # A batch from one writer after the other's submit continues the same numbering.
    batch = hq_client.submit_many(
        [(ALERT, Scope.country("kh"))] * 3, issued=net.now, expires=net.now + timedelta(days=1)
    )
    assert [q.seq for q in batch] == [7, 8, 9]
    assert _submit(blo_pub, net) == 10
    hq_client.close()
    blo_pub.close()


def test_node_files_are_written_with_full_sync_where_they_are_the_only_copy(
    tmp_path: Path,
) -> None:
    """The outbox survives a power cut (WAL + synchronous=FULL); the inbox, a copy of
    the archive, survives a killed process (WAL + NORMAL) and is refilled at start
    after a cut (tests/test_power_loss.py)."""
    net = Net()
    outbox = Outbox(tmp_path / "outbox.sqlite3", net.signers["kh-nacd"])
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    for db, level in ((outbox._db, 2), (inbox._db, 1)):  # 2 = FULL, 1 = NORMAL
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == level
    outbox.close()
    inbox.close()
