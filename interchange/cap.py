"""CAP 1.2 both ways: an alert document as CAP XML, and a CAP file as an alert document.

Out (``cap_element``): one ``info`` per language; our category as ``event`` (CAP's own
category is ``Security``); the incident's facts as ``parameter``s named ``blo:...``;
its position as a ``circle`` "lat,lon radius_km"; times with their UTC offset, as
the schema's pattern requires; the audience as ``restriction`` ("blo-alert scope
..."), since CAP has no notion of ours.

In (``document_from_cap``): untrusted XML is parsed with defusedxml and any DTD is
refused (no entity, so neither a bomb nor an external file can be reached), then
validated against the OASIS schema kept in interchange/data/, then mapped. What
would change the alert's meaning if dropped is refused (UnmappableError); what only
describes the original (its identifier, sender, sent, web, contact, ...) is listed
in ``CapImport.dropped`` so the caller can show it before signing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeET
import xmlschema
from defusedxml import DefusedXmlException

from interchange.errors import CapError, UnmappableError, UnsafeXmlError
from schemas.messages import Category, Lang

__all__ = ["CAP", "CapImport", "cap_bytes", "cap_element", "document_from_cap", "validate"]

CAP = "urn:oasis:names:tc:emergency:cap:1.2"
_NS = {"cap": CAP}
#: Prefix of our parameters, so they cannot collide with a partner's own names.
_P = "blo:"
_RESTRICTION = "blo-alert scope "
#: Alert-level fields CAP carries once per info block; ours are one per alert.
_PER_ALERT = ("urgency", "severity", "certainty", "expires", "event")
#: Elements that only describe the original message: dropped, and shown as dropped.
_DESCRIPTIVE = (
    "identifier", "sender", "sent", "source", "code", "note", "incidents",
    "info/audience", "info/senderName", "info/web", "info/contact", "info/effective",
    "info/onset", "info/eventCode", "info/responseType", "info/resource",
    "info/area/geocode", "info/area/altitude", "info/area/ceiling",
)  # fmt: skip


def cap_element(
    doc: dict[str, Any], identifier: str, references: dict[str, str] | None = None
) -> ET.Element:
    """The alert document ``doc`` (as schemas.document writes it) as a CAP 1.2 element.

    ``references`` maps a referenced id (hex) to its CAP "sender,identifier,sent"
    triple when the caller knows it; otherwise the triple names this alert's sender
    and sent time, the best CAP can be told (our references are bare ids).
    """
    ET.register_namespace("", CAP)

    def sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
        el = ET.SubElement(parent, f"{{{CAP}}}{tag}")
        if text is not None:
            el.text = str(text)
        return el

    root = ET.Element(f"{{{CAP}}}alert")
    sub(root, "identifier", identifier)
    sub(root, "sender", doc["sender"])
    sub(root, "sent", doc["sent"])
    sub(root, "status", doc["status"].capitalize())
    sub(root, "msgType", doc["msg_type"].capitalize())
    sub(root, "scope", "Restricted")
    sub(root, "restriction", f"{_RESTRICTION}{doc['scope']}")
    refs = doc.get("references", [])
    if refs:
        known = references or {}
        sub(
            root,
            "references",
            " ".join(known.get(r, f"{doc['sender']},{r},{doc['sent']}") for r in refs),
        )
    incident = doc.get("incident", {})
    params = {
        "crime": incident.get("crime"),
        "occurred": incident.get("occurred"),
        "reported_by": incident.get("reported_by"),
        "persons_detained": incident.get("persons_detained"),
    }
    for lang, words in doc["text"].items():
        info = sub(root, "info")
        sub(info, "language", lang)
        sub(info, "category", "Security")
        sub(info, "event", doc["category"])
        sub(info, "urgency", doc["urgency"].capitalize())
        sub(info, "severity", doc["severity"].capitalize())
        sub(info, "certainty", doc["certainty"].capitalize())
        sub(info, "expires", doc["expires"])
        sub(info, "senderName", doc["sender"])
        sub(info, "headline", words["headline"])
        for field in ("description", "instruction"):
            if words.get(field):
                sub(info, field, words[field])
        named = [(k, v) for k, v in params.items() if v is not None]
        named += [("item", json.dumps(i, ensure_ascii=False)) for i in incident.get("items", [])]
        for name, value in named:
            param = sub(info, "parameter")
            sub(param, "valueName", f"{_P}{name}")
            sub(param, "value", value)
        if "position" in incident or "place" in incident:
            area = sub(info, "area")
            sub(area, "areaDesc", incident.get("place", ""))
            if "position" in incident:
                pos = incident["position"]
                radius_km = (pos.get("accuracy_m") or 0) / 1000
                sub(area, "circle", f"{pos['lat']},{pos['lon']} {radius_km}")
    return root


def cap_bytes(root: ET.Element) -> bytes:
    """A CAP element as a UTF-8 document with its XML declaration."""
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


@cache
def _schema() -> xmlschema.XMLSchema:
    source = resources.files("interchange.data").joinpath("CAP-v1.2.xsd")
    with resources.as_file(source) as path:
        return xmlschema.XMLSchema(str(path))


def validate(root: ET.Element, source: str = "CAP") -> None:
    """Raise ``CapError`` with the first schema violation of ``root``, naming ``source``."""
    for error in _schema().iter_errors(root):
        where = error.path or "/"
        raise CapError(f"{source}: not valid CAP 1.2 at {where}: {error.reason}")


def parse(data: bytes, source: str = "CAP") -> ET.Element:
    """Untrusted XML to an element: DTDs, entities and external references refused."""
    try:
        root: ET.Element = SafeET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise UnsafeXmlError(
            f"{source}: refused: the XML declares a DTD or entities ({type(exc).__name__}); "
            "CAP needs neither: export it again without a DOCTYPE"
        ) from None
    except ET.ParseError as exc:
        raise CapError(f"{source}: not well-formed XML: {exc}") from None
    return root


@dataclass(frozen=True, slots=True)
class CapImport:
    """A CAP alert read as an alert document, and what of it was not carried."""

    document: dict[str, Any]
    identifier: str
    sender: str
    sent: datetime
    dropped: tuple[str, ...]


def _text(el: ET.Element, path: str) -> str | None:
    found = el.find(path, _NS)
    return None if found is None or found.text is None else found.text.strip()


def _refuse(source: str, what: str, todo: str) -> UnmappableError:
    return UnmappableError(f"{source}: {what} cannot be carried by a blo-alert alert: {todo}")


_LANGS = {lang.value for lang in Lang}
_CIRCLE = re.compile(r"^\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s+([\d.]+)\s*$")
_HEX_ID = re.compile(r"^[0-9a-fA-F]{32}$")


def document_from_cap(data: bytes, source: str = "CAP") -> CapImport:
    """Read untrusted CAP 1.2 bytes as an alert document for ``publisher.compose``.

    The document has no ``sender`` or ``sent`` (the signing HQ's and now), and a
    ``scope`` only when the CAP came from blo-alert (its ``restriction``).
    Raises ``UnsafeXmlError``, ``CapError`` or ``UnmappableError``, naming ``source``.
    """
    root = parse(data, source)
    validate(root, source)
    status = _text(root, "cap:status") or ""
    if status not in ("Actual", "Exercise", "Test"):
        raise _refuse(source, f"status {status}", "only Actual, Exercise and Test are sent")
    msg_type = _text(root, "cap:msgType") or ""
    if msg_type not in ("Alert", "Update", "Cancel"):
        raise _refuse(source, f"msgType {msg_type}", "only Alert, Update and Cancel are sent")
    if _text(root, "cap:addresses"):
        raise _refuse(source, "addresses", "give the audience with --scope and drop <addresses>")
    doc: dict[str, Any] = {"kind": "alert", "status": status.lower(), "msg_type": msg_type.lower()}
    restriction = _text(root, "cap:restriction") or ""
    if restriction.startswith(_RESTRICTION):
        doc["scope"] = restriction[len(_RESTRICTION) :]
    refs = []
    for triple in (_text(root, "cap:references") or "").split():
        parts = triple.split(",")
        if len(parts) != 3 or not _HEX_ID.match(parts[1]):
            raise _refuse(
                source,
                f"reference {triple!r}",
                "blo-alert refers to alerts by their 32-hex-digit id (sender,ID,sent)",
            )
        refs.append(parts[1].lower())
    if refs:
        doc["references"] = refs
    infos = root.findall("cap:info", _NS)
    if not infos:
        raise _refuse(source, "an alert without <info>", "give at least one info block")
    dropped = [p for p in _DESCRIPTIVE if root.find(_qualified(p), _NS) is not None]
    shared: dict[str, str | None] = {}
    text: dict[str, dict[str, str]] = {}
    incident: dict[str, Any] = {}
    for info in infos:
        lang = (_text(info, "cap:language") or "en-US").split("-")[0].lower()
        if lang not in _LANGS:
            carried = ", ".join(sorted(_LANGS))
            raise _refuse(source, f"language {lang}", f"blo-alert carries {carried}")
        if lang in text:
            raise _refuse(source, f"a second info in {lang}", "give one info per language")
        for field in _PER_ALERT:
            value = _text(info, f"cap:{field}")
            if field in shared and shared[field] != value:
                raise _refuse(
                    source,
                    f"info blocks that differ in {field} ({shared[field]} and {value})",
                    "a blo-alert alert has one; send one alert per value",
                )
            shared[field] = value
        words = {"headline": _text(info, "cap:headline") or _text(info, "cap:event") or ""}
        for field in ("description", "instruction"):
            value = _text(info, f"cap:{field}")
            if value:
                words[field] = value
        text[lang] = words
        found = _incident(info, source)
        if incident and found != incident:
            raise _refuse(source, "info blocks with different incidents", "send one alert each")
        incident = found
    event = shared.get("event") or ""
    categories = {c.value for c in Category} - {Category.OTHER.value}
    if event not in categories:
        dropped.append(f"info/event ({event!r}: sent as category 'other')")
    doc["category"] = event if event in categories else "other"
    for field in ("urgency", "severity", "certainty"):
        doc[field] = (shared.get(field) or "Unknown").lower()
    if shared.get("expires"):
        doc["expires"] = shared["expires"]
    doc["text"] = text
    if incident:
        if "crime" not in incident:
            incident["crime"] = "other"
        if "occurred" not in incident:
            incident["occurred"] = _text(root, "cap:sent")
        doc["incident"] = incident
    return CapImport(
        document=doc,
        identifier=_text(root, "cap:identifier") or "",
        sender=_text(root, "cap:sender") or "",
        sent=datetime.fromisoformat(_text(root, "cap:sent") or ""),
        dropped=tuple(dropped),
    )


def _qualified(path: str) -> str:
    return "/".join(f"cap:{tag}" for tag in path.split("/"))


def _incident(info: ET.Element, source: str) -> dict[str, Any]:
    """The incident facts of one info block: our parameters and its one area."""
    incident: dict[str, Any] = {}
    items = []
    for param in info.findall("cap:parameter", _NS):
        name, value = _text(param, "cap:valueName") or "", _text(param, "cap:value") or ""
        if not name.startswith(_P):
            continue  # a partner's own parameter: nothing of ours
        key = name[len(_P) :]
        if key == "item":
            try:
                items.append(json.loads(value))
            except ValueError:
                raise CapError(f"{source}: parameter {name} is not a JSON item: {value}") from None
        elif key == "persons_detained":
            if not value.isdigit():
                raise CapError(f"{source}: parameter {name} is not a count: {value}")
            incident[key] = int(value)
        elif key in ("crime", "occurred", "reported_by"):
            incident[key] = value
    if items:
        incident["items"] = items
    areas = info.findall("cap:area", _NS)
    if len(areas) > 1:
        raise _refuse(source, f"{len(areas)} areas", "an alert has one position: send one area")
    for area in areas:
        if area.find("cap:polygon", _NS) is not None:
            raise _refuse(source, "a polygon", "give the area as one circle 'lat,lon radius_km'")
        circles = area.findall("cap:circle", _NS)
        if len(circles) > 1:
            raise _refuse(source, f"{len(circles)} circles", "give one circle")
        place = _text(area, "cap:areaDesc")
        if place:
            incident["place"] = place
        if circles:
            match = _CIRCLE.match(circles[0].text or "")
            if not match:
                raise CapError(f"{source}: circle {circles[0].text!r} is not 'lat,lon radius_km'")
            lat, lon, radius = (float(g) for g in match.groups())
            position: dict[str, Any] = {"lat": lat, "lon": lon}
            if radius:
                position["accuracy_m"] = round(radius * 1000)
            incident["position"] = position
    return incident
