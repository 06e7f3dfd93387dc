"""The node's running client: one MQTT link, the receiver core, the inbox and the outbox.

The same client runs on a BLO tablet and at an HQ (``blo-sub run``):

* a persistent session (client id = node id, clean session off) over mTLS,
  subscribed to exactly what the node may read (schemas.access);
* every message goes through the sans-I/O receiver core; accepted ones are
  committed to the inbox *before* the MQTT acknowledgement (paho manual ack);
  refused ones are counted and logged; those signed by a key not yet known are
  quarantined and re-checked when a newer keyset arrives;
* an alert that is stored is answered with a ``delivered`` receipt, queued in
  the outbox like everything else the node sends;
* gaps in a sender's sequence that do not fill within a grace period, and a
  reconnect on which the broker had lost the session, become replay requests
  to the archive; the archive's own resend requests are answered from the outbox.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from certs import EnrolmentBundle
from publisher import Outbox
from publisher.sealing import kind_of, seal_for
from schemas import (
    Accepted,
    BloError,
    Kind,
    Reason,
    Receiver,
    Rejected,
    ReplayRequest,
    ReplayWindow,
    Role,
    Scope,
    WireModel,
    catch_up_request,
    catch_up_senders,
    country_of,
    decode_request,
    encode_request,
    gap_requests,
    open_envelope,
    request_topic,
    resend_topic,
    rules_for,
    trust_topic,
)
from schemas.access import is_trust_topic
from schemas.receiver import VERIFY_CHUNK
from schemas.trust import TrustRequest, encode_trust_request
from subscriber.inbox import Inbox
from subscriber.link import Incoming, guarded, keep_tls_session, node_client, relink, watch_link
from subscriber.lock import FolderLock
from subscriber.photos import photo_link
from subscriber.receipts import RECEIPT_DAYS, settle

__all__ = ["NodeClient"]

log = logging.getLogger("blo.sub")
COMMIT_TRIES = 3  # a locked or busy inbox often clears within a second
#: The trust request goes at a connect, but not more often than this: on a link cut
#: every few seconds each answer (every pinned country's keyset and list) cost more
#: bytes than the alerts. After a longer outage it goes at the first connect.
TRUST_ASK_EVERY = 300.0
#: While a link stays up the periodic catch-up's period doubles, up to this many times
#: ``catch_up_every``; every connect starts it again at ``catch_up_every``. A lost tail
#: comes from a cut or a broker that died, and both end the link; an idle tablet on a
#: steady link asked every minute for nothing (most of its bytes a day).
CATCH_UP_BACKOFF = 8


class NodeClient:
    """A node's link to the network; ``start()``, then it keeps itself connected."""

    def __init__(
        self,
        bundle: EnrolmentBundle,
        host: str,
        port: int,
        data: Path,
        *,
        gap_grace: timedelta = timedelta(seconds=10),
        tick: float = 0.5,
        catch_up_every: float = 60.0,
        receipts: bool = True,
        on_stored: Callable[[Accepted], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``on_stored`` is called (on the committer thread) with each message just committed
        to the inbox, e.g. to tell the officer; ``receipts=False`` sends none."""
        self.bundle = bundle
        self.receipts = receipts
        self.on_stored = on_stored
        self.me = bundle.node
        self.host, self.port = host, port
        self.clock = clock
        self.gap_grace = gap_grace
        self.tick = tick
        self.catch_up_every = catch_up_every
        self._caught_up = time.monotonic()  # the first is asked at the first connect
        self._catch_up_period = catch_up_every
        self._catch_ups_on_link = 0  # periodic catch-ups since the last connect
        self._lock = FolderLock(data / "link.lock", f"blo-sub run for {self.me}")
        opener = bundle.opener()  # the node's encryption keys: sealed messages open here
        self.inbox = Inbox(data / "inbox.sqlite3", opener=opener)
        self.outbox = Outbox(data / "outbox.sqlite3", bundle.signer())
        self.receiver = Receiver(bundle.trust_store(clock()), me=self.me, opener=opener)
        now = clock()
        for data_bytes in self.inbox.trust_messages():
            self._apply_trust(data_bytes, now)
        for sender, epoch, seq in self.inbox.sequences():
            self.receiver.window.commit(sender, seq, now, epoch=epoch)
        self.connected = threading.Event()
        self._stop = threading.Event()
        # outbox seq -> paho message infos; the ticker's alone.
        # After a restart it is empty, so everything unsent in the outbox goes again.
        self._inflight: dict[int, list[mqtt.MQTTMessageInfo]] = {}
        self._asked: dict[str, float] = {}
        self._state_written = 0.0
        self._ticker: threading.Thread | None = None
        # Messages wait here between paho's thread and the committer, which
        # commits them in batches (group commit) and only then acknowledges them.
        self._incoming: queue.SimpleQueue[Incoming | None] = queue.SimpleQueue()
        self._link = 0  # counts connections: an ack is only valid on the link it came by
        self._committer: threading.Thread | None = None
        # The read patterns the broker acknowledged (SUBACK) on this session, and the
        # SUBSCRIBE waiting for its SUBACK: a kept session that holds them is not sent
        # them again (each SUBSCRIBE also brings the retained trust messages again).
        self._subscribed: tuple[str, ...] = ()
        self._subscribing: tuple[int, tuple[str, ...]] | None = None
        self._trust_asked = -TRUST_ASK_EVERY
        self.tls_resumed = False  # whether the current link resumed the last TLS session
        # Set to run the ticker now (something was queued in the outbox), not at its tick.
        self._wake = threading.Event()
        # Checks a batch's signatures ahead of the committer (on another core:
        # cryptography releases the GIL); made at the first batch of more than one chunk.
        self._verify_pool: ThreadPoolExecutor | None = None
        self.faults = 0  # unexpected exceptions survived; the last one is in ``last_fault``
        self.last_fault = ""
        self.client = node_client(bundle)
        # Why the link is not up: logged once per change, kept for 'blo-sub status'.
        self.link = watch_link(self.client, self.me, log, self._link_reason)
        # A callback that raises would end paho's thread, and with it the link.
        self.client.on_connect = guarded(self._on_connect, "on_connect", self._fault)
        self.client.on_disconnect = guarded(self._on_disconnect, "on_disconnect", self._fault)
        self.client.on_message = guarded(self._on_message, "on_message", self._fault)
        self.client.on_subscribe = guarded(self._on_subscribe, "on_subscribe", self._fault)
        # Photos (subscriber/photos.py): chunk and need topics, the blob store, its pump.
        self.photos = photo_link(self.me, data, self.client, self.receiver.trust, clock)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (retrying forever) and start the ticker.

        Raises ``FolderInUse`` at once if another client runs on this data folder:
        two links with one client id would take each other's session over forever.
        """
        self._lock.acquire()
        self._settle_receipts()
        # Photos of incidents stored just before a crash, before they were registered.
        held = self.inbox.messages((Kind.INCIDENT,))
        self.photos.resume((m.sealed.header, m.body, m.received) for m in held)
        self.inbox.set_state(link="connecting", node=self.me, broker=f"{self.host}:{self.port}")
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self._ticker = threading.Thread(
            target=self._run_ticker, name=f"{self.me}-tick", daemon=True
        )
        self._ticker.start()
        self._committer = threading.Thread(
            target=self._run_committer, name=f"{self.me}-commit", daemon=True
        )
        self._committer.start()

    def stop(self) -> None:
        """Disconnect cleanly; everything unsent stays in the outbox."""
        self._stop.set()
        self._wake.set()
        self._incoming.put(None)
        for thread in (self._ticker, self._committer):
            if thread:
                thread.join(5)
        if self._verify_pool is not None:
            self._verify_pool.shutdown(wait=True)
        self.client.disconnect()
        self.client.loop_stop()
        self.inbox.set_state(link="stopped")
        self.inbox.close()
        self.outbox.close()
        self.photos.close()
        self._lock.release()

    # -- surviving faults ------------------------------------------------------------------

    def _fault(self, where: str, exc: BaseException) -> None:
        """Log an unexpected exception with the node named; count it and show it in status."""
        self.faults += 1
        self.last_fault = f"{where}: {type(exc).__name__}: {exc}"
        log.error("%s: %s failed; going on", self.me, where, exc_info=exc)
        self._set_state(faults=self.faults, last_fault=self.last_fault)

    def _set_state(self, **values: Any) -> None:
        """``inbox.set_state`` for paho's thread: a failed write is logged, never raised."""
        try:
            self.inbox.set_state(**values)
        except sqlite3.Error as exc:
            log.error("%s: could not record %s in the inbox: %s", self.me, sorted(values), exc)

    def _relink(self) -> None:
        """Drop the link and make it again, so the broker redelivers the failed batch."""
        log.warning("%s: dropping the link for a redelivery", self.me)
        relink(self.client, self.host, self.port, self._stop)

    # -- sending -----------------------------------------------------------------------

    def send(
        self,
        body: WireModel,
        scope: Scope,
        *,
        days: float = RECEIPT_DAYS,
        confidential: bool = False,
    ) -> bytes:
        """Queue a message in the outbox (sent as soon as the link allows); returns its id.

        Bulletins, and alerts or incidents marked ``confidential``, are sealed for
        their readers (publisher.sealing); ``ComposeError`` if that cannot be done."""
        now = self.clock().replace(microsecond=0)
        trust, kind = self.receiver.trust, kind_of(body)
        recipients = seal_for(kind, scope, self.me, trust, now, confidential=confidential)
        queued = self.outbox.submit(
            body, scope, issued=now, expires=now + timedelta(days=days), seal_for=recipients
        )
        self._wake.set()  # published now, not at the next tick
        return queued.msg_id

    def mark_read(self, msg_id: bytes) -> bool:
        """An officer opened a message: record it and queue a ``read`` receipt."""
        if not self.inbox.mark_read(msg_id, self.clock(), owe_receipt=self._owes_receipts):
            return False
        self._settle_receipts()
        return True

    @property
    def _owes_receipts(self) -> bool:
        return self.bundle.role is Role.BLO and self.receipts

    def _settle_receipts(self) -> None:
        """Queue the receipts the inbox says are owed (see ``subscriber.receipts``)."""
        if settle(self.inbox, self.outbox, self.me, self.clock()):
            self._wake.set()  # published now, not at the next tick

    def _flush(self) -> None:
        """Publish what the outbox holds; mark it sent once every topic is acknowledged.

        Runs on the ticker thread only and polls paho's message info rather than
        taking a lock in ``on_publish``: paho calls ``on_publish`` holding its own
        lock, and a lock of ours taken on both sides deadlocked a client under cuts.
        """
        for seq, infos in list(self._inflight.items()):
            try:
                done = all(info.is_published() for info in infos)
            except (RuntimeError, ValueError):  # paho gave the publish up: queue it again
                del self._inflight[seq]
                continue
            if done:
                self.outbox.mark_sent(seq, self.clock())
                del self._inflight[seq]
            # Otherwise paho still holds it and resends it after a reconnect by itself
            # (persistent session); publishing it again here only multiplied duplicates.
        for queued in self.outbox.pending(limit=200):
            if queued.seq in self._inflight:
                continue
            infos = [self.client.publish(topic, queued.data, qos=1) for topic in queued.topics]
            if any(info.rc != mqtt.MQTT_ERR_SUCCESS for info in infos):
                return  # not connected: the next tick tries again
            self._inflight[queued.seq] = infos

    # -- MQTT callbacks ------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, p: Any) -> None:
        if rc.is_failure:
            self.link.failed(f"refused by the broker at {self.host}:{self.port}: {rc}")
            self._set_state(link=f"refused: {rc}")
            return
        entry = self.receiver.trust.node(self.me)
        keyset = self.receiver.trust.keyset(country_of(self.me))
        if entry is None or keyset is None:
            log.error("%s is not in its keyset: re-enrol this node", self.me)
            return
        resumed = self.tls_resumed = keep_tls_session(client)
        # Subscribe on every connect, kept session or not, in one packet: a link cut
        # before the SUBACK leaves a kept session without the subscription (seen under
        # cuts), and amqtt's session take-over is not trusted to keep it. The trust
        # patterns are the exception once the kept session acknowledged them: each
        # SUBSCRIBE to them brings every retained keyset and list again (1-2 KB a
        # reconnect on a metered link), and the trust request covers them (below).
        patterns = tuple(rules_for(entry, keyset.nodes).read)
        held = flags.session_present and self._subscribed == patterns
        wanted = tuple(p for p in patterns if not (held and is_trust_topic(p)))
        result, mid = client.subscribe([(pattern, 1) for pattern in wanted])
        ok = result == mqtt.MQTT_ERR_SUCCESS and mid is not None
        self._subscribing = (mid, patterns) if ok and mid is not None else None
        if not held:
            self._subscribed = ()
        if time.monotonic() - self._trust_asked >= TRUST_ASK_EVERY:
            self._trust_asked = time.monotonic()
            self._ask_trust()
        self._link += 1
        self._catch_up_period = self.catch_up_every
        self._catch_ups_on_link = 0
        self.link.up()
        self.connected.set()
        now = self.clock()
        self._set_state(link="up", last_contact=now.isoformat())
        log.info(
            "%s connected to %s:%d (session %s, TLS %s)",
            self.me,
            self.host,
            self.port,
            "kept" if flags.session_present else "new",
            "resumed" if resumed else "full handshake",
        )
        # A new session lost what the broker queued; the first link of this process
        # may follow a power cut that took the inbox's last commits (Inbox): both ask
        # the archive for everything after the newest held.
        if not flags.session_present or self._link == 1:
            self._catch_up()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, p: Any
    ) -> None:
        """The broker acknowledged a SUBSCRIBE: its patterns are held if none was refused."""
        waiting, self._subscribing = self._subscribing, None
        if waiting is not None and waiting[0] == mid:
            if not any(code.is_failure for code in codes):
                self._subscribed = waiting[1]
            else:
                log.warning("%s: the broker refused a subscription: %s", self.me, codes)

    def _link_reason(self, why: str | None) -> None:
        """Keep why the link is not up (None: it is) for 'blo-sub status'."""
        self.inbox.set_state(last_error=why, **({"link": "down"} if why else {}))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, f: Any, rc: Any, p: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            self._set_state(link="down", last_contact=self.clock().isoformat())
            self.link.lost(rc)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            photo = self.photos.on_message(message.topic, bytes(message.payload))
        except Exception as exc:  # a chunk lost to a fault is asked for again later
            self._fault(f"photo message on {message.topic}", exc)
            photo = True
        if photo:
            client.ack(message.mid, message.qos)
            return
        if message.topic == resend_topic(self.me):
            try:
                self._resend(bytes(message.payload))
            except BloError as exc:  # one bad request never stops the client
                log.warning("%s: %s on %s", self.me, exc, message.topic)
            except Exception as exc:  # e.g. the outbox unreadable: the archive asks again
                self._fault(f"resending at the archive's request ({message.topic})", exc)
            finally:
                client.ack(message.mid, message.qos)
            return
        self._incoming.put(
            Incoming(self._link, message.topic, bytes(message.payload), message.mid, message.qos)
        )

    # -- receiving -----------------------------------------------------------------------

    def _run_committer(self) -> None:
        stopping = False
        while not stopping and not self._stop.is_set():
            # Blocks until something comes (no polling: an idle tablet sleeps). stop()
            # queues None to wake it; what is still queued then was never acknowledged
            # and comes again (broker redelivery or the catch-up at the next start).
            first = self._incoming.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < 100:
                try:
                    item = self._incoming.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                self._commit(batch)
            except Exception as exc:  # the receive path must outlive any one batch
                # Nothing of it was acknowledged; the window and the message ids
                # forget it, and a new link makes the broker send it again (the
                # catch-up asks the archive too), so it is accepted then.
                self._fault(f"committing a batch of {len(batch)} messages", exc)
                with contextlib.suppress(Exception):
                    self._rebuild_window(self.clock())
                self.receiver.forget(self._msg_ids(batch))
                self._relink()

    def _commit(self, batch: list[Incoming]) -> None:
        """Check each message, commit the accepted ones together, then acknowledge all."""
        now = self.clock()
        keep: list[Accepted] = []
        refused: Counter[str] = Counter()
        results = self.receiver.receive_many(
            [(item.topic, item.payload) for item in batch], now, self._verifier(len(batch))
        )
        for item, received in zip(batch, results, strict=True):
            try:
                result = self._check(item.topic, item.payload, now, received)
            except BloError as exc:  # one bad message never stops the client
                log.warning("%s: %s on %s", self.me, exc, item.topic)
                continue
            if isinstance(result, Accepted):
                keep.append(result)
            elif result is not None:
                refused[result.reason.value] += 1
        # Refusals are counted in the same transaction: after a cut the broker
        # resends its whole in-flight window, and one fsync per duplicate let
        # the backlog outlive the next link (the full soak stalled so).
        stored = self._add_many(keep, now, refused)
        fresh = [result for result, new in zip(keep, stored, strict=True) if new]
        # Photos the batch's incidents describe (idempotent: a batch redelivered after a
        # fault registers again what the fault interrupted). Only for incidents: it wakes
        # the photo pump, a thread switch per batch for nothing.
        if any(r.header.kind is Kind.INCIDENT for r in keep):
            self.photos.accepted(keep)
        # One outbox transaction for the batch's receipts, as for the inbox. The batch
        # is stored: a failed receipt write must not undo that (they stay owed and
        # the ticker queues them).
        if any(r.header.kind is Kind.ALERT for r in fresh):
            try:
                self._settle_receipts()
            except (BloError, sqlite3.Error) as exc:
                self._fault("queueing receipts (still owed)", exc)
        if self.on_stored is not None:
            for result in fresh:
                self.on_stored(result)
        for item in batch:
            if item.link == self._link:  # a message id from an older link means nothing now
                self.client.ack(item.mid, item.qos)

    def _add_many(self, keep: list[Accepted], now: datetime, refused: Counter[str]) -> list[bool]:
        """``inbox.add_many``, tried ``COMMIT_TRIES`` times; the last error goes up."""
        owe = self._owes_receipts
        for attempt in range(1, COMMIT_TRIES):
            try:
                return self.inbox.add_many(keep, now, refused, owe_receipts=owe)
            except sqlite3.Error as exc:
                log.warning("%s: inbox write failed (%s); try %d", self.me, exc, attempt + 1)
                time.sleep(0.2 * attempt)
        return self.inbox.add_many(keep, now, refused, owe_receipts=owe)

    @staticmethod
    def _msg_ids(batch: list[Incoming]) -> list[bytes]:
        ids = []
        for item in batch:
            with contextlib.suppress(BloError):
                ids.append(open_envelope(item.payload).header.msg_id)
        return ids

    def _rebuild_window(self, now: datetime) -> None:
        window = ReplayWindow()
        for sender, epoch, seq in self.inbox.sequences():
            window.commit(sender, seq, now, epoch=epoch)
        self.receiver.window = window

    def _verifier(self, size: int) -> ThreadPoolExecutor | None:
        """The pool that checks a batch's signatures ahead, if it pays: more than one
        chunk of messages (a single chunk is checked while this thread waits for it:
        a hand-off for nothing, on every small batch of a live feed) and a second core."""
        if size <= VERIFY_CHUNK or (os.cpu_count() or 1) < 2:
            return None
        if self._verify_pool is None:
            self._verify_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{self.me}-verify")
        return self._verify_pool

    def _check(
        self, topic: str, payload: bytes, now: datetime, result: Accepted | Rejected | None = None
    ) -> Accepted | Rejected | None:
        """Run the receiver core (unless ``result`` is its answer already). Returns what
        the inbox should hold, or a refusal to count; handles the rest (quarantine,
        trust messages) itself."""
        if result is None:
            result = self.receiver.receive(topic, payload, now)
        if isinstance(result, Rejected):
            trust_echo = result.header is not None and result.header.kind in (
                Kind.KEYSET,
                Kind.REVOCATION,
            )
            if result.reason is Reason.UNKNOWN_KEY and not trust_echo:
                sender = result.header.sender if result.header else ""
                self.inbox.quarantine(topic, payload, result.detail, now, sender)
                log.info("%s quarantined: %s", self.me, result)
            elif trust_echo:
                log.debug("%s %s", self.me, result)  # e.g. a root this node does not pin
            else:
                # Duplicates are counted too (a replay attack shows as a rising count),
                # but only refusals that are not the normal echo of at-least-once are logged.
                if not result.reason.benign:
                    log.warning("%s %s", self.me, result)
                return result
            return None
        h = result.header
        if h.kind in (Kind.KEYSET, Kind.REVOCATION):
            self.inbox.save_trust(h.kind, h.sender, h.seq, payload)
            log.info("%s applied %s %s v%d", self.me, h.kind.label, h.sender, h.seq)
            self._retry_quarantine(now)
            return None
        return result

    def _apply_trust(self, data: bytes, now: datetime) -> None:
        header = open_envelope(data).header
        self.receiver.receive(trust_topic(header.kind, header.sender), data, now)

    def _retry_quarantine(self, now: datetime) -> None:
        done = []
        for ident, topic, data in self.inbox.quarantined():
            result = self.receiver.receive(topic, data, now)
            if isinstance(result, Rejected) and result.reason is Reason.UNKNOWN_KEY:
                continue
            done.append(ident)
            if isinstance(result, Accepted):
                if self.inbox.add(result, now, owe_receipts=self._owes_receipts):
                    self._settle_receipts()
                    self.photos.accepted([result])
            elif not result.reason.benign:
                self.inbox.count_rejection(result.reason.value)
        if done:
            self.inbox.release(done)

    def _resend(self, payload: bytes) -> None:
        request = decode_request(payload)
        first = request.start(self.outbox.epoch)
        if request.sender != self.me or first is None:
            # A range of an outbox this node no longer has (reinstalled): nothing to send.
            return
        for queued in self.outbox.range(first, request.last if request.epoch else None):
            for topic in queued.topics:
                self.client.publish(topic, queued.data, qos=1)
        log.info(
            "%s resent #%d-%s at the archive's request",
            self.me,
            first,
            request.last or "newest",
        )

    # -- gaps and catch-up -----------------------------------------------------------------

    def _ask(self, sender: str, epoch: int, first: int, last: int) -> None:
        """Ask the archive for ``first``..``last`` of ``sender``'s ``epoch``, at most once per
        grace period.

        Limited per stream, not per range: a gap that shrinks as replays arrive
        is not asked for again until the earlier answer had time to come.
        """
        key = f"{sender}/{epoch}"
        if time.monotonic() - self._asked.get(key, 0.0) < 3 * self.gap_grace.total_seconds():
            return
        self._asked[key] = time.monotonic()
        request = ReplayRequest(sender=sender, first=first, last=last, epoch=epoch)
        self.client.publish(request_topic(self.me), encode_request(request), qos=1)

    def _ask_trust(self) -> None:
        """Ask the archive for the newest trust of every pinned country (every connect).

        The retained slot alone is not enough: whoever could write it could put an
        older keyset back and hide a revocation; the archive's answer comes on the
        replay topic and is checked against the pinned roots like the slot's.
        """
        request = TrustRequest(countries=tuple(self.receiver.trust.countries))
        self.client.publish(request_topic(self.me), encode_trust_request(request), qos=1)

    def _catch_up(self) -> None:
        """Ask the archive for everything after the newest held, per sender.

        Sent on a connect with a new session, on the first connect of each start (a
        power cut may have taken the inbox's last commits) and every
        ``catch_up_every`` seconds, the period doubling while the link stays up
        (``CATCH_UP_BACKOFF``): sequence gaps
        show a lost message only once a later one arrives; this also finds a
        lost tail. The archive answers with nothing when nothing is newer.
        """
        self._caught_up = time.monotonic()
        trust = self.receiver.trust
        nodes = [
            entry
            for country in trust.countries
            if (keyset := trust.keyset(country))
            for entry in keyset.nodes
        ]
        senders = set(self.receiver.window.senders())
        senders |= catch_up_senders(trust.node(self.me), nodes)
        for sender in sorted(senders - {self.me}):
            request = catch_up_request(sender, self.receiver.window)
            self.client.publish(request_topic(self.me), encode_request(request), qos=1)

    def _run_ticker(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.tick)
            self._wake.clear()
            if self._stop.is_set() or not self.connected.is_set():
                continue
            try:
                self._flush()
                self.photos.tick()
                now = self.clock()
                for (sender, epoch), (first, last) in gap_requests(
                    self.receiver.gaps(now, self.gap_grace)
                ).items():
                    self._ask(sender, epoch, first, last)
                if time.monotonic() - self._caught_up >= self._catch_up_period:
                    self._catch_up()
                    # The first two at the full rate: what a connect brought back
                    # (amqtt dropped what was in flight) is asked for again soon.
                    self._catch_ups_on_link += 1
                    if self._catch_ups_on_link > 2:
                        self._catch_up_period = min(
                            2 * self._catch_up_period, CATCH_UP_BACKOFF * self.catch_up_every
                        )
                if time.monotonic() - self._state_written < 2.0:
                    continue
                self._state_written = time.monotonic()
                # Receipts still owed after a failed outbox write (they stay marked).
                self._settle_receipts()
                _, waiting = self.outbox.counts()
                self.inbox.set_state(
                    last_contact=now.isoformat(),
                    outbox_waiting=waiting,
                    gaps=[[g.sender, g.first, g.last] for g in self.receiver.gaps()],
                    keysets={
                        c: k.version
                        for c in self.receiver.trust.countries
                        if (k := self.receiver.trust.keyset(c))
                    },
                    warnings=self.receiver.trust.warnings(now),
                )
            except BloError as exc:
                log.warning("%s: %s", self.me, exc)
            except Exception as exc:  # the ticker must outlive any fault, and say so
                self._fault("ticker", exc)
