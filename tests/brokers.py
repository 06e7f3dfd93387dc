"""Real brokers for the tests: the embedded amqtt broker and Mosquitto, on loopback.

Each test gets its own PKI in a temporary folder and its own broker on an
ephemeral port. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.config import BrokerSettings
from broker.local import EmbeddedThread, MosquittoProcess, free_port, mosquitto_binary
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


def require_mosquitto() -> None:
    """Skip where Mosquitto is not installed; on CI, fail (.ci/run installs it)."""
    if mosquitto_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed: .ci/run installs it with apt-get")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")


def mosquitto_process(network: Network, port: int, **kwargs: int) -> MosquittoProcess:
    """Mosquitto for a test network."""
    require_mosquitto()
    return MosquittoProcess(network.kh, network.root / "mosquitto", port, **kwargs)


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


@contextlib.contextmanager
def mosquitto_broker(network: Network, **kwargs: int) -> Iterator[BrokerHandle]:
    process = mosquitto_process(network, free_port(), **kwargs)
    process.start()
    try:
        yield BrokerHandle("mosquitto", process.port, network, process)
    finally:
        process.stop()
