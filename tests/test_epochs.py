"""Issue 9, item 1: two outboxes of one identity never collide.

A reinstalled tablet, a second data folder or a replaced key starts a new
outbox at #1. Its messages must reach every receiver and the archive, not be
dropped as duplicates of what the first outbox sent; and two clients on one
data folder must not both run.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from netsim import ALERT, Net
from nodekit import Nodes, wait_for

from certs import EnrolmentBundle
from publisher import Outbox
from schemas import (
    Accepted,
    Crime,
    Held,
    Incident,
    Kind,
    Position,
    Reason,
    Rejected,
    ReplayRequest,
    ReplayWindow,
    Scope,
    SeqVerdict,
    catch_up_request,
    gap_requests,
    open_envelope,
    seal,
)
from subscriber import FolderInUse, NodeClient

T0 = datetime(2026, 6, 20, 9, 0, tzinfo=UTC)


def _wire(net: Net, epoch: int, seq: int) -> bytes:
    return seal(
        net.signers["kh-nacd"],
        ALERT,
        seq=seq,
        scope=Scope.country("kh"),
        issued=net.now,
        expires=net.now + timedelta(days=7),
        epoch=epoch,
    )


def test_receiver_keeps_numbers_per_epoch() -> None:
    net = Net()
    receiver = net.receiver("kh-blo-bavet")
    first = [_wire(net, 11, seq) for seq in (1, 2, 3)]
    second = [_wire(net, 22, seq) for seq in (1, 2, 3)]
    for wire in first + second:
        assert receiver.receive("blo/country/kh", wire, net.now).ok
    # The very same message again is a duplicate; the other outbox's #2 was not.
    again = receiver.receive("blo/country/kh", first[1], net.now)
    assert isinstance(again, Rejected)
    assert again.reason is Reason.DUPLICATE
    assert "outbox b" in again.detail  # names the epoch (hex) it counted in
    # A number held in that epoch is held whatever the message id (a re-sealed copy).
    copy = receiver.receive("blo/country/kh", _wire(net, 11, 2), net.now)
    assert isinstance(copy, Rejected)
    assert copy.reason is Reason.DUPLICATE
    assert receiver.window.streams("kh-nacd") == {("kh-nacd", 11): 3, ("kh-nacd", 22): 3}


def test_window_gaps_and_tops_are_per_epoch() -> None:
    window = ReplayWindow()
    window.commit("kh-nacd", 5, T0, epoch=1)
    window.commit("kh-nacd", 2, T0, epoch=2)
    assert window.check("kh-nacd", 5, epoch=2) is SeqVerdict.NEW
    assert window.check("kh-nacd", 5, epoch=1) is SeqVerdict.DUPLICATE
    spans = gap_requests(window.gaps())
    assert spans == {("kh-nacd", 1): (1, 4), ("kh-nacd", 2): (1, 1)}
    assert window.top("kh-nacd", epoch=1) == 5
    assert window.top("kh-nacd", epoch=3) == 0


def test_epochs_per_sender_are_bounded() -> None:
    window = ReplayWindow(max_epochs=3)
    for epoch in range(1, 10):
        window.commit("kh-nacd", 1, T0, epoch=epoch)
    window.commit("kh-blo-bavet", 1, T0, epoch=1)
    assert sorted(e for _, e in window.streams("kh-nacd")) == [7, 8, 9]
    assert list(window.streams("kh-blo-bavet")) == [("kh-blo-bavet", 1)]
    # Using a stream keeps it: the least recently used one goes first.
    window.commit("kh-nacd", 2, T0, epoch=7)
    window.commit("kh-nacd", 1, T0, epoch=10)
    assert sorted(e for _, e in window.streams("kh-nacd")) == [7, 9, 10]


def test_catch_up_asks_for_unknown_epochs_from_the_start() -> None:
    window = ReplayWindow()
    window.commit("kh-nacd", 4, T0, epoch=9)
    request = catch_up_request("kh-nacd", window)
    assert request.held == (Held(epoch=9, top=4),)
    assert request.start(9) == 5  # after what is held
    assert request.start(123) == 1  # an outbox never heard of: all of it
    ranged = ReplayRequest(sender="kh-nacd", first=3, last=7, epoch=9)
    assert (ranged.start(9), ranged.start(8)) == (3, None)
    with pytest.raises(ValueError, match="names its epoch"):
        ReplayRequest(sender="kh-nacd", first=1, last=4)
    with pytest.raises(ValueError, match="no held"):
        ReplayRequest(sender="kh-nacd", first=1, epoch=9, held=(Held(epoch=9, top=1),))


def test_each_outbox_file_draws_its_own_epoch(tmp_path: Path) -> None:
    net = Net()
    signer = net.signers["kh-blo-bavet"]
    one = Outbox(tmp_path / "a" / "outbox.sqlite3", signer)
    same = Outbox(tmp_path / "a" / "outbox.sqlite3", signer)
    other = Outbox(tmp_path / "b" / "outbox.sqlite3", signer)
    assert one.epoch == same.epoch  # one file, one epoch, in every process
    assert one.epoch != other.epoch
    incident = Incident(
        crime=Crime.DRUG_TRAFFICKING,
        occurred=T0,
        position=Position(lat=11.0791, lon=106.1846),
    )
    queued = one.submit(incident, Scope.country("kh"), issued=T0, expires=T0 + timedelta(days=1))
    header = open_envelope(queued.data).header
    assert (header.epoch, header.seq) == (one.epoch, 1)
    for outbox in (one, same, other):
        outbox.close()


def _incident(n: int) -> Incident:
    return Incident(
        crime=Crime.DRUG_TRAFFICKING,
        occurred=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1),
        position=Position(lat=11.0791, lon=106.1846),
        crossing=f"Bavet {n}",
    )


def test_reinstalled_tablet_numbers_from_one_and_nothing_is_dropped(
    nodes: Nodes, tmp_path: Path
) -> None:
    hq = nodes.start("kh-nacd")
    bavet = nodes.start("kh-blo-bavet")
    assert hq.connected.wait(10)
    assert bavet.connected.wait(10)
    old = [bavet.send(_incident(n), Scope.country("kh")) for n in range(3)]
    assert wait_for(lambda: len(hq.inbox.messages((Kind.INCIDENT,))) == 3, 30)
    old_epoch = bavet.outbox.epoch
    nodes.stop("kh-blo-bavet")
    # The tablet is reinstalled: same identity, a new empty data folder.
    fresh = NodeClient(
        EnrolmentBundle.load(nodes.network.bundle("kh-blo-bavet")),
        "127.0.0.1",
        nodes.port,
        tmp_path / "reinstalled",
        gap_grace=timedelta(seconds=1),
        tick=0.2,
    )
    fresh.start()
    try:
        assert fresh.outbox.epoch != old_epoch
        new = [fresh.send(_incident(n), Scope.country("kh")) for n in range(3, 6)]
        assert [open_envelope(q.data).header.seq for q in fresh.outbox.range(1, None)] == [1, 2, 3]
        want = set(old + new)
        held = lambda: {s.msg_id for s in hq.inbox.messages((Kind.INCIDENT,))}  # noqa: E731
        assert wait_for(lambda: held() == want, 60), (len(held()), hq.inbox.rejections())
        assert "duplicate" not in hq.inbox.rejections()
        archive = nodes.archive  # type: ignore[attr-defined]
        in_archive = lambda: sum(  # noqa: E731
            1 for sender, _, _ in archive.store.sequences() if sender == "kh-blo-bavet"
        )
        assert wait_for(lambda: in_archive() == 6, 60), in_archive()
    finally:
        fresh.stop()


def test_second_client_on_a_data_folder_refused_at_once(nodes: Nodes) -> None:
    first = nodes.start("kh-blo-bavet")
    assert first.connected.wait(10)
    bundle = EnrolmentBundle.load(nodes.network.bundle("kh-blo-bavet"))
    second = NodeClient(bundle, "127.0.0.1", nodes.port, nodes.folder("kh-blo-bavet"))
    with pytest.raises(FolderInUse, match=r"in use by blo-sub run for kh-blo-bavet \(pid \d+\)"):
        second.start()
    # The command line says so and exits non-zero, at once (not after a timeout).
    command = [
        str(Path(sys.executable).parent / "blo-sub"),
        "run",
        "--bundle",
        str(nodes.network.bundle("kh-blo-bavet")),
        "--data",
        str(nodes.folder("kh-blo-bavet")),
        "-p",
        str(nodes.port),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "is in use by blo-sub run for kh-blo-bavet" in done.stderr
    # Positive control: once the first one stops, the folder can be used again.
    nodes.stop("kh-blo-bavet")
    again = nodes.start("kh-blo-bavet")
    assert again.connected.wait(10)


def test_accepted_result_names_the_epoch() -> None:
    net = Net()
    result = net.receiver("kh-blo-bavet").receive("blo/country/kh", _wire(net, 77, 1), net.now)
    assert isinstance(result, Accepted)
    assert result.header.epoch == 77


def test_hq_catches_up_on_an_office_it_never_heard_from(nodes: Nodes) -> None:
    """Bavet files an incident before HQ's node ever subscribed (a new HQ install, or
    amqtt taking a new session's subscriptions one at a time): no broker queued it for
    HQ, only the archive holds it. HQ's catch-up must ask about every office that
    reports to it, not only senders it has heard from."""
    bavet = nodes.start("kh-blo-bavet")
    assert bavet.connected.wait(10)
    sent = bavet.send(_incident(0), Scope.country("kh"))
    archive = nodes.archive  # type: ignore[attr-defined]
    stored = lambda: any(s == "kh-blo-bavet" for s, _, _ in archive.store.sequences())  # noqa: E731
    assert wait_for(stored, 30), "the archive never stored Bavet's incident"
    hq = nodes.start("kh-nacd")  # a first start: no session at the broker until now
    assert hq.connected.wait(10)
    held = lambda: [m.msg_id for m in hq.inbox.messages((Kind.INCIDENT,))]  # noqa: E731
    assert wait_for(lambda: held() == [sent], 30), held()


def test_catch_up_senders_are_those_who_may_address_the_node(net: object) -> None:
    """The pure rule behind the test above, role by role."""
    from schemas import catch_up_senders

    entries = list(net.entries.values())  # type: ignore[attr-defined]
    by = {e.node: e for e in entries}
    hq = catch_up_senders(by["kh-nacd"], entries)
    assert {"kh-blo-bavet", "kh-blo-dongkralor"} <= hq  # its offices report to it
    assert "vn-blo-mocbai" in hq  # receipts for an alert that crossed the border
    assert "kh-nacd" not in hq
    bavet = catch_up_senders(by["kh-blo-bavet"], entries)
    assert {"kh-nacd", "vn-blo-mocbai", "th-unodc-rbm"} <= bavet  # HQ, counterpart, coordinator
    assert "kh-blo-dongkralor" not in bavet  # offices do not write to each other
    assert catch_up_senders(None, entries) == set()


def test_catch_up_asks_a_counterpart_that_names_the_node_on_its_side_only(net: object) -> None:
    """Each country's PKI names counterparts on its own: Moc Bai may write to Bavet
    because Viet Nam's keyset says so, whatever Cambodia's says."""
    from schemas import catch_up_senders

    entries = list(net.entries.values())  # type: ignore[attr-defined]
    by = {e.node: e for e in entries}
    assert "kh-blo-bavet" in by["vn-blo-mocbai"].counterparts
    alone = by["kh-blo-bavet"].model_copy(update={"counterparts": ()})
    others = [e for e in entries if e.node != "kh-blo-bavet"] + [alone]
    assert "vn-blo-mocbai" in catch_up_senders(alone, others)
    # Control: with neither side naming the other, Moc Bai is not asked.
    mocbai = by["vn-blo-mocbai"].model_copy(update={"counterparts": ()})
    neither = [e for e in others if e.node != "vn-blo-mocbai"] + [mocbai]
    assert "vn-blo-mocbai" not in catch_up_senders(alone, neither)
