"""Running node clients for the tests, each with its own data folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from brokers import Network
from netsim import ALERT, Net

from certs import EnrolmentBundle
from schemas import Accepted, Kind, Scope, WireModel, topics_for
from subscriber import Inbox, NodeClient


def wait_for(predicate: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def stored_alert(
    folder: Path,
    body: WireModel = ALERT,
    *,
    issued: datetime | None = None,
    expires: datetime | None = None,
) -> bytes:
    """An inbox in ``folder`` holding one alert from NACD to Cambodia, accepted by Bavet's
    receiver and stored as the running client stores it; returns its id."""
    net = Net()
    scope = Scope.country("kh")  # an HQ alerts its own country (schemas.authority)
    data = net.send("kh-nacd", body, scope, issued=issued, expires=expires)
    accepted = net.receiver(me="kh-blo-bavet").receive(
        topics_for(Kind.ALERT, scope, "kh-nacd")[0], data, net.now
    )
    assert isinstance(accepted, Accepted), accepted
    inbox = Inbox(folder / "inbox.sqlite3")
    try:
        assert inbox.add(accepted, net.now)
    finally:
        inbox.close()
    return accepted.header.msg_id


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
