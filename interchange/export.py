"""``blo-sub export``: pick messages and write them in another system's format.

Sans-I/O: the caller gives the held messages (an inbox's), the selection and
``now``, and gets back named documents to write. CAP carries one alert per
document, so a CAP export of several alerts is several files (``ID.xml``); the
map formats put every selected message with a position in one document.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from interchange.cap import cap_bytes, cap_element, validate
from interchange.cot import cot_bytes
from interchange.errors import ExportError
from interchange.geojson import feature_collection
from interchange.kml import kml_bytes
from interchange.spots import spots
from schemas import Alert, Header, WireModel, to_document

__all__ = ["FORMATS", "Format", "export", "select"]

Format = Literal["cap", "geojson", "kml", "cot"]
FORMATS: tuple[Format, ...] = ("cap", "geojson", "kml", "cot")
_SUFFIX = {"cap": "xml", "geojson": "geojson", "kml": "kml", "cot": "cot.xml"}

Held = tuple[Header, WireModel]


def select(held: Sequence[Held], ids: Sequence[str], since: datetime | None) -> list[Held]:
    """The messages named by id prefixes, or sent at or after ``since``, or all.

    Raises ``ExportError`` naming a prefix that matches no message or several.
    """
    if ids:
        chosen = []
        for prefix in ids:
            found = [m for m in held if m[0].msg_id.hex().startswith(prefix.lower())]
            if len(found) != 1:
                what = "no message" if not found else f"{len(found)} messages"
                raise ExportError(f"id {prefix!r}: {what} in the inbox start so; give more digits")
            chosen.append(found[0])
        return chosen
    if since is not None:
        return [m for m in held if m[0].issued >= since]
    return list(held)


def export(
    chosen: Sequence[Held], fmt: Format, now: datetime, held: Sequence[Held] = ()
) -> list[tuple[str, bytes]]:
    """The chosen messages in ``fmt`` as (file name, bytes) pairs.

    ``held`` (all messages known) lets a CAP update name the sender and sent time
    of the alert it references. Raises ``ExportError`` for CAP when no alert is chosen
    (CAP has no empty document); the map formats write an empty one.
    """
    if fmt == "cap":
        known = {
            h.msg_id.hex(): f"{h.sender},{h.msg_id.hex()},{h.issued.isoformat()}"
            for h, _ in held or chosen
        }
        out = []
        for header, body in chosen:
            if not isinstance(body, Alert):
                continue
            root = cap_element(to_document(header, body), header.msg_id.hex(), known)
            validate(root, f"alert {header.msg_id.hex()}")  # never hand out invalid CAP
            out.append((f"{header.msg_id.hex()}.xml", cap_bytes(root)))
        if not out:
            raise ExportError("no alert among the messages chosen: CAP carries alerts only")
        return out
    # No placed message is an empty map, not an error: a daily --since export of a
    # quiet day is still a valid document for the GIS desk's scripts.
    found = spots(chosen)
    if fmt == "geojson":
        data = json.dumps(feature_collection(found), ensure_ascii=False, indent=1).encode()
    elif fmt == "kml":
        data = kml_bytes(found)
    else:
        data = cot_bytes(found, now)
    return [(f"blo-export.{_SUFFIX[fmt]}", data)]
