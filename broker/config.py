"""The broker's one configuration object, from a TOML file, the environment and flags.

Precedence, lowest first: defaults, ``[broker]`` in the TOML file, variables
``BLO_BROKER_<FIELD>`` (for example ``BLO_BROKER_PORT=8883``), command-line
flags. The result is frozen and passed down explicitly.

Example ``broker.toml``::

    [broker]
    host = "0.0.0.0"
    port = 8883
    pki = "/srv/blo/pki"
    server = "broker"          # the certificate in pki/servers/broker/
    data = "/var/lib/blo"      # the archive's SQLite file lives here
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.errors import ConfigError

__all__ = ["BrokerSettings", "load_settings", "merge_settings"]

M = TypeVar("M", bound=BaseModel)


class BrokerSettings(BaseModel):
    """Everything ``blo-broker`` needs to run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8883, ge=0, le=65535)
    pki: Path = Path("pki")
    server: str = "broker"
    data: Path = Path("broker-data")
    #: Largest MQTT packet accepted, in bytes (amqtt itself has no limit).
    max_packet: int = Field(512 * 1024, ge=1024, le=256 * 1024 * 1024)
    #: Run the archive in the same process.
    archive: bool = True
    #: How often to look for a new keyset in the PKI folder, in seconds.
    reload_seconds: float = Field(2.0, gt=0)

    @property
    def archive_db(self) -> Path:
        """The archive's SQLite file."""
        return self.data / "archive.sqlite3"


def load_settings(
    file: Path | None, env: Mapping[str, str], flags: Mapping[str, Any]
) -> BrokerSettings:
    """Merge defaults, ``file``, ``env`` and ``flags`` (None values are ignored)."""
    values: dict[str, Any] = {}
    if file is not None:
        try:
            table = tomllib.loads(file.read_text("utf-8")).get("broker", {})
        except FileNotFoundError:
            raise ConfigError(f"{file}: no such configuration file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        values.update(table)
    return merge_settings(BrokerSettings, "BLO_BROKER_", values, env, flags, source=file)


def merge_settings(
    model: type[M],
    prefix: str,
    values: Mapping[str, Any],
    env: Mapping[str, str],
    flags: Mapping[str, Any],
    *,
    source: Path | None = None,
) -> M:
    """``values`` (from a file), then ``PREFIX_NAME`` variables, then flags (None ignored).

    Raises ``ConfigError`` naming the setting (and ``source``, the file) at fault.
    """
    merged = dict(values)
    for name in model.model_fields:
        key = f"{prefix}{name.upper()}"
        if key in env:
            merged[name] = env[key]
    merged.update({k: v for k, v in flags.items() if v is not None})
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        origin = f" (from {source})" if source else ""
        raise ConfigError(f"setting {where!r}{origin}: {first['msg']}") from None
