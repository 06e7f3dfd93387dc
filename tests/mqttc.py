"""A small synchronous paho client for tests: connect, subscribe, publish, collect.

Every wait is bounded; nothing here retries forever.
"""

from __future__ import annotations

import queue
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from certs import EnrolmentBundle

WAIT = 5.0


def tls_files(bundle: EnrolmentBundle, folder: Path) -> tuple[str, str, str]:
    """The bundle's CA, certificate and key as files (paths as strings)."""
    ca, cert, key = bundle.write_tls(folder)
    return str(ca), str(cert), str(key)


class TestClient:
    """One MQTT 3.1.1 connection over TLS with a node's enrolment bundle."""

    __test__ = False  # not a test class

    def __init__(
        self,
        bundle: Path,
        port: int,
        *,
        client_id: str | None = None,
        clean: bool = False,
        certificate: tuple[str, str, str] | None = None,
        ca: str | None = None,
    ) -> None:
        self.bundle = EnrolmentBundle.load(bundle)
        self.node = self.bundle.node
        self.port = port
        folder = Path(tempfile.mkdtemp(prefix=f"tls-{self.node}-"))
        files = certificate or tls_files(self.bundle, folder)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id if client_id is not None else self.node,
            clean_session=clean,
            protocol=mqtt.MQTTv311,
        )
        self.client.tls_set(
            ca_certs=ca or files[0],
            certfile=files[1],
            keyfile=files[2],
            cert_reqs=ssl.CERT_REQUIRED,
        )
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self._connected = threading.Event()
        self._topics: dict[str, int] = {}
        self._subacks: dict[int, list[Any]] = {}
        self._suback_event = threading.Condition()
        self.connect_rc: Any = None
        self.session_present = False
        self.disconnected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload, m.retain))
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connect_rc = rc
        self.session_present = bool(flags.session_present)
        # A broker that lost the session (amqtt after a restart) lost the subscriptions too.
        if not rc.is_failure and not flags.session_present:
            for topic, qos in self._topics.items():
                client.subscribe(topic, qos)
        self._connected.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        with self._suback_event:
            self._subacks[mid] = list(codes)
            self._suback_event.notify_all()

    def connect(self, timeout: float = WAIT) -> bool:
        """Connect; True if the broker accepted within ``timeout``."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        return self._connected.wait(timeout) and not self.connect_rc.is_failure

    def subscribe(self, topic: str, qos: int = 1, timeout: float = WAIT) -> bool | None:
        """True if granted, False if refused, None if no SUBACK came."""
        self._topics[topic] = qos
        _, mid = self.client.subscribe(topic, qos)
        with self._suback_event:
            self._suback_event.wait_for(lambda: mid in self._subacks, timeout)
        codes = self._subacks.get(mid)
        return None if codes is None else not codes[0].is_failure

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Publish and wait for the PUBACK (which amqtt sends even for a denied publish)."""
        info = self.client.publish(topic, payload, qos, retain)
        try:
            info.wait_for_publish(WAIT)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def collect(self, quiet: float = 0.5, total: float = WAIT) -> list[tuple[str, bytes, bool]]:
        """Messages received until none arrive for ``quiet`` seconds (at most ``total``)."""
        out = []
        import time

        deadline = time.monotonic() + total
        while time.monotonic() < deadline:
            try:
                out.append(self.messages.get(timeout=quiet))
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
