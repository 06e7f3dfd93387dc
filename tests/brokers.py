"""Real brokers for the tests: the embedded amqtt broker and Mosquitto, on loopback.

Each test gets its own PKI in a temporary folder and its own broker on an
ephemeral port. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.config import BrokerSettings
from broker.embedded import EmbeddedBroker
from broker.mosquitto import write_mosquitto
from certs import Pki
from schemas import Role

# The test network: Cambodia with its HQ, two BLOs, an analyst, a regional
# coordinator and the archive; Viet Nam with its HQ and the office facing Bavet.
KH_NODES: list[tuple[str, Role, list[str], list[str]]] = [
    ("kh-blo-bavet", Role.BLO, ["kh-vn-bavet"], ["vn-blo-mocbai"]),
    ("kh-blo-poipet", Role.BLO, ["kh-th-poipet"], []),
    ("kh-analyst", Role.OBSERVER, [], []),
    ("kh-rc", Role.REGIONAL, [], []),
    ("kh-archive", Role.ARCHIVE, [], []),
]
VN_NODES: list[tuple[str, Role, list[str], list[str]]] = [
    ("vn-blo-mocbai", Role.BLO, ["kh-vn-bavet"], ["kh-blo-bavet"]),
]


@dataclass
class Network:
    """A test PKI: Cambodia's folder (with Viet Nam's root imported) and Viet Nam's."""

    root: Path
    kh: Path = field(init=False)
    vn: Path = field(init=False)

    def __post_init__(self) -> None:
        self.kh, self.vn = self.root / "kh-pki", self.root / "vn-pki"
        now = datetime.now(UTC)
        vn = Pki(self.vn)
        vn.init("vn", "vn-sodc", now)
        for node, role, regions, peers in VN_NODES:
            vn.issue(node, role, now, regions=regions, counterparts=peers)
        kh = Pki(self.kh)
        kh.init("kh", "kh-nacd", now)
        kh.import_root(self.vn)
        kh.write_bundle("kh-nacd")  # re-issued so HQ's bundle pins Viet Nam's root too
        for node, role, regions, peers in KH_NODES:
            kh.issue(node, role, now, regions=regions, counterparts=peers)
        kh.server("broker", ["localhost", "127.0.0.1"], now)
        # Viet Nam's offices enrol with bundles that also trust Cambodia's CA.
        vn.import_root(self.kh)
        for node in ["vn-sodc", *(n for n, *_ in VN_NODES)]:
            vn.write_bundle(node)

    def bundle(self, node: str) -> Path:
        folder = self.vn if node.startswith("vn-") else self.kh
        return folder / "bundles" / f"{node}.json"


@dataclass
class BrokerHandle:
    """A running broker: which kind, its port, and how to stop or kill it."""

    kind: str
    port: int
    network: Network
    stop: object = None


def free_port() -> int:
    """An ephemeral loopback port for a broker that cannot bind port 0 itself."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedThread:
    """The embedded broker on its own event loop thread."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.broker = EmbeddedBroker(settings)

    def start(self) -> int:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.broker.start(), self.loop).result(15)
        return self.broker.port

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.broker.stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@contextlib.contextmanager
def embedded_broker(network: Network, **overrides: object) -> Iterator[BrokerHandle]:
    settings = BrokerSettings.model_validate(
        {
            "pki": network.kh,
            "port": 0,
            "data": network.root / "data",
            "reload_seconds": 0.2,
            **overrides,
        }
    )
    runner = EmbeddedThread(settings)
    port = runner.start()
    try:
        yield BrokerHandle("amqtt", port, network, runner)
    finally:
        runner.stop()


def mosquitto_binary() -> str:
    path = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed: .ci/run installs it with apt-get")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return path


class MosquittoProcess:
    """Mosquitto run from the configuration blo-broker generates."""

    def __init__(self, network: Network, port: int, max_packet: int = 512 * 1024) -> None:
        self.network = network
        self.port = port
        self.conf = write_mosquitto(
            network.kh,
            network.root / "mosquitto",
            host="127.0.0.1",
            port=port,
            user=getpass.getuser(),
            max_packet=max_packet,
        )
        self.log = network.root / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.conf)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@contextlib.contextmanager
def mosquitto_broker(network: Network, **kwargs: int) -> Iterator[BrokerHandle]:
    process = MosquittoProcess(network, free_port(), **kwargs)
    process.start()
    try:
        yield BrokerHandle("mosquitto", process.port, network, process)
    finally:
        process.stop()
