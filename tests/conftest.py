"""Shared fixtures: an in-memory network for the core, real folders for the PKI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

from netsim import Net

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def net() -> Net:
    """Roots, nodes and keysets of KH, VN and TH (keys generated once per run)."""
    return Net()


@pytest.fixture
def network(tmp_path: Path) -> object:
    """A fresh two-country PKI in this test's temporary folder."""
    from brokers import Network

    return Network(tmp_path)


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker(request: pytest.FixtureRequest, network: object) -> object:
    """Each broker in turn, started for this test on an ephemeral loopback port."""
    from brokers import embedded_broker, mosquitto_broker

    start = embedded_broker if request.param == "amqtt" else mosquitto_broker
    with start(network) as handle:  # type: ignore[operator]
        yield handle


@pytest.fixture
def nodes(broker: object, tmp_path: Path) -> Iterator[object]:
    """Node clients, beside the archive (which publishes the current keysets, retained)."""
    from datetime import timedelta

    from nodekit import Nodes

    from broker.archive_service import ArchiveService
    from certs import EnrolmentBundle, Pki

    archive = ArchiveService(
        EnrolmentBundle.load(broker.network.bundle("kh-archive")),
        "127.0.0.1",
        broker.port,
        tmp_path / "archive.sqlite3",
        trust_source=Pki(broker.network.kh).trust_messages,
        gap_grace=timedelta(seconds=1),
        probe_every=3.0,
    )
    archive.start()
    assert archive.connected.wait(10)
    group = Nodes(broker.network, broker.port, tmp_path)
    group.archive = archive  # type: ignore[attr-defined]
    yield group
    group.stop_all()
    archive.stop()


@pytest.fixture(autouse=True)
def _process_globals_restored() -> Iterator[None]:
    """Put back what a command's ``main`` run in-process sets for the whole process.

    ``blo-sub run`` and ``blo-broker`` install a root log handler bound to the
    stderr of the moment (pytest's capture of this test, closed after it) and
    SIGINT/SIGTERM handlers; left in place, later tests' threads log into a
    closed file ("--- Logging error ---" in another test's stderr).
    """
    import logging
    import signal

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for sig, handler in signals.items():
        signal.signal(sig, handler)
