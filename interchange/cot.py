"""Spots as Cursor on Target 2.0 events, for TAK clients.

Each event: ``type`` b-m-p-s-m (a spot map marker: a reported place, not a tracked
unit), ``uid`` blo-alert.<message id>, ``how`` h-e (entered by a person), ``time``
the export time, ``start`` the incident's time, ``stale`` the message's expiry, a
``point`` to 7 decimals (about 1 cm) with ``ce`` the accuracy in metres, and a
``detail`` with the office as contact and the facts as remarks. Several events are
written one per line, the way TAK streams them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from interchange.spots import Spot

__all__ = ["COT_TYPE", "cot_bytes", "cot_event"]

COT_TYPE = "b-m-p-s-m"
#: CoT's "unknown" for hae, ce and le.
_UNKNOWN = "9999999.0"


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def cot_event(spot: Spot, now: datetime) -> ET.Element:
    """One CoT event for ``spot``, generated at ``now``."""
    pos = spot.position
    event = ET.Element(
        "event",
        version="2.0",
        uid=f"blo-alert.{spot.msg_id}",
        type=COT_TYPE,
        how="h-e",
        time=_time(now),
        start=_time(spot.occurred),
        stale=_time(spot.expires),
    )
    ET.SubElement(
        event,
        "point",
        lat=f"{pos.lat:.7f}",
        lon=f"{pos.lon:.7f}",
        hae=_UNKNOWN,
        ce=_UNKNOWN if pos.accuracy_m is None else f"{float(pos.accuracy_m)}",
        le=_UNKNOWN,
    )
    detail = ET.SubElement(event, "detail")
    ET.SubElement(detail, "contact", callsign=spot.office)
    remarks = ET.SubElement(detail, "remarks")
    remarks.text = f"{spot.title}: " + json.dumps(
        {"crime": spot.crime, **spot.facts}, ensure_ascii=False
    )
    return event


def cot_bytes(found: Iterable[Spot], now: datetime) -> bytes:
    """The spots as CoT events, one XML document per line (UTF-8)."""
    lines = [ET.tostring(cot_event(s, now), encoding="unicode") for s in found]
    return "".join(f"{line}\n" for line in lines).encode()
