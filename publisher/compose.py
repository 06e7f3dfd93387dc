"""Composing messages from command-line options and JSON/TOML documents.

A document has the shape of the reference alert (``kind``, ``scope``, ``sent``,
``expires`` and the body's fields); options fill in or override its fields.
Everything ends in ``schemas.draft_from_document``, so a message built from
flags is checked exactly like one read from a file.

``refusal`` then asks whether the message can ever arrive, with the very rules
receivers (schemas.authority) and brokers (schemas.access, schemas.topics) apply
and the trust store the node holds: a message no one would accept is refused
before it is signed and queued, not discovered lost later.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photos.chunks import Refused, split
from photos.store import BlobStore, blob_refs
from publisher.errors import ComposeError
from schemas import (
    Action,
    BloError,
    Draft,
    Keyset,
    Kind,
    NodeEntry,
    Role,
    Rules,
    Scope,
    TrustStore,
    WireModel,
    addressed_to,
    country_of,
    draft_from_document,
    may_send,
    rules_for,
    topics_for,
)
from schemas.messages import Attachment, Position

if TYPE_CHECKING:
    from photos.images import PreparedPhoto

__all__ = [
    "attachment",
    "compose",
    "keep_photos",
    "load_document",
    "parse_duration",
    "parse_item",
    "photo_attachment",
    "prepare_photos",
    "refusal",
    "valid_scopes",
]

#: Kinds an officer composes with blo-pub (receipts are the client's own).
_COMPOSED = (Kind.ALERT, Kind.INCIDENT, Kind.BULLETIN)


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


def prepare_photos(
    paths: list[Path], position: dict[str, Any] | None, *, keep_original: bool = False
) -> list[PreparedPhoto]:
    """Read each photo (photos.images): its GPS position and time taken, metadata
    stripped, a preview and the full image. A photo without GPS takes ``position``
    (the incident's), so an incident with photos needs one."""
    if position is None:
        raise ComposeError(
            "an incident with --photo needs its position (--lat/--lon): a photo without "
            "GPS takes it, and the map is drawn round it"
        )
    # Pillow loads here, not with the package: a running tablet imports publisher for
    # its outbox and never composes a photo (issue 15, footprint).
    from photos.images import load_photo

    where = Position(
        lat=float(position["lat"]),
        lon=float(position["lon"]),
        accuracy_m=position.get("accuracy_m"),
    )
    return [
        load_photo(path, incident_position=where, keep_original=keep_original) for path in paths
    ]


def photo_attachment(photo: PreparedPhoto) -> dict[str, Any]:
    """The document form of a prepared photo's signed description (preview + full)."""
    return photo.attachment().model_dump(mode="json", exclude_none=True)


def keep_photos(
    store: BlobStore,
    photos: list[PreparedPhoto],
    attachments: tuple[Attachment, ...],
    *,
    office: str,
    msg_id: bytes,
    now: datetime,
) -> None:
    """Register the photos of a queued incident in the sender's blob store with every
    chunk, so the node's link serves them to whoever asks (subscriber/photos.py)."""
    refs = [ref for a in attachments for ref in blob_refs(a)]
    store.register(refs, office=office, msg_id=msg_id, now=now)
    for photo, described in zip(photos, attachments, strict=True):
        for data, ref in ((photo.preview, described.preview), (photo.full, described.full)):
            if ref is None:
                continue
            made, chunks = split(data, ref.media_type, ref.chunk_size)
            if made != ref:
                raise ComposeError(f"{photo.name}: its bytes changed while it was queued")
            for chunk in chunks:
                stored = store.put_chunk(chunk, now)
                if isinstance(stored, Refused):
                    raise ComposeError(f"{photo.name}: {stored.detail}")


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


def _blank_text(body: WireModel) -> str | None:
    """The first text field that holds only white space (it shows as nothing)."""

    def walk(value: Any, where: str) -> str | None:
        if isinstance(value, str):
            return where if value and not value.strip() else None
        if isinstance(value, dict):
            items: list[tuple[Any, Any]] = list(value.items())
        elif isinstance(value, list):
            items = list(enumerate(value))
        else:
            return None
        for key, inner in items:
            found = walk(inner, f"{where}.{key}" if where else str(key))
            if found:
                return found
        return None

    return walk(body.model_dump(mode="json"), "")


def _candidates(store: TrustStore) -> list[Scope]:
    """Every audience the trust store knows of, in a stable order."""
    nodes = [
        entry
        for country in store.countries
        if (keyset := store.keyset(country))
        for entry in keyset.nodes
    ]
    regions = sorted({r for entry in nodes for r in entry.regions})
    return [
        Scope.all(),
        *(Scope.country(c) for c in store.countries),
        *(Scope.region(r) for r in regions),
        *(Scope.node(n.node) for n in nodes),
        *(Scope.bulletin(n.node) for n in nodes),
    ]


#: The offices that could take a message: each active office (not an archive) and
#: the topics the brokers let it read.
_Readers = list[tuple[NodeEntry, Rules]]


def _readers(store: TrustStore, sender: str) -> _Readers:
    return [
        (entry, rules_for(entry, keyset.nodes))
        for country in store.countries
        if (keyset := store.keyset(country))
        for entry in keyset.nodes
        if entry.node != sender and entry.revoked is None and entry.role is not Role.ARCHIVE
    ]


def _why_not(
    kind: Kind, scope: Scope, entry: NodeEntry, keyset: Keyset, readers: _Readers
) -> str | None:
    """Why a message of ``kind`` to ``scope`` from ``entry`` can never arrive, or None."""
    denied = may_send(entry, kind, scope, keyset)  # what every receiver checks
    if denied:
        return denied
    topics = topics_for(kind, scope, entry.node)
    if not topics:
        return f"{_a(kind.label)} to {scope} has no topic, so no one can receive it"
    # Someone must take it: addressed (the receivers' check) and allowed to read its
    # topic (the brokers' ACL). An office unknown to the keysets held is no one.
    if not any(
        addressed_to(scope, reader) and any(rules.allows(Action.RECEIVE, t) for t in topics)
        for reader, rules in readers
    ):
        return f"no office in the keysets held is addressed by {scope} and reads its topic"
    rules = rules_for(entry, keyset.nodes)  # what both brokers enforce
    closed = [t for t in topics if not rules.allows(Action.PUBLISH, t)]
    if closed:
        return f"the broker does not let {entry.node} publish on {', '.join(closed)}"
    return None


def valid_scopes(kind: Kind, entry: NodeEntry, keyset: Keyset, store: TrustStore) -> list[str]:
    """The audiences ``entry`` can reach with a ``kind`` message, by the same rules."""
    readers = _readers(store, entry.node)
    return [
        str(scope)
        for scope in _candidates(store)
        if _why_not(kind, scope, entry, keyset, readers) is None
    ]


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiouh" else f"a {word}"  # an alert, an hq node


def refusal(draft: Draft, store: TrustStore, key_id: bytes) -> str | None:
    """Why ``draft``, signed with ``key_id``, could never be accepted; None if it could.

    One line naming the rule and what would be valid instead.
    """
    sender = draft.sender
    entry = store.node(sender)
    keyset = store.keyset(country_of(sender))
    if entry is None or keyset is None:
        return f"{sender} is not in the keysets this node holds: re-enrol it (blo-certs issue)"
    if entry.revoked is not None:
        return f"{sender} was revoked at {entry.revoked.isoformat()}: nothing it sends is accepted"
    found = store.lookup(sender, key_id)
    if found is None:
        return f"{sender}'s signing key {key_id.hex()} is not in its keyset: re-issue its bundle"
    if not found.key.valid_at(draft.issued):
        return (
            f"sent {draft.issued.isoformat()} lies outside the signing key's validity "
            f"({found.key.not_before.isoformat()} to {found.key.not_after.isoformat()}); "
            "give a 'sent' time inside it, or leave it out for now"
        )
    blank = _blank_text(draft.body)
    if blank:
        return f"{blank} holds only spaces: write the text, or leave the field out"
    why = _why_not(draft.kind, draft.scope, entry, keyset, _readers(store, sender))
    if why is None:
        return None
    # Offices and regions are judged by the keysets this node holds; one enrolled
    # since is known once the running client has fetched the current keyset.
    held = f"by keyset {keyset.country} v{keyset.version} held here"
    scopes = valid_scopes(draft.kind, entry, keyset, store)
    if scopes:
        shown = ", ".join(scopes[:8]) + (", ..." if len(scopes) > 8 else "")
        return f"{why}; {held}, {sender} may send {_a(draft.kind.label)} to: {shown}"
    kinds = [k.label for k in _COMPOSED if valid_scopes(k, entry, keyset, store)]
    if kinds:
        return f"{why}; {_a(entry.role.value)} node like {sender} sends: {', '.join(kinds)}"
    candidates = _candidates(store)
    if not any(may_send(entry, k, c, keyset) is None for k in _COMPOSED for c in candidates):
        return f"{why}; {_a(entry.role.value)} node like {sender} only reads: it sends nothing"
    return (
        f"{why}; {held}, {sender} can reach no office: if offices were enrolled since, "
        "let 'blo-sub run' fetch the current keyset first, or re-issue this bundle"
    )
