"""Errors of the broker package, under the library's one base error::

    BloError                  (schemas.errors)
    └── BrokerError           the broker cannot start or run as configured
        └── ConfigError       a configuration file, variable or flag is wrong

Errors of amqtt, ssl and sqlite3 are translated where the broker calls them
(embedded.py, archive.py, config.py).
"""

from __future__ import annotations

from schemas import BloError

__all__ = ["BrokerError", "ConfigError"]


class BrokerError(BloError):
    """The broker or its archive cannot start or keep running as configured."""


class ConfigError(BrokerError):
    """A configuration value is wrong; the message names the file, variable or flag."""
