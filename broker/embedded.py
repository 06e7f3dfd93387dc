"""The embedded broker: amqtt 0.12.1 behind the project's own TLS listener and guard.

amqtt's own TLS listener accepts clients without a certificate
(``CERT_OPTIONAL``) and trusts the CONNECT's client id before any plugin runs.
So amqtt gets only an *external* listener, and this module owns the socket:

    TCP accept -> TLS with a required client certificate from the node CA
               -> Registry.identify(certificate): in a keyset, not revoked, current
               -> GuardedReader: every packet checked by guard.inspect
               -> amqtt (external_connected) with CertAuthPlugin and AclPlugin

Every refusal is logged with the node, the peer address and the reason.
A watcher reloads the registry when ``blo-certs`` writes a new keyset, updates
the ACL and drops connections of nodes that were revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from asyncio import sslproto
from contextvars import ContextVar
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action

from broker.config import BrokerSettings
from broker.errors import BrokerError
from broker.guard import Frame, PacketError, inspect, parse_length
from broker.plugins import AclPlugin
from broker.registry import Identity, Registry
from schemas import BloError

__all__ = ["EmbeddedBroker", "GuardedReader", "SnapshotDict"]

log = logging.getLogger("blo.broker")
_NOT_AUTHORIZED = b"\x20\x02\x00\x05"
# asyncio gives every TLS connection a 256 KiB read buffer (SSLProtocol.max_size),
# zero-filled and so resident: 18 MiB for 74 tablets, 500 MiB for 2,000. A TLS
# record holds at most 16 KiB of data, so reads of that size lose nothing.
_TLS_READ_BUFFER = 16 * 1024 + 256
#: Set while amqtt handles a SUBSCRIBE: the only time retained messages are sent.
_SUBSCRIBING: ContextVar[bool] = ContextVar("subscribing", default=False)


class GuardedReader(ReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    """Hands amqtt one checked MQTT packet at a time."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        identity: Identity,
        max_packet: int,
        label: str,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._identity = identity
        self._max = max_packet
        self._label = label
        self._buffer = bytearray()
        self._first = True
        self.refused: str | None = None

    async def _next_frame(self) -> bool:
        try:
            first = (await self._reader.readexactly(1))[0]
            encoded = bytearray()
            while (length := parse_length(bytes(encoded))) is None:
                encoded += await self._reader.readexactly(1)
            if length > self._max:
                return self._refuse(f"packet of {length} bytes is over the {self._max}-byte limit")
            body = await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return False
        except PacketError as exc:
            return self._refuse(str(exc))
        frame = Frame(first, body)
        reason = inspect(
            frame, first=self._first, identity=self._identity.node.node, rules=self._identity.rules
        )
        if reason:
            return self._refuse(reason)
        self._first = False
        self._buffer += bytes((first,)) + bytes(encoded) + body
        return True

    def _refuse(self, reason: str) -> bool:
        self.refused = reason
        log.warning("refused %s: %s", self._label, reason)
        if self._first:
            self._writer.write(_NOT_AUTHORIZED)
        self._writer.close()
        return False

    async def read(self, n: int = -1) -> bytes:
        while len(self._buffer) < max(n, 1):
            if self.refused or not await self._next_frame():
                break
        size = len(self._buffer) if n < 0 else min(n, len(self._buffer))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def feed_eof(self) -> None:
        self._reader.feed_eof()


class SnapshotDict(dict):  # type: ignore[type-arg]
    """A dict whose iteration runs over a snapshot.

    amqtt 0.12.1 iterates its subscription table across ``await`` points
    (``_run_broadcast``, ``_handle_client_session``, ``_del_all_subscriptions``)
    while other connections subscribe or go away. The iteration then fails with
    "dictionary changed size during iteration" and the broadcast in progress
    is lost for every subscriber not yet reached (seen in the soak test under
    link cuts). Iterating over a copy is what those loops need.
    """

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(super().keys()))

    def keys(self):  # type: ignore[no-untyped-def]
        return list(super().keys())

    def items(self):  # type: ignore[no-untyped-def]
        return list(super().items())

    def values(self):  # type: ignore[no-untyped-def]
        return list(super().values())


class _Broker(Broker):  # type: ignore[misc]  # amqtt is untyped
    """amqtt's broker, made to deliver everything it acknowledged.

    amqtt 0.12.1 sends PUBACK once a PUBLISH is in the session's delivery queue,
    and broadcasts from that queue in the client's loop, which ends when the
    client disconnects: a publisher that leaves right after its PUBACKs (as
    ``blo-pub --send`` does) had about half of 200 alerts never fanned out, to
    the archive either (tests/test_amqtt_facts.py, fact 8). Before amqtt ends
    the session, what is left in the queue goes through amqtt's own delivery
    path (topic checks, ACL, broadcast, retain). A session a node's newer link
    took over stays connected (``_keep_connected``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Handlers whose link's loop runs: a session held by one of them is live.
        self._looping: set[Any] = set()

    async def _publish_retained_messages_for_subscription(  # type: ignore[no-untyped-def]
        self, subscription, session
    ):
        """Retained messages for one of ``session``'s own subscriptions, and only those,
        when it subscribes (not again at each reconnect).

        amqtt 0.12.1 calls this at every connect for *every* filter any session
        holds, so a client subscribed to ``blo/country/kh`` alone was handed
        ``blo/trust/kh/keyset`` because someone else had subscribed to it; and it
        sends retained messages past the ACL. Here a filter counts only if this
        session holds it, and each retained topic must match it and pass the
        node's receive rule (tests/test_trust_retained.py, with mosquitto_sub).
        """
        if not _SUBSCRIBING.get():
            # amqtt also calls this at every connect of a kept session. Retained
            # messages come with a SUBSCRIBE (MQTT 3.1.1 3.3.1.3; Mosquitto does so):
            # what changed while the node was away is queued for its session anyway,
            # and a tablet on a link cut every few seconds paid its country's keyset
            # and revocation list at every reconnect (tests/test_trust_retained.py).
            return
        topic_filter = subscription[0]
        held = [
            q
            for s, q in self._subscriptions.get(topic_filter, ())
            if s.client_id == session.client_id
        ]
        handler = self._get_handler(session)
        if not held or handler is None:
            return
        tasks = []
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            if not await self._topic_filtering(session, topic, Action.RECEIVE):
                continue
            level = min(held[0], retained.qos if retained.qos is not None else held[0])
            publish = handler.mqtt_publish(retained.topic, retained.data, level, retain=True)
            tasks.append(asyncio.ensure_future(publish))
        if tasks:
            await asyncio.wait(tasks)

    async def _handle_subscription(self, client_session, handler, subscribe_waiter):  # type: ignore[no-untyped-def]
        token = _SUBSCRIBING.set(True)
        try:
            await super()._handle_subscription(client_session, handler, subscribe_waiter)
        finally:
            _SUBSCRIBING.reset(token)

    async def _handle_disconnect(self, client_session, handler, disconnect_waiter):  # type: ignore[no-untyped-def]
        self._looping.discard(handler)
        queue = client_session.delivered_message_queue
        while not queue.empty():
            taken = asyncio.get_running_loop().create_future()
            taken.set_result(queue.get_nowait())
            await self._handle_message_delivery(client_session, handler, taken)
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)
        # The old link of a take-over may end after the new link's loop began; but
        # if that newer link has ended too, the node is away and its session stays
        # disconnected (marked connected, it would be sent to a closed link and
        # amqtt would drop the messages after its PUBACK wait, not queue them).
        held = self._sessions.get(client_session.client_id)
        if (
            held is not None
            and held[0] is client_session
            and held[1] is not handler
            and held[1] in self._looping
        ):
            await self._keep_connected(client_session)

    async def _client_message_loop(self, client_session, handler):  # type: ignore[no-untyped-def]
        """The link's loop, on a session that is connected (``_keep_connected``)."""
        self._looping.add(handler)
        try:
            await self._keep_connected(client_session)
            await super()._client_message_loop(client_session, handler)
        finally:
            self._looping.discard(handler)

    async def _keep_connected(self, client_session: Any) -> None:
        """Mark a session that a live link holds connected, and send what was queued.

        At a take-over (a node's new link before its old one closed) amqtt 0.12.1
        ends the old link, whose end marks the shared session disconnected, and
        attaches the session to the new link without connecting it again: the link
        stayed up and everything for it went to the offline queue until its next
        reconnect (tests/test_bad_clients.py). The old link's end may run before
        the new link's loop begins or after it, so both places call this.
        """
        if not client_session.transitions.is_connected():
            client_session.transitions.connect()
            await self._publish_session_retained_messages(client_session)


def _server_context(settings: BrokerSettings) -> ssl.SSLContext:
    pki = settings.pki
    cert = pki / "servers" / settings.server / "tls.crt"
    key = pki / "servers" / settings.server / "tls.key"
    cas = [pki / "root" / "ca.crt", *sorted((pki / "roots").glob("*.crt"))]
    for path in (cert, key, cas[0]):
        if not path.exists():
            raise BrokerError(
                f"{path} is missing: run 'blo-certs server --dir {pki} {settings.server} "
                "--host HOSTNAME' (or 'blo-certs init') first"
            )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED  # amqtt would use CERT_OPTIONAL
    try:
        context.load_cert_chain(cert, key)
        context.load_verify_locations(cadata="".join(p.read_text() for p in cas))
    except (ssl.SSLError, OSError) as exc:
        raise BrokerError(f"cannot load the broker's TLS files from {pki}: {exc}") from None
    return context


def _rules_config(registry: Registry) -> dict[str, dict[str, list[str]]]:
    return {
        node: {k: list(v) for k, v in asdict(rules).items() if k != "node"}
        for node, rules in registry.rules.items()
    }


class EmbeddedBroker:
    """amqtt with the project's TLS, identity, ACL and limits. ``await start()``, ``stop()``."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.registry: Registry | None = None
        self.port = 0
        self._amqtt: Broker | None = None
        self._server: asyncio.Server | None = None
        self._watch: asyncio.Task[None] | None = None
        self._live: dict[str, set[asyncio.StreamWriter]] = {}
        self._keyset_stamp = 0.0

    async def start(self) -> None:
        """Load the registry, start amqtt and the TLS listener. Raises ``BrokerError``."""
        try:
            self.registry = Registry.load(self.settings.pki, datetime.now(UTC))
        except BloError as exc:
            raise BrokerError(f"cannot load the node registry: {exc}") from None
        self._keyset_stamp = self._stamp()
        context = _server_context(self.settings)
        sslproto.SSLProtocol.max_size = _TLS_READ_BUFFER
        config = {
            "listeners": {"default": {"type": "external", "bind": "127.0.0.1:0"}},
            "plugins": {
                "broker.plugins.CertAuthPlugin": {},
                "broker.plugins.AclPlugin": {"rules": _rules_config(self.registry)},
            },
        }
        self._amqtt = _Broker(config)
        self._amqtt._subscriptions = SnapshotDict()  # see SnapshotDict: an amqtt 0.12.1 bug
        await self._amqtt.start()
        try:
            self._server = await asyncio.start_server(
                self._connected, self.settings.host, self.settings.port, ssl=context
            )
        except OSError as exc:
            await self._amqtt.shutdown()
            raise BrokerError(
                f"cannot listen on {self.settings.host}:{self.settings.port}: {exc.strerror}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        self._watch = asyncio.create_task(self._watch_registry())
        log.info(
            "listening on %s:%d (MQTT 3.1.1 over TLS, client certificates required), %d nodes",
            self.settings.host,
            self.port,
            len(self.registry.nodes),
        )

    async def stop(self) -> None:
        """Close the listener and every connection, then shut amqtt down."""
        if self._watch:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._server:
            self._server.close()
        for writers in self._live.values():
            for writer in writers:
                writer.close()
        if self._amqtt:
            await self._amqtt.shutdown()
        log.info("broker stopped")

    def _stamp(self) -> float:
        path = Path(self.settings.pki) / "trust" / "keyset.msg"
        roots = Path(self.settings.pki) / "roots"
        stamps = [p.stat().st_mtime for p in [path, *roots.glob("*.msg")] if p.exists()]
        return max(stamps, default=0.0)

    async def _watch_registry(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_seconds)
            stamp = self._stamp()
            if stamp == self._keyset_stamp:
                continue
            self._keyset_stamp = stamp
            try:
                registry = Registry.load(self.settings.pki, datetime.now(UTC))
            except BloError as exc:
                log.error("new keyset ignored: %s", exc)
                continue
            self.registry = registry
            assert self._amqtt is not None
            plugin = self._amqtt.plugins_manager.get_plugin("AclPlugin")
            if isinstance(plugin, AclPlugin):
                plugin.update(_rules_config(registry))
            for node, writers in list(self._live.items()):
                entry = registry.nodes.get(node)
                if entry is None or entry.revoked is not None:
                    log.warning("dropping %s: revoked in the new keyset", node)
                    for writer in writers:
                        writer.close()
            log.info("registry reloaded: %d nodes", len(registry.nodes))

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        assert self.registry is not None
        assert self._amqtt is not None
        who = self.registry.identify(der)
        if isinstance(who, str):
            log.warning("refused %s:%s: %s", peer[0], peer[1], who)
            writer.close()
            return
        node = who.node.node
        label = f"{node} ({peer[0]}:{peer[1]})"
        guarded = GuardedReader(reader, writer, who, self.settings.max_packet, label)
        self._live.setdefault(node, set()).add(writer)
        log.info("connected %s", label)
        try:
            await self._amqtt.external_connected(guarded, StreamWriterAdapter(writer), "default")
        except Exception:  # amqtt's own errors on a bad stream; the broker goes on
            log.exception("connection of %s ended with an error", label)
        finally:
            self._live.get(node, set()).discard(writer)
            if not writer.is_closing():
                writer.close()
            log.info("disconnected %s", label)
