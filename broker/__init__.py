"""blo-alert broker: the embedded amqtt broker, Mosquitto's configuration, and the archive.

It stands above ``schemas`` (wire contract) and ``certs`` (identity and trust)
and imports only their public API. ``blo-broker`` (cli.py) is its command line.

Names are imported on first use: a broker process that runs no archive never
loads the MQTT client stack the archive needs (paho, the node client), which
keeps the broker's memory down (bench/run.py memory).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.archive import ArchiveStore
    from broker.archive_service import ArchiveService
    from broker.config import BrokerSettings, load_settings
    from broker.embedded import EmbeddedBroker
    from broker.errors import BrokerError, ConfigError
    from broker.local import EmbeddedThread, MosquittoProcess, free_port, mosquitto_binary
    from broker.mosquitto import write_mosquitto

_WHERE = {
    "ArchiveService": "broker.archive_service",
    "ArchiveStore": "broker.archive",
    "BrokerError": "broker.errors",
    "BrokerSettings": "broker.config",
    "ConfigError": "broker.errors",
    "EmbeddedBroker": "broker.embedded",
    "EmbeddedThread": "broker.local",
    "MosquittoProcess": "broker.local",
    "free_port": "broker.local",
    "load_settings": "broker.config",
    "mosquitto_binary": "broker.local",
    "write_mosquitto": "broker.mosquitto",
}

__all__ = [
    "ArchiveService",
    "ArchiveStore",
    "BrokerError",
    "BrokerSettings",
    "ConfigError",
    "EmbeddedBroker",
    "EmbeddedThread",
    "MosquittoProcess",
    "free_port",
    "load_settings",
    "mosquitto_binary",
    "write_mosquitto",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'broker' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
