"""Messages with a place on the map: incidents, and alerts whose incident has a position.

GeoJSON, KML and CoT all draw the same points; this module decides which messages
have one and gathers their facts once, in JSON types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas import Alert, Header, Incident, Position, WireModel

__all__ = ["Spot", "spots"]


@dataclass(frozen=True, slots=True)
class Spot:
    """One message's point and the facts shown with it."""

    msg_id: str
    kind: str
    office: str
    sent: datetime
    expires: datetime
    occurred: datetime
    position: Position
    crime: str
    title: str
    facts: dict[str, Any] = field(default_factory=dict)


def _title(crime: str, place: str | None) -> str:
    return f"{crime.replace('_', ' ')} at {place}" if place else crime.replace("_", " ")


def spots(messages: Iterable[tuple[Header, WireModel]]) -> list[Spot]:
    """The messages that have a position, as spots, in the order given."""
    out = []
    for header, body in messages:
        if isinstance(body, Incident):
            facts = body.model_dump(
                mode="json", exclude_defaults=True, exclude={"position", "occurred", "crime"}
            )
            # Photos by reference: the file's digest, size and type, never its bytes.
            facts["photos"] = [
                {
                    k: v
                    for k, v in a.model_dump(mode="json", exclude_defaults=True).items()
                    if k in ("sha256", "size", "media_type", "taken", "position")
                }
                for a in body.attachments
            ]
            facts.pop("attachments", None)
            crime, occurred, position = body.crime.value, body.occurred, body.position
            title = _title(crime, body.place)
        elif isinstance(body, Alert) and body.incident and (where := body.incident.position):
            inc = body.incident
            facts = inc.model_dump(
                mode="json", exclude_defaults=True, exclude={"position", "occurred", "crime"}
            )
            facts["category"] = body.category.value
            facts["severity"] = body.severity.value
            crime, occurred, position = inc.crime.value, inc.occurred, where
            title = next(iter(body.text.values())).headline
        else:
            continue
        out.append(
            Spot(
                msg_id=header.msg_id.hex(),
                kind=header.kind.label,
                office=header.sender,
                sent=header.issued,
                expires=header.expires,
                occurred=occurred,
                position=position,
                crime=crime,
                title=title,
                facts=facts,
            )
        )
    return out
