"""A power cut takes the inbox's last commits (``synchronous=NORMAL``); the next start
asks the archive for them, so nothing the tablet had acknowledged stays lost."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from netsim import ALERT, NOW
from nodekit import Nodes, wait_for

from certs import EnrolmentBundle
from schemas import Kind, Scope
from subscriber import Inbox, NodeClient


def _alerts(inbox: Inbox) -> set[bytes]:
    return {s.msg_id for s in inbox.messages((Kind.ALERT,))}


def test_inbox_commits_without_fsync_and_the_outbox_with(nodes: Nodes) -> None:
    bavet = nodes.start("kh-blo-bavet")
    # The pragma is per connection: ask the client's own.
    assert bavet.inbox._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert bavet.outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def _tablet(nodes: Nodes) -> NodeClient:
    """Bavet with its periodic catch-up an hour away: only the one at start runs."""
    return NodeClient(
        EnrolmentBundle.load(nodes.network.bundle("kh-blo-bavet")),
        "127.0.0.1",
        nodes.port,
        nodes.folder("kh-blo-bavet"),
        gap_grace=timedelta(hours=1),
        tick=0.2,
        catch_up_every=3600,
    )


def test_a_lost_tail_comes_back_from_the_archive_at_start(nodes: Nodes) -> None:
    """The first run asks the archive only at its start, before any alert exists: a
    periodic catch-up while alerts were still arriving would have the archive replay
    them, and it holds back the same envelopes to the same node for REPLAY_HOLD
    (10 s), so the restart below, seconds later, would get them only at its next
    periodic catch-up (CI saw that on amqtt; a real power cut and reboot take longer)."""
    hq = nodes.start("kh-nacd")
    bavet = _tablet(nodes)
    bavet.start()
    assert hq.connected.wait(10)
    assert bavet.connected.wait(10)
    sent = [hq.send(ALERT, Scope.country("kh")) for _ in range(3)]
    assert wait_for(lambda: _alerts(bavet.inbox) == set(sent), 30), len(_alerts(bavet.inbox))
    archive = nodes.archive  # type: ignore[attr-defined]
    in_archive = lambda: sum(1 for s, _, _ in archive.store.sequences() if s == "kh-nacd")  # noqa: E731
    assert wait_for(lambda: in_archive() >= 3, 30), in_archive()
    bavet.stop()
    nodes.stop("kh-nacd")
    # The cut: the last two commits never reached the disk. The broker had their
    # acks, so it sends nothing again, and no later alert shows a gap.
    path = nodes.folder("kh-blo-bavet") / "inbox.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM messages WHERE sender = 'kh-nacd' AND seq > 1")
    lost = Inbox(path)
    try:
        assert _alerts(lost) == {sent[0]}  # control: the tail is really gone
    finally:
        lost.close()
    # Periodic catch-up an hour away: only the one at start can bring them back.
    again = _tablet(nodes)
    again.start()
    try:
        assert again.connected.wait(10)
        assert wait_for(lambda: _alerts(again.inbox) == set(sent), 30), len(_alerts(again.inbox))
    finally:
        again.stop()


def test_what_exists_only_in_the_inbox_is_fsynced(tmp_path: Path) -> None:
    """A reading and the trust kept are committed with synchronous=FULL; received
    messages (copies of the archive's) are not."""
    from nodekit import stored_alert

    msg_id = stored_alert(tmp_path)
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    seen: list[str] = []
    inbox._db.set_trace_callback(seen.append)
    try:

        def levels() -> list[str]:
            """The synchronous level in force at each COMMIT since the last call."""
            out, level = [], "NORMAL"
            for sql in seen:
                if sql.startswith("PRAGMA synchronous="):
                    level = sql.split("=")[1]
                elif sql == "COMMIT":
                    out.append(level)
            seen.clear()
            return out

        assert inbox.mark_read(msg_id, NOW, owe_receipt=True)
        assert levels() == ["FULL"]
        inbox.save_trust(Kind.KEYSET, "kh", 9, b"keyset")
        assert levels() == ["FULL"]
        inbox.count_rejection("bad_signature")  # control: an ordinary write is not
        assert levels() == ["NORMAL"]
        assert inbox._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # back to NORMAL
    finally:
        inbox.close()
