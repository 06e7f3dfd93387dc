"""Issue 9, item 3: a receipt is never lost between the inbox and the outbox.

The inbox and the outbox are two files; a crash between storing an alert and
queueing its ``delivered`` receipt (or between reading it and queueing the
``read`` receipt) must delay the receipt, never lose it, and never queue it twice.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from brokers import Network, free_port
from netsim import ALERT, Net

from certs import EnrolmentBundle
from publisher import Outbox
from schemas import Accepted, Kind, Receipt, ReceiptStatus, Scope, open_envelope
from subscriber import Inbox, NodeClient, receipt_id, settle


class Crash(Exception):
    """Stands for the process dying at this point."""


def _alert(net: Net) -> Accepted:
    wire = net.send("kh-nacd", ALERT, Scope.country("kh"))
    result = net.receiver("kh-blo-bavet").receive("blo/country/kh", wire, net.now)
    assert isinstance(result, Accepted)
    return result


def _receipts(outbox: Outbox) -> list[tuple[bytes, ReceiptStatus]]:
    out = []
    for queued in outbox.range(1, None):
        if queued.kind is Kind.RECEIPT:
            body = open_envelope(queued.data).decode_body()
            assert isinstance(body, Receipt)
            out.append((body.of, body.status))
    return out


def test_receipt_owed_by_a_crash_before_the_outbox_is_queued_at_restart(tmp_path: Path) -> None:
    net = Net()
    alert = _alert(net)
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    assert inbox.add_many([alert], net.now, owe_receipts=True) == [True]
    inbox.close()  # crash: the outbox was never written
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    outbox = Outbox(tmp_path / "outbox.sqlite3", net.signers["kh-blo-bavet"])
    assert settle(inbox, outbox, "kh-blo-bavet", net.now) == 1
    assert _receipts(outbox) == [(alert.header.msg_id, ReceiptStatus.DELIVERED)]
    assert inbox.owed() == []
    assert settle(inbox, outbox, "kh-blo-bavet", net.now) == 0  # nothing more owed


def test_crash_after_the_outbox_before_the_inbox_queues_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = Net()
    alert = _alert(net)
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    outbox = Outbox(tmp_path / "outbox.sqlite3", net.signers["kh-blo-bavet"])
    inbox.add_many([alert], net.now, owe_receipts=True)

    def die(*_: object) -> None:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(inbox, "settle", die)
        with pytest.raises(Crash):
            settle(inbox, outbox, "kh-blo-bavet", net.now)
    assert len(_receipts(outbox)) == 1  # queued,
    assert inbox.owed()  # and still marked owed
    # At restart the receipt is found by its derived id, not queued again.
    assert settle(inbox, outbox, "kh-blo-bavet", net.now + timedelta(minutes=1)) == 0
    assert _receipts(outbox) == [(alert.header.msg_id, ReceiptStatus.DELIVERED)]
    assert inbox.owed() == []


def test_reading_owes_a_read_receipt_in_the_same_transaction(tmp_path: Path) -> None:
    net = Net()
    alert = _alert(net)
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    outbox = Outbox(tmp_path / "outbox.sqlite3", net.signers["kh-blo-bavet"])
    inbox.add_many([alert], net.now, owe_receipts=True)
    assert inbox.mark_read(alert.header.msg_id, net.now, owe_receipt=True)
    assert inbox.owed() == [(alert.header.msg_id, "kh-nacd", 3)]  # delivered and read owed
    assert settle(inbox, outbox, "kh-blo-bavet", net.now) == 2
    statuses = sorted(status.value for _, status in _receipts(outbox))
    assert statuses == ["delivered", "read"]
    assert not inbox.mark_read(alert.header.msg_id, net.now, owe_receipt=True)
    assert settle(inbox, outbox, "kh-blo-bavet", net.now) == 0
    # Derived ids: the same node's same receipt always has the same id, others differ.
    ids = {q.msg_id for q in outbox.range(1, None)}
    assert receipt_id(alert.header.msg_id, ReceiptStatus.READ, "kh-blo-bavet") in ids
    assert receipt_id(alert.header.msg_id, ReceiptStatus.READ, "kh-blo-poipet") not in ids


def test_no_receipts_owed_unless_asked(tmp_path: Path) -> None:
    net = Net()
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    inbox.add_many([_alert(net)], net.now)
    assert inbox.owed() == []


def test_client_settles_what_a_crash_left_owed_when_it_starts(tmp_path: Path) -> None:
    network = Network(tmp_path)
    bundle = EnrolmentBundle.load(network.bundle("kh-blo-bavet"))
    folder = tmp_path / "bavet"
    net = Net()
    inbox = Inbox(folder / "inbox.sqlite3")
    inbox.add_many([_alert(net)], net.now, owe_receipts=True)
    inbox.close()  # the crash: no receipt was queued
    # No broker listens there: the receipt must be queued before any link exists.
    client = NodeClient(bundle, "127.0.0.1", free_port(), folder)
    client.start()
    try:
        assert client.outbox.counts() == (0, 1)
        assert client.inbox.owed() == []
    finally:
        client.stop()
