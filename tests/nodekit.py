"""Running node clients for the tests, each with its own data folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from brokers import Network

from certs import EnrolmentBundle
from subscriber import NodeClient


def wait_for(predicate: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


class Nodes:
    """Running clients of a test network, each with its own data folder."""

    def __init__(self, network: Network, port: int, root: Path) -> None:
        self.network, self.port, self.root = network, port, root
        self.running: dict[str, NodeClient] = {}

    def folder(self, node: str) -> Path:
        return self.root / "nodes" / node

    def start(self, node: str, port: int | None = None) -> NodeClient:
        client = NodeClient(
            EnrolmentBundle.load(self.network.bundle(node)),
            "127.0.0.1",
            port or self.port,
            self.folder(node),
            gap_grace=timedelta(seconds=1),
            tick=0.2,
            catch_up_every=3.0,
        )
        client.start()
        self.running[node] = client
        return client

    def stop(self, node: str) -> None:
        self.running.pop(node).stop()

    def stop_all(self) -> None:
        for node in list(self.running):
            self.stop(node)
