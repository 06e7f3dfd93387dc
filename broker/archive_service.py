"""The archive as an ordinary MQTT client, so it works beside any broker.

It connects with its own identity (role ``archive``) on a persistent session,
subscribes to every message topic, checks each envelope with the receiver
core, and commits accepted ones to SQLite *before* acknowledging them (paho
manual ack): a crash between receive and store means redelivery, never loss.
paho's thread only queues what arrives; a committer thread checks up to
``BATCH`` envelopes, stores them in one transaction (group commit: one fsync
for the batch) and only then acknowledges them. A batch that cannot be stored
is acknowledged never: the window forgets it and the link is dropped, so the
broker (or the sender, asked to resend) brings it again.

It answers ``blo/request/<node>`` with the original envelopes on
``blo/replay/<node>``, serving only what that node is addressed by and may
read. When it sees a gap in a sender's sequence that does not fill within a
grace period, it asks the sender to publish again (``blo/resend/<sender>``).
It also publishes the PKI folder's signed trust messages, retained, so
tablets learn of new keysets and revocations on connect; answers a node's trust
request (sent at every connect) with the newest it holds; and republishes a
retained trust slot found holding an older version than its own (a rollback).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from broker.archive import ArchiveStore, Stored, entitled
from broker.blobs import archive_blobs
from broker.errors import BrokerError
from certs import EnrolmentBundle
from schemas import (
    Accepted,
    BloError,
    Reason,
    Receiver,
    ReplayRequest,
    ReplayWindow,
    TrustStore,
    catch_up_request,
    country_of,
    decode_request,
    encode_request,
    gap_requests,
    is_node_id,
    open_envelope,
    replay_topic,
    resend_topic,
    trust_topic,
)
from schemas.access import rules_for
from schemas.kinds import Kind
from schemas.topics import request_topic
from schemas.trust import TrustRequest, decode_trust_request
from subscriber import node_client
from subscriber.link import Incoming, guarded, relink, watch_link

__all__ = ["ArchiveService"]

log = logging.getLogger("blo.archive")

MAX_REPLAY = 10_000
CATCH_UP_CHUNK = 500  # envelopes per open-ended request
REPLAY_BACKLOG = 500  # replays still going out above which a catch-up waits its next turn
REPLAY_HOLD = 10.0  # seconds before the same envelope is replayed to the same node again
BATCH = 100  # envelopes per transaction; paho holds at most 100 unacknowledged
COMMIT_TRIES = 3  # a locked or busy file often clears within a second


class ArchiveService:
    """Store, replay and resend: the broker-independent memory of the network."""

    def __init__(
        self,
        bundle: EnrolmentBundle,
        host: str,
        port: int,
        db: Path,
        *,
        trust_source: Callable[[], list[bytes]] | None = None,
        gap_grace: timedelta = timedelta(seconds=5),
        probe_every: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bundle = bundle
        self.host, self.port = host, port
        self.clock = clock
        self.gap_grace = gap_grace
        self.probe_every = probe_every
        self._probe_at = time.monotonic() + probe_every
        self._probe_backoff = probe_every
        self._connects = 0
        self.trust_source = trust_source
        self.store = ArchiveStore(db)
        self.trust: TrustStore = bundle.trust_store(clock())
        self.receiver = Receiver(self.trust)
        self._rebuild_window(clock())
        self._asked: dict[str, float] = {}
        # When each sender was last heard from (committer), and what was replayed to
        # whom lately (paho's thread): see _probe and _serve.
        self._heard: dict[str, float] = {}
        self._served: dict[tuple[str, str, int], list[tuple[int, int, float]]] = {}
        # Replays not yet acknowledged by the broker, per (node, sender, epoch, seq),
        # with when they were published (paho's thread only).
        self._replaying: dict[tuple[str, str, int, int], tuple[mqtt.MQTTMessageInfo, float]] = {}
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._committer: threading.Thread | None = None
        # Envelopes wait here between paho's thread and the committer.
        self._incoming: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self._link = 0  # counts connections: an ack is only valid on the link it came by
        self.connected = threading.Event()
        self.stats = {
            "stored": 0,
            "rejected": 0,
            "replayed": 0,
            "resend_asked": 0,
            "failed_batches": 0,
            "faults": 0,
        }
        self.last_fault = ""
        self.client = node_client(bundle, max_reconnect_delay=5)
        self.link = watch_link(self.client, f"archive {bundle.node}", log)  # why not up, once
        # A callback that raises would end paho's thread, and with it the link.
        self.client.on_connect = guarded(self._on_connect, "on_connect", self._fault)
        self.client.on_disconnect = guarded(self._on_disconnect, "on_disconnect", self._fault)
        self.client.on_message = guarded(self._on_message, "on_message", self._fault)
        # Photo blobs (broker/blobs.py): registered from incidents, fetched, served.
        self.blobs = archive_blobs(bundle.node, db, self.client, self.trust, clock)
        self._setup_trust()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Connect (retrying in the background) and start serving."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self._ticker = threading.Thread(target=self._tick, name="archive-ticker", daemon=True)
        self._ticker.start()
        self._committer = threading.Thread(
            target=self._run_committer, name="archive-commit", daemon=True
        )
        self._committer.start()

    def stop(self) -> None:
        """Disconnect and close the store."""
        self._stop.set()
        if self._committer:  # first: it may be dropping and remaking the link
            self._committer.join(10)
        self.client.disconnect()
        self.client.loop_stop()
        if self._ticker:
            self._ticker.join(5)
        self.store.close()
        self.blobs.close()

    def _fault(self, where: str, exc: BaseException) -> None:
        """Log an unexpected exception with the node named, count it, keep it for status."""
        self.stats["faults"] += 1
        self.last_fault = f"{where}: {type(exc).__name__}: {exc}"
        log.error("archive %s: %s failed; going on", self.bundle.node, where, exc_info=exc)

    def _relink(self) -> None:
        """Drop the link and make it again, so the broker redelivers the failed batch."""
        log.warning("archive %s: dropping the link for a redelivery", self.bundle.node)
        relink(self.client, self.host, self.port, self._stop)

    # -- MQTT callbacks ----------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, p: Any) -> None:
        if rc.is_failure:
            self.link.failed(f"refused by the broker at {self.host}:{self.port}: {rc}")
            return
        self.link.up()
        for topic in self._subscriptions():
            client.subscribe(topic, qos=1)
        self._link += 1
        self._connects += 1
        # A request asked on the old link, or its answer, may have died with it (amqtt
        # drops what is in flight): ask again now, not a whole period later.
        self._asked.clear()
        if self._connects > 1:
            # What a restarted broker acknowledged to a sender but never delivered
            # leaves no gap, only a lost tail. Senders come back on their own
            # backoff, so probe soon and then at widening intervals.
            self._probe_backoff = max(self.gap_grace.total_seconds(), 1.0)
            self._probe_at = time.monotonic() + self._probe_backoff
        self.connected.set()
        log.info("archive %s connected, %d envelopes held", self.bundle.node, self.store.count())
        self.publish_trust()

    def _subscriptions(self) -> list[str]:
        """What the archive role may read (schemas.access), its own replies excepted."""
        me = self.bundle.node
        entry = self.trust.node(me)
        keyset = self.trust.keyset(country_of(me))
        if entry is None or keyset is None:
            raise BrokerError(f"{me} is not in its keyset: re-issue the archive's bundle")
        own = {replay_topic(me), resend_topic(me)}
        return [t for t in rules_for(entry, keyset.nodes).read if t not in own]

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, f: Any, rc: Any, p: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            self.link.lost(rc)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._blob_message(message):
            return
        if not message.topic.startswith("blo/request/"):
            # Stored, then acknowledged, on the committer thread.
            self._incoming.put(
                Incoming(
                    self._link, message.topic, bytes(message.payload), message.mid, message.qos
                )
            )
            return
        # A request is only read from: acknowledged even if serving it failed
        # (the node asks again), so it never holds an in-flight slot.
        try:
            self._serve(message.topic.rsplit("/", 1)[1], bytes(message.payload))
        except BloError as exc:  # one bad request never stops the archive
            log.warning("archive: %s on %s", exc, message.topic)
        except Exception as exc:  # logged and counted, never silent
            self._fault(f"serving {message.topic}", exc)
        finally:
            client.ack(message.mid, message.qos)

    def _blob_message(self, message: mqtt.MQTTMessage) -> bool:
        """A photo chunk or need (broker/blobs.py): handled and acknowledged here. A chunk
        lost to a fault is asked for again by whoever still needs it."""
        try:
            handled = self.blobs.on_message(message.topic, bytes(message.payload))
        except Exception as exc:  # logged and counted, never silent
            self._fault(f"photo message on {message.topic}", exc)
            handled = True
        if handled:
            self.client.ack(message.mid, message.qos)
        return handled

    # -- storing -----------------------------------------------------------------------

    def _run_committer(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._incoming.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < BATCH:
                try:
                    batch.append(self._incoming.get_nowait())
                except queue.Empty:
                    break
            try:
                self._commit(batch)
            except Exception as exc:  # the store path must outlive any batch
                # Nothing of it was acknowledged. The window and the message ids
                # forget it, and a new link makes the broker send it again (on a
                # broker that drops in-flight messages instead, the resend
                # requests and the probe bring it from the sender).
                self.stats["failed_batches"] += 1
                self._fault(f"storing a batch of {len(batch)} envelopes", exc)
                with contextlib.suppress(Exception):
                    self._forget(batch)
                self._relink()

    def _commit(self, batch: list[Incoming]) -> None:
        """Check each envelope, store the accepted ones together, then acknowledge all."""
        now = self.clock()
        keep: list[tuple[Accepted, str]] = []
        for item in batch:
            result = self.receiver.receive(item.topic, item.payload, now)
            if isinstance(result, Accepted):
                keep.append((result, item.topic))
                self._heard[result.header.sender] = time.monotonic()
            elif result.reason is not Reason.DUPLICATE:
                self.stats["rejected"] += 1
                log.warning("archive %s", result)
        for attempt in range(1, COMMIT_TRIES + 1):
            try:
                stored = self.store.add_many(keep, now)
                break
            except sqlite3.Error as exc:
                if attempt == COMMIT_TRIES:
                    raise
                log.warning(
                    "archive %s: storing %d envelopes failed (%s); try %d of %d",
                    self.bundle.node,
                    len(keep),
                    exc,
                    attempt + 1,
                    COMMIT_TRIES,
                )
                time.sleep(0.2 * attempt)
        self.stats["stored"] += sum(stored)
        # Photos described by the batch's incidents (idempotent, so a redelivered
        # batch registers again what a fault interrupted).
        self.blobs.accepted([result for result, _ in keep])
        for item in batch:
            if item.link == self._link:  # a message id from an older link means nothing now
                self.client.ack(item.mid, item.qos)

    def _forget(self, batch: list[Incoming]) -> None:
        """Undo what checking ``batch`` recorded, so its redelivery is accepted."""
        self._rebuild_window(self.clock())
        ids = []
        for item in batch:
            with contextlib.suppress(BloError):
                ids.append(open_envelope(item.payload).header.msg_id)
        self.receiver.forget(ids)

    def _rebuild_window(self, now: datetime) -> None:
        """The replay window as the store says: what is held is what was received."""
        window = ReplayWindow()
        for sender, epoch, seq in self.store.sequences():
            window.commit(sender, seq, now, epoch=epoch)
        self.receiver.window = window

    # -- serving -----------------------------------------------------------------------

    def _serve(self, node: str, payload: bytes) -> None:
        request = decode_request(payload)
        entry = self.trust.node(node)
        keyset = self.trust.keyset(country_of(node))
        if entry is None or keyset is None or entry.revoked is not None:
            log.warning("replay refused to %s: not an active node", node)
            return
        rules = rules_for(entry, keyset.nodes)
        # "Everything after my newest" is served in chunks: the node asks again from
        # its new newest. A long replay on a link cut every few seconds is mostly lost.
        limit = MAX_REPLAY if request.last is not None else CATCH_UP_CHUNK
        if request.last is None and self._replay_backlog() > REPLAY_BACKLOG:
            # Behind a backlog the answer would arrive late, to a link that may have
            # been cut meanwhile; the node asks again at its next catch-up.
            log.info(
                "catch-up of %s for %s deferred: replays still going out", node, request.sender
            )
            return
        items: list[Stored] = []
        epochs = [request.epoch] if request.epoch else self.store.epochs(request.sender)
        for epoch in epochs:
            first = request.start(epoch)
            if first is not None and len(items) < limit:
                last = request.last if request.epoch else None
                items += self.store.range(request.sender, epoch, first, last, limit - len(items))
        served = [item for item in items if entitled(entry, rules, item)]
        served = self._not_in_flight(node, request, served)
        # What paho still holds for this node is on its way: replaying it again only
        # lengthened the queue that every later answer waits behind (the full soak on
        # amqtt, where twelve flapping tablets re-asked for their gaps every few
        # seconds and the archive's answers fell minutes behind).
        self._replay_backlog()
        served = [i for i in served if (node, i.sender, i.epoch, i.seq) not in self._replaying]
        for item in served:
            info = self.client.publish(replay_topic(node), item.data, qos=1)
            self._replaying[(node, item.sender, item.epoch, item.seq)] = (info, time.monotonic())
        self.stats["replayed"] += len(served)
        log.info(
            "replayed %d of %d envelopes of %s #%d-%s to %s",
            len(served),
            len(items),
            request.sender,
            request.first,
            request.last or "newest",
            node,
        )

    def _replay_backlog(self) -> int:
        """How many replays paho still holds unacknowledged (paho's thread only).

        One not acknowledged within a minute is no longer counted, so a replay
        that paho never completes cannot hold every later catch-up back.
        """
        now = time.monotonic()

        def pending(info: mqtt.MQTTMessageInfo, since: float) -> bool:
            if now - since >= 60:
                return False
            if info.rc == mqtt.MQTT_ERR_NO_CONN:  # paho queued it for the next link
                return True
            try:
                return not info.is_published()
            except (RuntimeError, ValueError):  # not queued: nothing to wait for
                return False

        self._replaying = {k: (i, t) for k, (i, t) in self._replaying.items() if pending(i, t)}
        return len(self._replaying)

    def _not_in_flight(
        self, node: str, request: ReplayRequest, items: list[Stored]
    ) -> list[Stored]:
        """For "everything after my newest": leave out what was replayed to ``node``
        less than REPLAY_HOLD seconds ago.

        A node that lags behind a busy stream asks so at every catch-up; replaying
        again what the last replay is still delivering multiplied the traffic to a
        lagging tablet until it never caught up (the full soak on Mosquitto, once
        the archive stored faster). A replay lost with a cut link is sent again
        once the hold has passed. Requests for a gap are paced by the node itself.
        """
        if request.last is not None:
            return items
        now = time.monotonic()
        kept: list[Stored] = []
        for epoch in dict.fromkeys(item.epoch for item in items):
            key = (node, request.sender, epoch)
            recent = [r for r in self._served.get(key, []) if now - r[2] < REPLAY_HOLD]
            fresh = [
                item
                for item in items
                if item.epoch == epoch
                and not any(first <= item.seq <= last for first, last, _ in recent)
            ]
            if fresh:
                recent.append((fresh[0].seq, fresh[-1].seq, now))
            self._served[key] = recent
            kept += fresh
        return kept

    # -- trust and gaps ----------------------------------------------------------------

    def publish_trust(self) -> None:
        """Publish the newest signed keysets and revocation lists, retained."""
        if self.trust_source is None:
            return
        for data in self.newest_trust():
            try:
                header = open_envelope(data).header
            except BloError as exc:
                log.error("trust message not published: %s", exc)
                continue
            self.client.publish(trust_topic(header.kind, header.sender), data, qos=1, retain=True)

    # -- trust requests and retained slots (issue 9, item 7) ---------------------------

    def _setup_trust(self) -> None:
        """Hold the bundle's trust; route trust requests and trust slots to their handlers.

        paho's per-topic callbacks see these first and pass everything else on to
        ``_on_message`` unchanged, so the store's path does not know about them.
        """
        self._trust_lock = threading.Lock()
        self._trust_held: dict[tuple[Kind, str], tuple[int, bytes]] = {}
        self._slot_fixed: dict[str, float] = {}
        for item in self.bundle.trust:
            self._hold_trust(base64.b64decode(item))
        self.client.message_callback_add(request_topic("+"), self._on_request)
        self.client.message_callback_add(f"{trust_topic(Kind.KEYSET, '+')}", self._on_slot)
        self.client.message_callback_add(f"{trust_topic(Kind.REVOCATION, '+')}", self._on_slot)

    def _hold_trust(self, data: bytes) -> tuple[str, int] | None:
        """Keep ``data`` if it is a root-signed trust message newer than the one held.

        Returns its topic and version, or None when it is no trust message a pinned
        root signed.
        """
        try:
            sealed = open_envelope(data)
        except BloError:
            return None
        h = sealed.header
        root = self.trust.root_key(h.sender, h.key_id)
        if h.kind not in (Kind.KEYSET, Kind.REVOCATION) or root is None:
            return None
        if not sealed.verify(root):
            return None
        with self._trust_lock:
            held = self._trust_held.get((h.kind, h.sender))
            if held is None or h.seq > held[0]:
                self._trust_held[(h.kind, h.sender)] = (h.seq, data)
        return trust_topic(h.kind, h.sender), h.seq

    def newest_trust(self, countries: tuple[str, ...] | None = None) -> list[bytes]:
        """The newest trust messages held (keysets first), of ``countries`` or of all."""
        for data in self.trust_source() if self.trust_source else ():
            self._hold_trust(data)
        with self._trust_lock:
            return [
                data
                for (_, country), (_, data) in sorted(self._trust_held.items())
                if countries is None or country in countries
            ]

    def _on_request(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            request = decode_trust_request(bytes(message.payload))
        except BloError:  # not a trust request: a replay request, for the usual path
            self._on_message(client, userdata, message)
            return
        try:
            self._serve_trust(message.topic.rsplit("/", 1)[1], request)
        except Exception:  # paho's thread must outlive any one request
            log.exception("archive: trust request on %s failed", message.topic)
        finally:
            client.ack(message.mid, message.qos)

    def _serve_trust(self, node: str, request: TrustRequest) -> None:
        """Send ``node`` the newest keyset and revocation list of each country it asked for."""
        entry = self.trust.node(node)
        if entry is None or entry.revoked is not None:
            log.warning("trust request refused to %s: not an active node", node)
            return
        sent = self.newest_trust(request.countries)
        for data in sent:
            self.client.publish(replay_topic(node), data, qos=1)
        log.info("sent %d trust messages of %s to %s", len(sent), ",".join(request.countries), node)

    def _on_slot(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._repair_slot(message.topic, bytes(message.payload))
        except Exception:  # paho's thread must outlive any one message
            log.exception("archive: checking trust slot %s failed", message.topic)
        self._on_message(client, userdata, message)

    def _repair_slot(self, topic: str, data: bytes) -> None:
        """Republish the newest held trust when ``topic`` carries an older version (or junk).

        Only the archive role may write trust topics, but a second archive with an
        older PKI copy, a restored broker database or stolen archive credentials can
        still put an old keyset or revocation list in the retained slot. The archive
        subscribes to every slot, so it sees that at once and puts its own back.
        """
        parts = topic.split("/")
        if len(parts) != 4:
            return
        kind = Kind.KEYSET if parts[3] == Kind.KEYSET.label else Kind.REVOCATION
        found = self._hold_trust(data)
        version = found[1] if found is not None and found[0] == topic else None
        with self._trust_lock:
            newest = self._trust_held.get((kind, parts[2]))
        if newest is None or (version is not None and version >= newest[0]):
            return
        if time.monotonic() - self._slot_fixed.get(topic, 0.0) < 2.0:
            return  # the repair just sent is on its way
        self._slot_fixed[topic] = time.monotonic()
        what = "an unverifiable message" if version is None else f"v{version}"
        log.warning("trust slot %s held %s, older than v%d: republished", topic, what, newest[0])
        self.client.publish(topic, newest[1], qos=1, retain=True)

    def _tick(self) -> None:
        published: list[bytes] = []
        while not self._stop.wait(1.0):
            if not self.connected.is_set():
                continue
            try:
                published = self._tick_once(published)
            except Exception as exc:  # the ticker must outlive any fault
                self._fault("ticker", exc)

    def _tick_once(self, published: list[bytes]) -> list[bytes]:
        """Publish new trust, ask senders for gaps, probe; returns the trust published."""
        # A new keyset or revocation list in the PKI folder goes out at once, retained.
        if self.trust_source is not None:
            current = self.trust_source()
            if current != published:
                published = current
                self.publish_trust()
        now = self.clock()
        gaps = self.receiver.gaps(now, self.gap_grace)
        for (sender, epoch), (first, last) in gap_requests(gaps).items():
            # Once per stream per period: a gap that shrinks as resends arrive
            # is not asked for again before the first answer had time to come.
            key = f"{sender}/{epoch}"
            if time.monotonic() - self._asked.get(key, 0.0) < 30:
                continue
            self._asked[key] = time.monotonic()
            request = ReplayRequest(sender=sender, first=first, last=last, epoch=epoch)
            self.client.publish(resend_topic(sender), encode_request(request), qos=1)
            self.stats["resend_asked"] += 1
            log.info("asked %s to resend #%d-%d of outbox %x", sender, first, last, epoch)
        if time.monotonic() >= self._probe_at:
            self._probe()
        self.blobs.tick()
        return published

    def _probe(self) -> None:
        """Ask every sender for anything after the newest held: finds a lost tail.

        A broker that acknowledged a sender's last messages and then died leaves
        no gap behind; the sender's outbox answers with nothing if nothing is newer.
        """
        quiet = self._probe_backoff  # a sender still sending shows a lost tail as a gap
        self._probe_backoff = min(self._probe_backoff * 2, self.probe_every)
        self._probe_at = time.monotonic() + self._probe_backoff
        for sender in (s for s in self.receiver.window.senders() if is_node_id(s)):
            if time.monotonic() - self._heard.get(sender, 0.0) < quiet:
                continue
            request = catch_up_request(sender, self.receiver.window)
            self.client.publish(resend_topic(sender), encode_request(request), qos=1)
