"""blo-alert broker: the embedded amqtt broker, Mosquitto's configuration, and the archive.

It stands above ``schemas`` (wire contract) and ``certs`` (identity and trust)
and imports only their public API. ``blo-broker`` (cli.py) is its command line.
"""

from broker.archive import ArchiveStore
from broker.archive_service import ArchiveService
from broker.config import BrokerSettings, load_settings
from broker.embedded import EmbeddedBroker
from broker.errors import BrokerError, ConfigError
from broker.local import EmbeddedThread, MosquittoProcess, free_port, mosquitto_binary
from broker.mosquitto import write_mosquitto

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
