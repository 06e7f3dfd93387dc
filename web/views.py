"""View models: what each page shows, as plain frozen records built from inbox rows.

Pure (the clock is an argument), so the pages' logic is tested without a server or
a browser. Nothing here escapes text: the templates do (Jinja2 autoescape), and
every value from a message stays a plain ``str`` until then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas import Alert, Bulletin, Incident, Lang, to_document
from subscriber.inbox import Stored
from subscriber.views import headline
from trends.offices import OFFICES
from web.svgmap import MapPoint, project

__all__ = [
    "UI",
    "WORDS",
    "AlertTotals",
    "InboxRow",
    "IncidentRow",
    "Matrix",
    "MatrixRow",
    "MessageView",
    "OfficePoint",
    "OfficeRow",
    "headline",
    "inbox_rows",
    "incident_rows",
    "map_points",
    "matrix",
    "message_view",
    "office_points",
    "office_rows",
    "state_of",
    "when",
    "word",
]

#: The pages' own words in English and Khmer (messages carry their own languages).
UI: dict[str, dict[str, str]] = {
    "en": {
        "inbox": "Inbox",
        "unread": "unread",
        "active": "active",
        "expired": "expired",
        "cancelled": "cancelled",
        "updated": "updated",
        "report": "Report an incident",
        "bulletin": "Bulletin to the counterpart office",
        "link": "Link",
        "waiting": "waiting to go out",
        "sent": "sent",
        "send": "Send",
        "last_error": "last error",
        "language": "ភាសាខ្មែរ",
        "other_lang": "km",
        "nothing": "Nothing yet.",
        "back": "Back to the inbox",
        "col_sent": "sent",
        "col_from": "from",
        "col_what": "what",
        "col_headline": "headline",
        "col_state": "state",
    },
    "km": {
        "inbox": "ប្រអប់សារ",
        "unread": "មិនទាន់អាន",
        "active": "សកម្ម",
        "expired": "ផុតកំណត់",
        "cancelled": "បានលុបចោល",
        "updated": "បានធ្វើបច្ចុប្បន្នភាព",
        "report": "រាយការណ៍ឧប្បត្តិហេតុ",
        "bulletin": "ព្រឹត្តិបត្រទៅការិយាល័យដៃគូ",
        "link": "តំណភ្ជាប់",
        "waiting": "កំពុងរង់ចាំផ្ញើ",
        "sent": "បានផ្ញើ",
        "send": "ផ្ញើ",
        "last_error": "កំហុសចុងក្រោយ",
        "language": "English",
        "other_lang": "en",
        "nothing": "មិនទាន់មានទេ។",
        "back": "ត្រឡប់ទៅប្រអប់សារ",
        "col_sent": "ផ្ញើនៅ",
        "col_from": "ពី",
        "col_what": "ប្រភេទ",
        "col_headline": "ចំណងជើង",
        "col_state": "ស្ថានភាព",
    },
}


#: Kinds and CAP severities as the officer reads them; English shows the word itself.
#: Pages keep the word as the CSS class (``sev severe``), so colour does not depend
#: on the language.
WORDS: dict[str, dict[str, str]] = {
    "km": {
        "alert": "ការប្រកាសអាសន្ន",
        "incident": "ឧប្បត្តិហេតុ",
        "bulletin": "ព្រឹត្តិបត្រ",
        "trend": "និន្នាការ",
        "receipt": "ការបញ្ជាក់ទទួល",
        "extreme": "ធ្ងន់ធ្ងរបំផុត",
        "severe": "ធ្ងន់ធ្ងរ",
        "moderate": "មធ្យម",
        "minor": "ស្រាល",
        "unknown": "មិនច្បាស់",
    },
}


def word(value: str, lang: Lang) -> str:
    """``value`` (a kind or a severity) in ``lang``; itself where no word is known."""
    return WORDS.get(lang.value, {}).get(value, value)


def when(moment: datetime | None) -> str:
    """``2026-11-30 13:05 +07:00``: minutes, with the offset the time was given in."""
    if moment is None:
        return ""
    offset = moment.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}" if offset else ""
    return f"{moment:%Y-%m-%d %H:%M} {offset}".strip()


def state_of(item: Stored, now: datetime, cancelled: Mapping[bytes, int]) -> str:
    """active, expired, updated (a later alert replaced it) or cancelled."""
    replaced = cancelled.get(item.msg_id)
    if replaced == 2:
        return "cancelled"
    if replaced == 1:
        return "updated"
    return "active" if now < item.sealed.header.expires else "expired"


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One line of the officer's inbox."""

    id: str
    sent: str
    sender: str
    kind: str
    severity: str
    #: The severity (alerts) or the kind (others) in the reader's language.
    what: str
    headline: str
    state: str
    unread: bool


def inbox_rows(
    items: Iterable[Stored], lang: Lang, now: datetime, cancelled: Mapping[bytes, int]
) -> list[InboxRow]:
    """The inbox, in the order given (newest first from ``Inbox.messages``)."""
    rows = []
    for item in items:
        h = item.sealed.header
        body = item.body
        severity = body.severity.value if isinstance(body, Alert) else ""
        rows.append(
            InboxRow(
                id=h.msg_id.hex(),
                sent=when(h.issued),
                sender=h.sender,
                kind=h.kind.label,
                severity=severity,
                what=word(severity or h.kind.label, lang),
                headline=headline(body, lang),
                state=state_of(item, now, cancelled),
                unread=item.read_at is None,
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class MessageView:
    """One message in full: facts, its texts (the reader's language first), its fields."""

    id: str
    kind: str
    #: ``kind`` in the reader's language.
    what: str
    sender: str
    state: str
    facts: list[tuple[str, str]]
    texts: list[tuple[str, str, list[str]]]
    fields: list[tuple[str, str]]
    #: Ids of the alerts this one updates or cancels (links on the page).
    references: list[str] = field(default_factory=list)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if {"lat", "lon"} <= value.keys():
            acc = f" (±{value['accuracy_m']} m)" if value.get("accuracy_m") is not None else ""
            return f"{value['lat']}, {value['lon']}{acc}"
        return ", ".join(f"{k.replace('_', ' ')} {_scalar(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(_scalar(v) for v in value)
    return str(value)


def _fields(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in doc.items():
        if key in ("kind", "sender", "scope", "sent", "expires", "text", "references"):
            continue
        if key == "attachments":
            value = f"{len(value)} photo(s)"
        elif key == "items":
            value = [
                " ".join(str(v.get(k, "")) for k in ("quantity", "unit", "substance", "form"))
                for v in value
            ]
        elif key == "narrative" and isinstance(value, dict):
            for lang, text in value.items():
                out.append((f"narrative ({lang})", str(text)))
            continue
        out.append((key.replace("_", " "), _scalar(value)))
    return out


def message_view(
    item: Stored, lang: Lang, now: datetime, cancelled: Mapping[bytes, int]
) -> MessageView:
    """The detail page of one message."""
    h = item.sealed.header
    body = item.body
    texts: list[tuple[str, str, list[str]]] = []
    if isinstance(body, Alert | Bulletin):
        for code, text in sorted(body.text.items(), key=lambda kv: kv[0] is not lang):
            paragraphs = [
                str(getattr(text, f))
                for f in ("description", "instruction", "body")
                if getattr(text, f, "")
            ]
            texts.append((code.value, str(getattr(text, "headline", "")), paragraphs))
    references = [r.hex() for r in getattr(body, "references", ())]
    return MessageView(
        id=h.msg_id.hex(),
        kind=h.kind.label,
        what=word(h.kind.label, lang),
        sender=h.sender,
        state=state_of(item, now, cancelled),
        facts=[
            ("from", f"{h.sender} (#{h.seq})"),
            ("to", str(h.scope)),
            ("sent", when(h.issued)),
            ("expires", when(h.expires)),
            ("received", when(item.received)),
        ],
        texts=texts,
        fields=_fields(to_document(h, body)),
        references=references,
    )


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """One office of an alert's audience: when it was delivered and read, if yet."""

    office: str
    delivered: str
    read: str


@dataclass(frozen=True, slots=True)
class AlertTotals:
    """An alert sent by this HQ, with its delivery totals."""

    id: str
    headline: str
    scope: str
    sent: str
    offices: int
    delivered: int
    read: int

    @property
    def never(self) -> int:
        """Offices never heard from about it (no receipt at all)."""
        return self.offices - self.delivered


@dataclass(frozen=True, slots=True)
class Matrix:
    """The delivery matrix of one alert: totals on top, one row per office."""

    totals: AlertTotals
    rows: list[MatrixRow]


def matrix(
    alert_id: bytes,
    title: str,
    scope: str,
    sent: datetime,
    offices: list[str],
    receipts: Mapping[str, Mapping[str, datetime]],
    *,
    rows: bool = True,
) -> Matrix:
    """Every office ``offices`` names, with its ``delivered``/``read`` receipts.

    A ``read`` implies delivery even if the ``delivered`` receipt is still on its way.
    ``rows=False`` counts only (the alerts list shows totals; one matrix is drawn).
    """
    want_rows = rows
    out = []
    delivered = read = 0
    for office in offices:
        marks = receipts.get(office, {})
        got, seen = marks.get("delivered"), marks.get("read")
        delivered += bool(got or seen)
        read += bool(seen)
        if want_rows:
            out.append(MatrixRow(office, when(got or seen), when(seen)))
    totals = AlertTotals(alert_id.hex(), title, scope, when(sent), len(offices), delivered, read)
    return Matrix(totals, out)


@dataclass(frozen=True, slots=True)
class OfficeRow:
    """An office HQ hears from: when it was last heard and what that means."""

    office: str
    last_contact: str
    state: str  # "heard recently", "quiet", "never heard from"


def office_rows(
    offices: Iterable[str],
    last_heard: Mapping[str, datetime],
    now: datetime,
    quiet_after: timedelta = timedelta(hours=1),
) -> list[OfficeRow]:
    """Offices in the order given, each judged by its last message to this node (any
    kind: a receipt is a sign of life too)."""
    out = []
    for office in offices:
        last = last_heard.get(office)
        if last is None:
            state = "never heard from"
        elif now - last > quiet_after:
            state = "quiet"
        else:
            state = "heard recently"
        out.append(OfficeRow(office, when(last), state))
    return out


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """An incident received at HQ, with its position and its photos here."""

    id: str
    sender: str
    crime: str
    occurred: str
    place: str
    lat: float
    lon: float
    items: str
    photos: list[tuple[int, str, bool, bool]]  # number, state, complete, preview here


def incident_rows(
    items: Iterable[tuple[Stored, list[tuple[int, str, bool, bool]]]], lang: Lang
) -> list[IncidentRow]:
    """Incidents newest first, each with its photos' states at this node."""
    out = []
    for item, photos in items:
        body = item.body
        if not isinstance(body, Incident):
            continue
        h = item.sealed.header
        things = "; ".join(f"{i.quantity:g} {i.unit.value} {i.substance}" for i in body.items)
        out.append(
            IncidentRow(
                id=h.msg_id.hex(),
                sender=h.sender,
                crime=body.crime.value.replace("_", " "),
                occurred=when(body.occurred),
                place=str(body.place or body.crossing or ""),
                lat=body.position.lat,
                lon=body.position.lon,
                items=things,
                photos=photos,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class OfficePoint:
    """An office on the HQ map: where its crossing is, and whether it was heard lately."""

    x: float
    y: float
    label: str
    state: str  # as OfficeRow.state


_POSITIONS = {office.node: office for office in OFFICES}


def office_points(rows: Iterable[OfficeRow]) -> list[OfficePoint]:
    """The offices whose crossing is known (``trends.offices``) as points on the map;
    an office not in that table is listed on the page but not placed."""
    points = []
    for row in rows:
        office = _POSITIONS.get(row.office)
        if office is None:
            continue
        x, y = project(office.lat, office.lon)
        label = f"{office.crossing} ({row.office}): {row.state}"
        points.append(OfficePoint(x, y, label, row.state))
    return points


def map_points(rows: Iterable[IncidentRow]) -> list[MapPoint]:
    """The incidents as points on the SVG map (``web.svgmap``)."""
    points = []
    for row in rows:
        x, y = project(row.lat, row.lon)
        points.append(MapPoint(x, y, f"{row.crime} ({row.sender})", f"/m/{row.id}"))
    return points
