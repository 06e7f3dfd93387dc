"""The archive as an ordinary MQTT client, so it works beside any broker.

It connects with its own identity (role ``archive``) on a persistent session,
subscribes to every message topic, checks each envelope with the receiver
core, and commits accepted ones to SQLite *before* acknowledging them (paho
manual ack): a crash between receive and store means redelivery, never loss.

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
import logging
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
    Rejected,
    ReplayRequest,
    TrustStore,
    catch_up_request,
    country_of,
    decode_request,
    encode_request,
    gap_spans,
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
from subscriber.link import watch_link

__all__ = ["ArchiveService"]

log = logging.getLogger("blo.archive")

MAX_REPLAY = 10_000


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
        for sender, epoch, seq in self.store.sequences():
            self.receiver.window.commit(sender, seq, clock(), epoch=epoch)
        self._asked: dict[str, float] = {}
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.connected = threading.Event()
        self.stats = {"stored": 0, "rejected": 0, "replayed": 0, "resend_asked": 0}
        self.client = node_client(bundle, max_reconnect_delay=5)
        self.link = watch_link(self.client, f"archive {bundle.node}", log)  # why not up, once
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
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

    def stop(self) -> None:
        """Disconnect and close the store."""
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()
        if self._ticker:
            self._ticker.join(5)
        self.store.close()
        self.blobs.close()

    # -- MQTT callbacks ----------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, p: Any) -> None:
        if rc.is_failure:
            self.link.failed(f"refused by the broker at {self.host}:{self.port}: {rc}")
            return
        self.link.up()
        for topic in self._subscriptions():
            client.subscribe(topic, qos=1)
        self._connects += 1
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
        try:
            if self.blobs.on_message(message.topic, bytes(message.payload)):
                return
            if message.topic.startswith("blo/request/"):
                self._serve(message.topic.rsplit("/", 1)[1], bytes(message.payload))
            else:
                self._keep(message.topic, bytes(message.payload))
        except BloError as exc:  # one bad message never stops the archive
            log.warning("archive: %s on %s", exc, message.topic)
        finally:
            client.ack(message.mid, message.qos)

    # -- storing -----------------------------------------------------------------------

    def _keep(self, topic: str, payload: bytes) -> None:
        now = self.clock()
        result = self.receiver.receive(topic, payload, now)
        if isinstance(result, Rejected):
            if result.reason is Reason.DUPLICATE:
                return
            self.stats["rejected"] += 1
            log.warning("archive %s", result)
            return
        assert isinstance(result, Accepted)
        if self.store.add(result, topic, now):
            self.stats["stored"] += 1
            self.blobs.accepted([result])

    # -- serving -----------------------------------------------------------------------

    def _serve(self, node: str, payload: bytes) -> None:
        request = decode_request(payload)
        entry = self.trust.node(node)
        keyset = self.trust.keyset(country_of(node))
        if entry is None or keyset is None or entry.revoked is not None:
            log.warning("replay refused to %s: not an active node", node)
            return
        rules = rules_for(entry, keyset.nodes)
        items: list[Stored] = []
        epochs = [request.epoch] if request.epoch else self.store.epochs(request.sender)
        for epoch in epochs:
            first = request.start(epoch)
            if first is not None and len(items) < MAX_REPLAY:
                last = request.last if request.epoch else None
                limit = MAX_REPLAY - len(items)
                items += self.store.range(request.sender, epoch, first, last, limit)
        served = [item for item in items if entitled(entry, rules, item)]
        for item in served:
            self.client.publish(replay_topic(node), item.data, qos=1)
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
            # A new keyset or revocation list in the PKI folder goes out at once, retained.
            if self.trust_source is not None:
                current = self.trust_source()
                if current != published:
                    published = current
                    self.publish_trust()
            now = self.clock()
            for (sender, epoch), (first, last) in gap_spans(
                self.receiver.gaps(now, self.gap_grace)
            ):
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

    def _probe(self) -> None:
        """Ask every sender for anything after the newest held: finds a lost tail.

        A broker that acknowledged a sender's last messages and then died leaves
        no gap behind; the sender's outbox answers with nothing if nothing is newer.
        """
        self._probe_backoff = min(self._probe_backoff * 2, self.probe_every)
        self._probe_at = time.monotonic() + self._probe_backoff
        for sender in (s for s in self.receiver.window.senders() if is_node_id(s)):
            request = catch_up_request(sender, self.receiver.window)
            self.client.publish(resend_topic(sender), encode_request(request), qos=1)
