"""Shared fixtures: an in-memory network for the core, real folders for the PKI."""

from __future__ import annotations

import sys
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
