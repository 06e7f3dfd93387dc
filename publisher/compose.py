"""Composing messages from command-line options and JSON/TOML documents.

A document has the shape of the reference alert (``kind``, ``scope``, ``sent``,
``expires`` and the body's fields); options fill in or override its fields.
Everything ends in ``schemas.draft_from_document``, so a message built from
flags is checked exactly like one read from a file.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from publisher.errors import ComposeError
from schemas import BloError, Draft, draft_from_document

__all__ = ["attachment", "compose", "load_document", "parse_duration", "parse_item"]


def load_document(path: Path) -> dict[str, Any]:
    """Read a JSON or TOML document. Raises ``ComposeError`` naming the file."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ComposeError(f"{path}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ComposeError(
            f"{path}: not valid {path.suffix[1:].upper() or 'JSON'}: {exc}"
        ) from None
    if not isinstance(doc, dict):
        raise ComposeError(f"{path}: a document is one object")
    doc.pop("_about", None)
    return doc


def parse_duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``7d`` -> a timedelta."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    try:
        return timedelta(**{units[text[-1]]: float(text[:-1])})
    except (KeyError, ValueError, IndexError):
        raise ComposeError(f"duration {text!r} is not like 90m, 12h or 7d") from None


def parse_item(text: str) -> dict[str, Any]:
    """``methamphetamine:1.9:kg[:crystal]`` -> an item."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise ComposeError(f"item {text!r} is not SUBSTANCE:QUANTITY:UNIT[:FORM]")
    try:
        quantity = float(parts[1])
    except ValueError:
        raise ComposeError(f"item {text!r}: quantity {parts[1]!r} is not a number") from None
    item: dict[str, Any] = {"substance": parts[0], "quantity": quantity, "unit": parts[2]}
    if len(parts) == 4:
        item["form"] = parts[3]
    return item


def attachment(path: Path, position: dict[str, Any] | None) -> dict[str, Any]:
    """A reference to a photo or document: SHA-256, size, media type, position."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
    except OSError as exc:
        raise ComposeError(f"{path}: {exc.strerror}") from None
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    ref: dict[str, Any] = {
        "sha256": digest.hexdigest(),
        "size": path.stat().st_size,
        "media_type": media,
    }
    if position:
        ref["position"] = position
    return ref


def compose(doc: dict[str, Any], *, sender: str, now: datetime, expires_in: timedelta) -> Draft:
    """A ``Draft`` from a document, with the sender, send time and expiry filled in."""
    full = {
        "sender": sender,
        "sent": now.isoformat(),
        "expires": (now + expires_in).isoformat(),
        **doc,
    }
    full["sender"] = sender  # a document cannot speak for another node
    try:
        return draft_from_document(full)
    except BloError as exc:
        raise ComposeError(f"the {full.get('kind', 'message')} is not valid: {exc}") from None
