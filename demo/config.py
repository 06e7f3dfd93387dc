"""The demo's one configuration object: defaults, then ``BLO_DEMO_*`` environment, then flags."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from broker.config import merge_settings
from schemas import BloError

__all__ = ["DemoError", "DemoSettings", "load_settings"]


class DemoError(BloError):
    """The demo could not run as asked; the message says why and what to do."""


class DemoSettings(BaseModel):
    """Everything ``blo-demo`` needs to run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker: Literal["amqtt", "mosquitto"] = "amqtt"
    #: Language of headlines and office names in the view.
    lang: Literal["en", "km"] = "en"
    #: Office tablets: Cambodian BLOs plus Viet Nam's office facing Bavet.
    offices: int = Field(13, ge=3, le=500)
    #: Keep everything here (PKI, inboxes, archive) instead of a temporary folder.
    dir: Path | None = None
    live: bool = True
    #: Seconds the whole story may take before the run counts as failed.
    timeout: float = Field(120.0, gt=0)
    #: Mean seconds between cuts of the flaky office's link.
    cut_every: float = Field(3.0, gt=0)
    #: Seconds the flaky office is off the air while NACD sends its alert.
    outage: float = Field(4.0, ge=0)
    #: Seconds between the steps of the story, so a viewer can follow it.
    pace: float = Field(1.0, ge=0)
    #: Seconds between a client's outbox and housekeeping passes.
    tick: float = Field(0.2, gt=0)
    seed: int = 7
    #: Serve HQ's web page (web/) on 127.0.0.1 while the story plays, on this port.
    web: bool = False
    web_port: int = Field(8080, ge=0, le=65535)


def load_settings(env: Mapping[str, str], flags: Mapping[str, Any]) -> DemoSettings:
    """Merge ``BLO_DEMO_*`` variables and ``flags`` (None values are ignored).

    Raises ``ConfigError`` (a ``BloError``) naming the setting at fault.
    """
    return merge_settings(DemoSettings, "BLO_DEMO_", {}, env, flags)
