"""The one way a node's MQTT connection is made: paho, MQTT 3.1.1, mTLS from its bundle.

Used by the node client and by the archive (which is a node too), so both get
the same session rules: client id = node id, a persistent session, manual
acknowledgement (store first, then ack), and a patient connect timeout.

TLS comes from ``EnrolmentBundle.tls_context``: the private key is loaded into
memory and never left in a file. ``watch_link`` says why a link is not up (no
broker, wrong port, unknown CA, a refused certificate, a bad host name): paho
retries in silence, logging such failures only to its own logger if at all.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from certs import EnrolmentBundle

__all__ = [
    "Incoming",
    "LinkWatch",
    "describe_failure",
    "guarded",
    "keep_tls_session",
    "node_client",
    "relink",
    "watch_link",
]


def node_client(bundle: EnrolmentBundle, *, max_reconnect_delay: int = 30) -> mqtt.Client:
    """A paho client for ``bundle``'s node; callbacks are the caller's to set.

    Raises ``BundleError`` if the bundle's certificate or key cannot be loaded.
    """
    context = ResumingContext(bundle.tls_context())
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=bundle.node,
        clean_session=False,
        protocol=mqtt.MQTTv311,
        manual_ack=True,
    )
    client.tls_set_context(context)  # type: ignore[arg-type]  # paho needs wrap_socket only
    client.reconnect_delay_set(min_delay=1, max_delay=max_reconnect_delay)
    # A busy broker may take seconds to answer CONNECT; giving up after paho's
    # default 5 s makes a second connection that takes the first one's session over.
    client.connect_timeout = 30.0
    client.max_inflight_messages_set(100)
    return client


class ResumingContext:
    """An ``SSLContext`` that offers the link's last TLS session on the next connect.

    A resumed handshake skips both certificate chains: about 3 KB less per
    reconnect on a metered link that is cut often (bench/run.py's ``link``). The
    server decides whether to resume; it falls back to a full handshake by itself.
    The broker still learns the node's certificate (it is in the session), so the
    embedded broker's per-connection registry check holds on a resumed link too.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.session: ssl.SSLSession | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context, name)

    def wrap_socket(self, sock: socket.socket, **kwargs: Any) -> ssl.SSLSocket:
        """``SSLContext.wrap_socket``, offering the session kept from the last link."""
        if self.session is not None:
            kwargs.setdefault("session", self.session)
        return self.context.wrap_socket(sock, **kwargs)


def keep_tls_session(client: mqtt.Client) -> bool:
    """Keep ``client``'s current TLS session for its next connect (call once connected:
    TLS 1.3 tickets come after the handshake). Returns whether this link was resumed."""
    context = getattr(client, "_ssl_context", None)
    sock = client.socket()
    if not isinstance(context, ResumingContext) or not isinstance(sock, ssl.SSLSocket):
        return False
    with contextlib.suppress(ssl.SSLError, ValueError):
        if sock.session is not None:
            context.session = sock.session
    return bool(sock.session_reused)


def describe_failure(exc: BaseException | None, host: str, port: int) -> str:
    """A sentence saying why a connection to ``host:port`` could not be made, and what to do."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"host name {host!r} not found ({exc.strerror}): check -h/--host"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens on {where} (connection refused): broker down, wrong -p/--port?"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the broker at {where} is not trusted ({exc.verify_message}): its certificate is "
            "not from this bundle's PKI, or not issued for this host name"
        )
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        if "CERTIFICATE" in reason.upper():
            return (
                f"the broker at {where} refused this node's certificate ({reason}): "
                "revoked, expired or of another PKI? ask the operator"
            )
        return f"TLS with {where} failed ({reason}): is that port the broker's TLS port?"
    if isinstance(exc, TimeoutError):
        return f"no answer from {where} in time: a firewall, or a broker too busy"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {exc.strerror or exc}"
    if exc is not None:
        return f"cannot connect to {where}: {exc}"
    return f"cannot connect to {where}"


class LinkWatch:
    """The last reason a link is not up, logged once per change rather than per retry."""

    def __init__(
        self,
        name: str,
        log: logging.Logger,
        on_change: Callable[[str | None], None] | None = None,
        client: mqtt.Client | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self._up = False
        self.log = log
        self.on_change = on_change
        self.last: str | None = None
        self._paho_error: str | None = None
        self._lock = threading.Lock()

    def failed(self, reason: str) -> None:
        """The link is down for ``reason``; said once until the reason changes."""
        with self._lock:
            if reason == self.last:
                return
            self.last = reason
        self.log.warning("%s: link not up: %s; retrying", self.name, reason)
        self._changed(reason)

    def lost(self, rc: Any) -> None:
        """A connection ended with reason code ``rc``: say what paho saw."""
        detail, self._paho_error = self._paho_error, None
        was_up, self._up = self._up, False
        if detail is None and self.last is not None:
            return  # a failed attempt, already told (a refused CONNECT ends so too)
        if was_up:
            reason = f"link to {self.where} lost ({rc})"
        else:
            # TLS held, then the broker hung up before its CONNACK: the embedded
            # broker's guard does so with a revoked or unknown node.
            reason = f"the broker at {self.where} closed the connection before accepting it"
        if detail:
            reason += f": {detail}"
        if not was_up or "CERTIFICATE" in (detail or "").upper():
            reason += ": this node's certificate refused (revoked, expired?): ask the operator"
        self.failed(reason)

    @property
    def where(self) -> str:
        """The broker's address, as the client was given it."""
        return f"{self.client.host}:{self.client.port}" if self.client else "the broker"

    def up(self) -> None:
        """The link is up: the next failure is news again."""
        self._up = True
        with self._lock:
            was, self.last = self.last, None
            self._paho_error = None
        if was is not None:
            self._changed(None)

    def paho_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        """paho's own log: its errors become the reason of the next disconnect."""
        if level == mqtt.MQTT_LOG_ERR:
            self._paho_error = text
        self.log.debug("%s: paho: %s", self.name, text)

    def connect_failed(self, client: mqtt.Client, userdata: Any) -> None:
        """paho's ``on_connect_fail``: called inside its ``except OSError``, so the
        exception is still at hand (paho passes none)."""
        self.failed(describe_failure(sys.exc_info()[1], client.host, client.port))

    def _changed(self, reason: str | None) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(reason)
        except Exception:  # reporting must never break paho's loop
            self.log.exception("%s: could not record the link state", self.name)


def watch_link(
    client: mqtt.Client,
    name: str,
    log: logging.Logger,
    on_change: Callable[[str | None], None] | None = None,
) -> LinkWatch:
    """Attach a ``LinkWatch`` to ``client``'s connect failures and paho log."""
    watch = LinkWatch(name, log, on_change, client)
    client.on_connect_fail = watch.connect_failed
    client.on_log = watch.paho_log
    return watch


def guarded(
    callback: Callable[..., None], name: str, fault: Callable[[str, BaseException], None]
) -> Callable[..., None]:
    """``callback`` for paho, with any exception it raises handed to ``fault`` (which
    logs and counts it): raised into paho, it would end paho's thread and the link."""

    def call(*args: Any) -> None:
        try:
            callback(*args)
        except Exception as exc:  # logged and counted by ``fault``, never silent
            fault(f"paho {name}", exc)

    return call


def relink(client: mqtt.Client, host: str, port: int, stop: threading.Event) -> None:
    """Drop the link and make it again, so the broker redelivers what is unacknowledged.

    An unacknowledged QoS 1 message holds one of the broker's in-flight slots
    (paho's 100) until the session reconnects: a batch that cannot be stored
    must not leave the link stalled behind it. Not on paho's own thread.
    """
    if stop.is_set():
        return
    client.disconnect()
    client.loop_stop()
    if stop.is_set():
        return
    client.connect_async(host, port, keepalive=30)
    client.loop_start()


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message as paho handed it over, waiting for a committer thread to check and
    store it; ``link`` counts connections (an ack is valid only on the link it came by)."""

    link: int
    topic: str
    payload: bytes
    mid: int
    qos: int
