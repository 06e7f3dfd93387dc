"""Spots as KML 2.2 placemarks, for Google Earth and GIS desks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from xml.etree import ElementTree as ET

from interchange.spots import Spot

__all__ = ["KML", "kml_bytes"]

KML = "http://www.opengis.net/kml/2.2"


def kml_bytes(found: Iterable[Spot]) -> bytes:
    """A KML document with one Placemark per spot (coordinates "lon,lat", as KML wants)."""
    ET.register_namespace("", KML)

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        el = ET.SubElement(parent, f"{{{KML}}}{tag}")
        el.text = text
        return el

    root = ET.Element(f"{{{KML}}}kml")
    doc = sub(root, "Document")
    sub(doc, "name", "blo-alert export")
    for spot in found:
        mark = sub(doc, "Placemark", None)
        mark.set("id", f"blo-{spot.msg_id}")
        sub(mark, "name", spot.title)
        sub(mark, "description", f"{spot.kind} from {spot.office}, {spot.crime}")
        sub(sub(mark, "TimeStamp"), "when", spot.occurred.isoformat())
        data = sub(mark, "ExtendedData")
        values = {"id": spot.msg_id, "office": spot.office, "crime": spot.crime, **spot.facts}
        for name, value in values.items():
            field = sub(data, "Data")
            field.set("name", name)
            sub(field, "value", value if isinstance(value, str) else json.dumps(value))
        pos = spot.position
        # repr keeps every digit the wire carried: the exact position, not a rounding.
        sub(sub(mark, "Point"), "coordinates", f"{pos.lon!r},{pos.lat!r}")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
