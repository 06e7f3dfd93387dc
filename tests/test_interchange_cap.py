"""CAP 1.2 out and in: schema-valid export, round trip of the reference alert, hostile files."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from interchange import CapError, UnmappableError, UnsafeXmlError
from interchange.cap import CAP, cap_bytes, cap_element, document_from_cap, validate
from schemas import draft_from_document
from tests.netsim import reference_document

_NS = {"cap": CAP}
ID = "0123456789abcdef0123456789abcdef"


def _export(doc: dict[str, object] | None = None) -> bytes:
    return cap_bytes(cap_element(doc or reference_document(), ID))


def test_export_validates_against_the_oasis_schema() -> None:
    root = ET.fromstring(_export())
    validate(root)  # raises on the first violation
    infos = root.findall("cap:info", _NS)
    assert [i.findtext("cap:language", namespaces=_NS) for i in infos] == ["en", "km"]
    assert root.findtext("cap:sent", namespaces=_NS) == "2026-06-20T09:12:00+07:00"
    circle = infos[0].findtext("cap:area/cap:circle", namespaces=_NS)
    assert circle == "14.3312,105.4618 0.015"


def test_the_schema_check_refuses_what_cap_forbids() -> None:
    root = ET.fromstring(_export())
    root.find("cap:sent", _NS).text = "2026-06-20T02:12:00Z"  # CAP wants an explicit offset
    with pytest.raises(CapError, match="sent"):
        validate(root)


def test_export_then_import_gives_the_same_alert() -> None:
    doc = reference_document()
    back = document_from_cap(_export(doc), "ref.xml")
    full = {**back.document, "sender": doc["sender"], "sent": doc["sent"]}
    got, want = draft_from_document(full), draft_from_document(doc)
    assert got.body == want.body  # Khmer text, incident, position, items: all of it
    assert (got.scope, got.expires) == (want.scope, want.expires)
    assert (back.identifier, back.sender) == (ID, "kh-nacd")


def test_an_update_keeps_its_reference() -> None:
    doc = {**reference_document(), "msg_type": "update", "references": ["ab" * 16]}
    back = document_from_cap(_export(doc))
    assert back.document["references"] == ["ab" * 16]
    assert back.document["msg_type"] == "update"


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol3;</identifier></alert>"""


def test_an_xml_bomb_is_refused() -> None:
    with pytest.raises(UnsafeXmlError, match=r"bomb\.xml: refused"):
        document_from_cap(BOMB, "bomb.xml")


def test_an_external_entity_is_refused_without_reading_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret}">]>'
        f'<alert xmlns="{CAP}"><identifier>&x;</identifier></alert>'
    ).encode()
    before = secret.stat().st_atime_ns
    with pytest.raises(UnsafeXmlError) as caught:
        document_from_cap(xxe, "xxe.xml")
    assert "TOP-SECRET" not in str(caught.value)
    assert secret.stat().st_atime_ns == before


def test_malformed_and_invalid_cap_are_refused() -> None:
    with pytest.raises(CapError, match="not well-formed"):
        document_from_cap(b"<alert", "cut.xml")
    root = ET.fromstring(_export())
    root.remove(root.find("cap:status", _NS))
    with pytest.raises(CapError, match=r"not valid CAP 1\.2"):
        document_from_cap(cap_bytes(root), "nostatus.xml")


def _edited(path: str, value: str) -> bytes:
    root = ET.fromstring(_export())
    for el in root.findall(path, _NS):
        el.text = value
    return cap_bytes(root)


@pytest.mark.parametrize(
    ("path", "value", "why"),
    [
        ("cap:status", "Draft", "status Draft"),
        ("cap:msgType", "Ack", "msgType Ack"),
        ("cap:info/cap:language", "fr-FR", "language fr"),
        ("cap:info/cap:area/cap:circle", "1,2 3 4,5 6", "is not 'lat,lon radius_km'"),
    ],
)
def test_what_cannot_map_is_refused_by_name(path: str, value: str, why: str) -> None:
    with pytest.raises(CapError, match=why):
        document_from_cap(_edited(path, value), "x.xml")


def test_infos_that_disagree_are_refused() -> None:
    root = ET.fromstring(_export())
    root.findall("cap:info", _NS)[1].find("cap:severity", _NS).text = "Minor"
    with pytest.raises(UnmappableError, match="differ in severity"):
        document_from_cap(cap_bytes(root))


def test_a_polygon_is_refused() -> None:
    root = ET.fromstring(_export())
    for area in root.iter(f"{{{CAP}}}area"):
        poly = ET.Element(f"{{{CAP}}}polygon")
        poly.text = "1,1 1,2 2,2 1,1"
        area.insert(1, poly)
    with pytest.raises(UnmappableError, match="polygon"):
        document_from_cap(cap_bytes(root))


def test_a_foreign_cap_alert_maps_what_it_can() -> None:
    foreign = f"""<alert xmlns="{CAP}"><identifier>X-1</identifier><sender>a@b</sender>
    <sent>2026-06-20T09:00:00-05:00</sent><status>Exercise</status><msgType>Alert</msgType>
    <scope>Public</scope><info><category>Safety</category><event>Flood</event>
    <urgency>Expected</urgency><severity>Moderate</severity><certainty>Likely</certainty>
    <web>http://example.org</web></info></alert>""".encode()
    got = document_from_cap(foreign)
    assert got.document["category"] == "other"
    assert got.document["text"] == {"en": {"headline": "Flood"}}
    assert "scope" not in got.document  # given with --scope
    assert "info/web" in got.dropped
    assert json.dumps(got.document)
