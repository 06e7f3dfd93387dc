"""The inbox's group commit: many accepted messages, one transaction, all or none."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from netsim import ALERT, Net

from schemas import Accepted, Scope, open_envelope, seal
from subscriber import Inbox


def _accepted(net: Net, count: int) -> list[Accepted]:
    receiver = net.receiver("kh-blo-bavet")
    out = []
    for _ in range(count):
        wire = net.send("kh-nacd", ALERT, Scope.country("kh"))
        result = receiver.receive("blo/country/kh", wire, net.now)
        assert isinstance(result, Accepted)
        out.append(result)
    return out


def test_add_many_commits_a_batch_and_says_which_were_new(tmp_path: Path) -> None:
    net = Net()
    batch = _accepted(net, 5)
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    assert inbox.add(batch[1], net.now)
    assert inbox.add_many(batch, net.now) == [True, False, True, True, True]
    assert inbox.count() == 5
    assert inbox.add_many([], net.now) == []
    # Refusals are counted in the same transaction as the batch.
    assert inbox.add_many(batch[:1], net.now, {"duplicate": 3, "bad_signature": 1}) == [False]
    inbox.count_rejection("duplicate")
    assert inbox.rejections() == {"bad_signature": 1, "duplicate": 4}
    # Held by a second connection too: the batch is committed, not just cached.
    again = Inbox(tmp_path / "inbox.sqlite3")
    assert again.count() == 5
    again.close()
    inbox.close()


def test_a_batch_that_fails_leaves_nothing_behind(tmp_path: Path) -> None:
    net = Net()
    batch = _accepted(net, 3)
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    # Another writer holds the file: the batch cannot be committed.
    blocker = sqlite3.connect(tmp_path / "inbox.sqlite3", timeout=0, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    inbox._db.execute("PRAGMA busy_timeout = 100")
    with pytest.raises(sqlite3.OperationalError):
        inbox.add_many(batch, net.now)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert inbox.count() == 0
    assert inbox.add_many(batch, net.now) == [True, True, True]
    inbox.close()


def _same_number_twice(net: Net) -> tuple[Accepted, Accepted]:
    """Two different envelopes (two message ids) that kh-nacd numbered #1."""
    out = []
    for _ in range(2):  # each seal draws a fresh random message id
        wire = net.send("kh-nacd", ALERT, Scope.country("kh"), seq=1)
        sealed = open_envelope(wire)
        out.append(Accepted(sealed.header, sealed.decode_body(), "blo/country/kh", wire, True))
    assert out[0].header.msg_id != out[1].header.msg_id
    return out[0], out[1]


def test_one_sender_number_is_held_once(tmp_path: Path) -> None:
    """(sender, epoch, seq) names one message: a second envelope under a held number is
    not stored (it would make the rebuilt replay window and the receipts disagree)."""
    net = Net()
    first, second = _same_number_twice(net)
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    assert inbox.add(first, net.now)
    assert not inbox.add(second, net.now)
    assert inbox.add_many([second], net.now) == [False]
    assert inbox.count() == 1
    assert inbox.sequences() == [("kh-nacd", 1, 1)]
    assert [s.msg_id for s in inbox.messages()] == [first.header.msg_id]
    # The same number from another outbox (epoch) of that sender is another message.
    wire = seal(
        net.signers["kh-nacd"],
        ALERT,
        seq=1,
        scope=Scope.country("kh"),
        issued=net.now,
        expires=net.now + timedelta(days=1),
        epoch=2,
    )
    sealed = open_envelope(wire)
    assert inbox.add(
        Accepted(sealed.header, sealed.decode_body(), "blo/country/kh", wire, True), net.now
    )
    assert inbox.sequences() == [("kh-nacd", 1, 1), ("kh-nacd", 2, 1)]
    inbox.close()
