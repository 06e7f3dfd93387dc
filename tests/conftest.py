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
