"""GeoJSON, KML and CoT: coordinate order and types, the exact position, and the facts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import pytest
from netsim import Net, reference_alert

from interchange import ExportError
from interchange.cot import COT_TYPE
from interchange.export import export, select
from interchange.kml import KML
from schemas import Agency, Attachment, Crime, Incident, Item, Position, Scope, Unit, open_envelope

NOW = datetime(2026, 6, 21, 3, 0, tzinfo=UTC)
LAT, LON = 11.0812345, 106.1798765

INCIDENT = Incident(
    crime=Crime.DRUG_TRAFFICKING,
    occurred=datetime(2026, 6, 20, 5, 40, tzinfo=UTC),
    position=Position(lat=LAT, lon=LON, accuracy_m=12),
    place="Bavet",
    items=(Item(substance="methamphetamine", form="crystal", quantity=1.9, unit=Unit.KG),),
    persons_detained=2,
    agencies=(Agency.CUSTOMS,),
    attachments=(Attachment(sha256=b"\x11" * 32, size=2048, media_type="image/jpeg"),),
)


def held() -> list[tuple[object, object]]:
    net = Net()
    body, scope, issued, expires = reference_alert()
    out = []
    for data in (
        net.send("kh-blo-bavet", INCIDENT, Scope.country("kh")),
        net.send("kh-nacd", body, scope, issued=issued, expires=expires),
    ):
        sealed = open_envelope(data)
        out.append((sealed.header, sealed.decode_body()))
    return out


def test_geojson_is_lon_lat_with_the_facts() -> None:
    (_, data), = export(held(), "geojson", NOW)  # fmt: skip
    collection = json.loads(data)
    assert collection["type"] == "FeatureCollection"
    incident, alert = collection["features"]
    assert incident["type"] == "Feature"
    assert incident["geometry"] == {"type": "Point", "coordinates": [LON, LAT]}
    assert all(type(c) is float for c in incident["geometry"]["coordinates"])
    props = incident["properties"]
    assert props["office"] == "kh-blo-bavet"
    assert props["crime"] == "drug_trafficking"
    assert props["items"][0] == {
        "substance": "methamphetamine",
        "form": "crystal",
        "quantity": 1.9,
        "unit": "kg",
    }
    assert props["photos"] == [{"sha256": "11" * 32, "size": 2048, "media_type": "image/jpeg"}]
    assert props["persons_detained"] == 2
    assert alert["geometry"]["coordinates"] == [105.4618, 14.3312]
    assert alert["properties"]["office"] == "kh-nacd"


def test_kml_placemarks_carry_the_exact_position() -> None:
    (_, data), = export(held(), "kml", NOW)  # fmt: skip
    root = ET.fromstring(data)
    marks = root.findall(".//k:Placemark", {"k": KML})
    assert len(marks) == 2
    coords = marks[0].findtext("k:Point/k:coordinates", namespaces={"k": KML})
    lon, lat = (float(v) for v in coords.split(","))
    assert (lat, lon) == (LAT, LON)


def test_cot_events_carry_the_position_to_seven_decimals() -> None:
    (_, data), = export(held(), "cot", NOW)  # fmt: skip
    lines = data.decode().splitlines()
    assert len(lines) == 2
    event = ET.fromstring(lines[0])
    assert event.tag == "event"
    assert event.get("type") == COT_TYPE
    assert event.get("uid", "").startswith("blo-alert.")
    assert event.get("time") == "2026-06-21T03:00:00.000Z"
    assert event.get("start") == "2026-06-20T05:40:00.000Z"
    assert event.get("stale") == "2026-06-27T09:12:00.000Z"
    point = event.find("point")
    assert point is not None
    assert (point.get("lat"), point.get("lon")) == ("11.0812345", "106.1798765")
    assert point.get("ce") == "12.0"
    assert "kh-blo-bavet" in ET.tostring(event.find("detail"), encoding="unicode")


def test_selection_by_id_and_since() -> None:
    messages = held()
    alert_id = messages[1][0].msg_id.hex()
    assert select(messages, [alert_id[:8]], None) == [messages[1]]
    assert select(messages, [], datetime(2026, 6, 20, 9, 0, tzinfo=UTC)) == [messages[0]]
    with pytest.raises(ExportError, match="no message"):
        select(messages, ["ffffffffff"], None)
    with pytest.raises(ExportError, match="CAP carries alerts only"):
        export(messages[:1], "cap", NOW)
