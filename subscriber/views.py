r"""What an officer sees: the inbox table, one message in full, and the link status.

Text is shown in the officer's language (``--lang km``) when the message has
it, else in English, else in the first language it has. Khmer, Lao, Thai and
Burmese are shown as they are.

Widths are measured by grapheme cluster. rich 15 counts a Khmer subscript
consonant (COENG U+17D2 + consonant, drawn under the letter before it) as a cell
of its own, so a Khmer headline pushed a table's right border out and a cut fell
inside a cluster. ``use_cluster_widths`` teaches rich's cell functions that a
letter after a COENG (or Myanmar's and Tai Tham's stacking signs) adds no cell
and is never split from its cluster. The ``regex`` package was not added: its
``\X`` does keep COENG clusters whole (checked with regex 2026.5.9), but it
would replace only the three-line stacking rule below; rich's functions need
the same adjustments either way, and a compiled dependency on every tablet
buys nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import rich.cells
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from schemas import (
    Alert,
    Bulletin,
    Incident,
    Kind,
    Lang,
    Receipt,
    TrendSummary,
    WireModel,
    to_document,
)
from schemas.seal import SealedBody, Unopened
from schemas.truststore import STALE
from subscriber.inbox import QUARANTINE_DROPPED, Stored
from subscriber.photos import PhotoState

__all__ = [
    "cluster_width",
    "field_lines",
    "headline",
    "inbox_table",
    "message_json",
    "message_view",
    "pick_text",
    "state_of",
    "status_table",
    "use_cluster_widths",
]

#: Signs that stack the next consonant under the one before: Khmer COENG,
#: Myanmar virama (stacker), Tai Tham sakot. The stacked consonant takes no cell.
STACKERS = frozenset("\u17d2\u1039\u1a60")


def _stacked(text: str) -> list[int]:
    """Indices of the characters stacked under the one before (they follow a stacker)."""
    return [i + 1 for i, ch in enumerate(text[:-1]) if ch in STACKERS]


def cluster_width(text: str) -> int:
    """Cells ``text`` takes, a stacked consonant counting none (see the module note)."""
    size = rich.cells.get_character_cell_size
    width = sum(size(ch) for ch in text)
    return width - sum(size(text[i]) for i in _stacked(text))


_patched = False


def use_cluster_widths() -> None:
    """Make rich measure and cut Khmer (and Burmese) text by cluster. Idempotent.

    Patches four functions of rich's cell module and Segment (checked to exist:
    with another rich the patch is skipped, and tests/test_views.py fails).
    """
    global _patched
    cells: Any = rich.cells
    names = ("_cell_len", "split_graphemes", "_split_text", "cached_cell_len")
    if _patched or not all(hasattr(cells, n) for n in names):
        return
    if not hasattr(Segment, "_split_cells"):
        return
    _patched = True
    plain_len: Callable[[str, str], int] = cells._cell_len
    plain_split: Callable[[str, str], tuple[list[tuple[int, int, int]], int]] = (
        cells.split_graphemes
    )
    plain_cut = Segment._split_cells

    def cell_len(text: str, unicode_version: str = "auto") -> int:
        width = plain_len(text, unicode_version)
        if STACKERS.isdisjoint(text):
            return width
        return width - sum(rich.cells.get_character_cell_size(text[i]) for i in _stacked(text))

    def split_graphemes(
        text: str, unicode_version: str = "auto"
    ) -> tuple[list[tuple[int, int, int]], int]:
        spans, total = plain_split(text, unicode_version)
        if STACKERS.isdisjoint(text):
            return spans, total
        merged: list[tuple[int, int, int]] = []
        for start, end, width in spans:
            if merged and start > 0 and text[start - 1] in STACKERS:
                first, _, kept = merged[-1]
                merged[-1] = (first, end, kept)  # stacked: part of the cluster before
                total -= width
            else:
                merged.append((start, end, width))
        return merged, total

    @lru_cache(4096)
    def split_cells(segment: Segment, cut: int) -> tuple[Segment, Segment]:
        text, style, control = segment
        if STACKERS.isdisjoint(text):
            return plain_cut(segment, cut)
        if cut >= segment.cell_length:
            return segment, Segment("", style, control)
        left, right = cells._split_text(text, cut)
        return Segment(left, style, control), Segment(right, style, control)

    cells._cell_len = cell_len
    cells.split_graphemes = split_graphemes
    cells.cached_cell_len.cache_clear()
    Segment._split_cells = classmethod(lambda cls, segment, cut: split_cells(segment, cut))  # type: ignore[assignment,method-assign]


use_cluster_widths()

_SEVERITY_STYLE = {
    "extreme": "bold white on red",
    "severe": "bold red",
    "moderate": "yellow",
    "minor": "green",
    "unknown": "dim",
}


def pick_text(texts: Mapping[Lang, Any], lang: Lang) -> Any:
    """The text in ``lang``, else English, else any."""
    for choice in (lang, Lang.EN):
        if choice in texts:
            return texts[choice]
    return next(iter(texts.values()), None)


def headline(body: WireModel, lang: Lang) -> str:
    """A one-line summary of a message in ``lang`` (falling back to English)."""
    if isinstance(body, Alert | Bulletin):
        text = pick_text(body.text, lang)
        return text.headline if text else ""
    if isinstance(body, Incident):
        narrative = pick_text(body.narrative, lang) if body.narrative else None
        place = f" at {body.place or body.crossing}" if body.place or body.crossing else ""
        first = (narrative or "").split("\n", 1)[0][:80]
        return f"{body.crime.value.replace('_', ' ')}{place}" + (f": {first}" if first else "")
    if isinstance(body, Receipt):
        return f"{body.status.value} {body.of.hex()[:8]}"
    if isinstance(body, TrendSummary):
        return str(pick_text(body.headline, lang))
    if isinstance(body, Unopened):
        return f"(sealed for {', '.join(body.recipients)}: not readable on this node)"
    return type(body).__name__


def trend_view(item: Stored, lang: Lang) -> Panel:
    """An office's trend summary: its level against the country's, then each signal."""
    body = item.body
    assert isinstance(body, TrendSummary)
    h = item.sealed.header
    lines: list[RenderableType] = [Text(str(pick_text(body.headline, lang)), style="bold")]
    lines.append(
        Text(
            f"this week {body.this_week}, usual {body.usual:.1f}, "
            f"country usual {body.country_usual:.1f}"
        )
    )
    for signal in body.signals:
        lines.append(Text(f"• {pick_text(signal.text, lang)}", style="yellow"))
    if not body.signals:
        lines.append(Text("no active signals near this office", style="green"))
    title = f"trends for {body.crossing} ({body.office}), from {h.sender}, {h.issued:%Y-%m-%d}"
    return Panel(Group(*lines), title=title, title_align="left")


def trend_json(item: Stored) -> dict[str, Any]:
    """The summary as a document, with who signed it and when."""
    h = item.sealed.header
    return {"id": h.msg_id.hex(), **to_document(h, item.body)}


def state_of(item: Stored, now: datetime, cancelled: dict[bytes, int]) -> str:
    """active, expired, updated or cancelled."""
    replaced = cancelled.get(item.msg_id)
    if replaced == 2:
        return "cancelled"
    if replaced == 1:
        return "updated"
    return "active" if now < item.sealed.header.expires else "expired"


def inbox_table(
    items: list[Stored], lang: Lang, now: datetime, cancelled: dict[bytes, int]
) -> Table:
    """The inbox, newest first; fits 80 columns (the headline wraps, ``●`` marks unread)."""
    table = Table(title=f"inbox ({len(items)})", title_justify="left", expand=False)
    table.add_column("id", no_wrap=True)
    table.add_column("sent", no_wrap=True)
    table.add_column("from", overflow="fold", min_width=8)
    table.add_column("what", no_wrap=True)
    table.add_column("headline", overflow="fold", min_width=16, ratio=1)
    table.add_column("state", no_wrap=True)
    for item in items:
        h = item.sealed.header
        body = item.body
        severity = body.severity.value if isinstance(body, Alert) else h.kind.label
        state = state_of(item, now, cancelled)
        unread = item.read_at is None
        table.add_row(
            Text.assemble(("●" if unread else " ", "bold cyan"), " ", (h.msg_id.hex()[:6], "dim")),
            h.issued.strftime("%m-%d %H:%M"),
            h.sender,
            Text(severity, style=_SEVERITY_STYLE.get(severity, "")),
            Text(headline(body, lang), style="bold" if unread else ""),
            Text(state, style="green" if state == "active" else "dim"),
        )
    if items:
        table.caption = "● unread"
        table.caption_justify = "left"
    return table


def _position(value: dict[str, Any]) -> str:
    lat, lon = float(value["lat"]), float(value["lon"])
    where = f"{abs(lat)}° {'N' if lat >= 0 else 'S'}, {abs(lon)}° {'E' if lon >= 0 else 'W'}"
    if value.get("accuracy_m") is not None:
        where += f" (±{value['accuracy_m']} m)"
    return where


def _item(value: dict[str, Any]) -> str:
    line = f"{value.get('quantity', '')} {value.get('unit', '')} {value.get('substance', '')}"
    extra = {k: v for k, v in value.items() if k not in ("quantity", "unit", "substance")}
    if extra:
        line += " (" + ", ".join(f"{k.replace('_', ' ')} {_scalar(v)}" for k, v in extra.items())
        line += ")"
    return " ".join(line.split())


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if {"lat", "lon"} <= value.keys():
            return _position(value)
        return ", ".join(f"{k.replace('_', ' ')} {_scalar(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_scalar(v) for v in value)
    return (
        str(value).replace("_", " ") if isinstance(value, str) and " " not in value else str(value)
    )


def field_lines(key: str, value: Any, indent: int = 0) -> list[RenderableType]:
    """A field of a message as lines a person reads: no braces, quotes or brackets.

    Nested fields are indented, and a wrapped line keeps its field's indent.
    """
    label = key.replace("_", " ")

    def line(text: Text, depth: int = indent) -> RenderableType:
        return Padding(text, (0, 0, 0, 2 * depth)) if depth else text

    if key == "position" and isinstance(value, dict):
        return [line(Text.assemble((f"{label}: ", "bold"), _position(value)))]
    if isinstance(value, dict):
        lines = [line(Text(f"{label}:", style="bold"))]
        for inner_key, inner in value.items():
            lines += field_lines(str(inner_key), inner, indent + 1)
        return lines
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        show = _item if key == "items" else _scalar
        return [line(Text(f"{label}:", style="bold"))] + [
            line(Text(f"- {show(v) if isinstance(v, dict) else _scalar(v)}"), indent + 1)
            for v in value
        ]
    return [line(Text.assemble((f"{label}: ", "bold"), _scalar(value)))]


def message_view(item: Stored, lang: Lang) -> Panel:
    """One message in full: header facts, then every field, every language."""
    h = item.sealed.header
    doc = to_document(h, item.body)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("id", h.msg_id.hex())
    facts.add_row("from", f"{h.sender} (#{h.seq}, key {h.key_id.hex()[:8]})")
    facts.add_row("to", str(h.scope))
    facts.add_row("sent", h.issued.isoformat())
    facts.add_row("expires", h.expires.isoformat())
    facts.add_row("received", item.received.isoformat(timespec="seconds"))
    sealed_for = _sealed_for(item)
    if sealed_for is not None:
        facts.add_row("sealed", f"for {', '.join(sealed_for)} (only they can read it)")
    elif h.kind is Kind.BULLETIN:
        facts.add_row("sealed", "no: sent in clear, the broker and the archive could read it")
    parts: list[Any] = [facts, Text("")]
    body = item.body
    if isinstance(body, Unopened):
        parts.append(Text(f"not readable on this node: {body.reason}", style="bold red"))
    if isinstance(body, Alert | Bulletin):
        # The officer's language first, then the others.
        blocks: list[tuple[Lang, Any]] = sorted(body.text.items(), key=lambda kv: kv[0] is not lang)
        for code, text in blocks:
            parts.append(Text(f"[{code.value}] {text.headline}", style="bold"))
            for field in ("description", "instruction", "body"):
                value = getattr(text, field, "")
                if value:
                    parts.append(Text(value))
            parts.append(Text(""))
    rest = {
        k: v
        for k, v in doc.items()
        if k not in ("kind", "sender", "scope", "sent", "expires", "text")
    }
    for key, value in rest.items():
        parts += field_lines(key, value)
    title = f"{h.kind.label} from {h.sender}"
    return Panel(Group(*parts), title=title, title_align="left")


def photos_table(states: list[PhotoState]) -> Table:
    """An incident's photos at this node: position and where it came from, state, file."""
    table = Table(title="photos", title_justify="left")
    for column in ("#", "position", "taken", "state", "file"):
        table.add_column(column, overflow="fold")
    for s in states:
        a = s.attachment
        where = _position(a.position.model_dump()) if a.position else "-"
        if a.position_source is not None:
            where += f" ({'GPS' if a.position_source.value == 'exif' else 'incident position'})"
        table.add_row(
            str(s.number),
            where,
            a.taken.isoformat() if a.taken else "-",
            Text(s.state, style="green" if s.complete else "yellow"),
            str(s.path) if s.path else "-",
        )
    return table


def message_json(
    item: Stored, lang: Lang, now: datetime, cancelled: dict[bytes, int]
) -> dict[str, Any]:
    """One message for scripts: its readable document, plus what the inbox knows of it."""
    h = item.sealed.header
    return {
        "id": h.msg_id.hex(),
        "seq": h.seq,
        "key_id": h.key_id.hex(),
        "received": item.received.isoformat(),
        "read": item.read_at.isoformat() if item.read_at else None,
        "state": state_of(item, now, cancelled),
        "headline": headline(item.body, lang),
        **to_document(h, item.body),
        **({"sealed_for": _sealed_for(item)} if item.sealed.is_sealed else {}),
        **({"readable": False} if isinstance(item.body, Unopened) else {}),
    }


def _sealed_for(item: Stored) -> list[str] | None:
    """The recipients of a sealed message (readable without opening it), else None."""
    if not item.sealed.is_sealed:
        return None
    body = item.sealed.decode_body()
    return body.nodes if isinstance(body, SealedBody) else None


def status_table(
    state: dict[str, Any],
    waiting: int,
    sent: int,
    held: int,
    rejections: dict[str, int],
    quarantined: int,
) -> Table:
    """Link state, last contact, queues, keysets, gaps and refusals."""
    table = Table(
        title=f"status of {state.get('node', '?')}", title_justify="left", show_header=False
    )
    table.add_column(style="bold")
    table.add_column()
    link = state.get("link", "never started")
    table.add_row("link", Text(link, style="green" if link == "up" else "yellow"))
    table.add_row("broker", str(state.get("broker", "-")))
    table.add_row("last contact", str(state.get("last_contact", "never")))
    if state.get("last_error") and link != "up":
        table.add_row("why not up", Text(str(state["last_error"]), style="yellow"))
    table.add_row("outbox", f"{waiting} waiting, {sent} sent")
    dropped = rejections.get(QUARANTINE_DROPPED, 0)
    full = f", {dropped} dropped from a full quarantine" if dropped else ""
    table.add_row("inbox", f"{held} messages held, {quarantined} quarantined (unknown key){full}")
    keysets = state.get("keysets") or {}
    table.add_row("keysets", ", ".join(f"{c} v{v}" for c, v in sorted(keysets.items())) or "-")
    stale = any(str(w).startswith(STALE) for w in state.get("warnings") or [])
    table.add_row("trust", Text(STALE, style="yellow") if stale else Text("fresh", style="green"))
    gaps = state.get("gaps") or []
    table.add_row("gaps outstanding", ", ".join(f"{s} #{a}-{b}" for s, a, b in gaps) or "none")
    table.add_row("rejected", ", ".join(f"{r}: {n}" for r, n in rejections.items()) or "none")
    if state.get("faults"):
        # Faults the client survived (logged with a traceback): never silent.
        fault = f"{state['faults']} survived; last: {state.get('last_fault', '?')}"
        table.add_row("faults", Text(fault, style="red"))
    for warning in state.get("warnings") or []:
        table.add_row("warning", Text(warning, style="yellow"))
    return table
