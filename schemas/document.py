"""Readable documents: a message as one flat JSON object, as in the reference alert.

A document is the envelope's meaning (kind, sender, scope, sent, expires) and
the body's fields side by side, in JSON types. It is how people write messages
for ``blo-pub`` and how ``blo-sub show`` prints them; the wire never carries it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from schemas.base import Timestamp, WireModel
from schemas.envelope import BODY_TYPES, Header
from schemas.errors import DecodeError
from schemas.ids import Scope
from schemas.kinds import Kind

__all__ = ["Draft", "draft_from_document", "to_document"]

_ENVELOPE_KEYS = ("kind", "sender", "scope", "sent", "expires")
_TIME = TypeAdapter(Timestamp)


@dataclass(frozen=True, slots=True)
class Draft:
    """A message read from a document, ready to be sealed by its sender."""

    kind: Kind
    sender: str
    scope: Scope
    issued: datetime
    expires: datetime
    body: WireModel


def draft_from_document(doc: dict[str, Any]) -> Draft:
    """Validate a document into a ``Draft``. Raises ``DecodeError`` naming the field."""
    missing = [k for k in _ENVELOPE_KEYS if k not in doc]
    if missing:
        raise DecodeError(f"document lacks {', '.join(missing)}")
    try:
        kind = Kind[str(doc["kind"]).upper()]
    except KeyError:
        raise DecodeError(f"unknown kind {doc['kind']!r}", "kind") from None
    try:
        scope = Scope.parse(str(doc["scope"]))
    except ValueError as exc:
        raise DecodeError(str(exc), "scope") from None
    fields = {k: v for k, v in doc.items() if k not in _ENVELOPE_KEYS and not k.startswith("_")}
    try:
        issued = _TIME.validate_json(json.dumps(doc["sent"]))
        expires = _TIME.validate_json(json.dumps(doc["expires"]))
        body = BODY_TYPES[kind].model_validate_json(json.dumps(fields, ensure_ascii=False))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DecodeError(first["msg"], where) from None
    return Draft(kind, str(doc["sender"]), scope, issued, expires, body)


def to_document(header: Header, body: WireModel) -> dict[str, Any]:
    """The readable document of a received message."""
    doc: dict[str, Any] = {
        "kind": header.kind.label,
        "sender": header.sender,
        "scope": str(header.scope),
        "sent": header.issued.isoformat(),
        "expires": header.expires.isoformat(),
    }
    doc.update(body.model_dump(mode="json", exclude_defaults=True))
    return doc
