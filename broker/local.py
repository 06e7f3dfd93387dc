"""Brokers run beside the caller on loopback: the demo, the benchmarks and the tests.

``EmbeddedThread`` runs the embedded broker on an event loop of its own, so
synchronous code (paho clients, a rich live view) can share the process.
``MosquittoProcess`` runs Mosquitto from the configuration ``write_mosquitto``
generates. Every wait is bounded; failures raise ``BrokerError`` naming the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from broker.config import BrokerSettings
from broker.embedded import EmbeddedBroker
from broker.errors import BrokerError
from broker.mosquitto import write_mosquitto

__all__ = ["EmbeddedThread", "MosquittoProcess", "free_port", "mosquitto_binary"]


def free_port() -> int:
    """An ephemeral loopback port, for a broker (Mosquitto) that cannot bind port 0 itself."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str | None:
    """Mosquitto's path, or None if it is not installed."""
    path = shutil.which("mosquitto")
    if path is None and Path("/usr/sbin/mosquitto").exists():
        path = "/usr/sbin/mosquitto"
    return path


class EmbeddedThread:
    """The embedded broker on its own event loop thread: ``start()`` returns its port."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="broker")
        self.broker = EmbeddedBroker(settings)

    def start(self) -> int:
        """Start the loop and the broker; raises ``BrokerError`` if it cannot listen."""
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.broker.start(), self.loop).result(30)
        return self.broker.port

    def stop(self) -> None:
        """Stop the broker and its loop (bounded)."""
        with contextlib.suppress(Exception):  # a broker that failed to start has nothing to stop
            asyncio.run_coroutine_threadsafe(self.broker.stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class MosquittoProcess:
    """Mosquitto, run from the configuration ``blo-broker mosquitto-config`` writes."""

    def __init__(self, pki: Path, folder: Path, port: int, *, max_packet: int = 512 * 1024) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise BrokerError("mosquitto is not installed: apt-get install mosquitto")
        self.binary = binary
        self.port = port
        self.conf = write_mosquitto(
            pki,
            folder,
            host="127.0.0.1",
            port=port,
            user=getpass.getuser(),
            max_packet=max_packet,
        )
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start Mosquitto and wait (up to 10 s) until it accepts connections."""
        with self.log.open("ab") as log:
            # The binary is Mosquitto found on PATH and the file is ours: no outside input.
            self.proc = subprocess.Popen(  # noqa: S603
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise BrokerError(f"mosquitto exited at start (log {self.log}):\n{tail}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise BrokerError(f"mosquitto did not listen on port {self.port} within 10 s: {self.log}")

    def stop(self) -> None:
        """Terminate Mosquitto (it saves its persistence file on a clean exit)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: what a power cut does."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
