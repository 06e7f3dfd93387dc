"""What an officer sees: the inbox table, one message in full, and the link status.

Text is shown in the officer's language (``--lang km``) when the message has
it, else in English, else in the first language it has. Khmer, Lao, Thai and
Burmese are shown as they are: rich renders them as Unicode text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from schemas import Alert, Bulletin, Incident, Lang, Receipt, WireModel, to_document
from schemas.truststore import STALE
from subscriber.inbox import QUARANTINE_DROPPED, Stored

__all__ = ["headline", "inbox_table", "message_view", "state_of", "status_table"]

_SEVERITY_STYLE = {
    "extreme": "bold white on red",
    "severe": "bold red",
    "moderate": "yellow",
    "minor": "green",
    "unknown": "dim",
}


def _pick(texts: dict[Lang, Any], lang: Lang) -> Any:
    for choice in (lang, Lang.EN):
        if choice in texts:
            return texts[choice]
    return next(iter(texts.values()), None)


def headline(body: WireModel, lang: Lang) -> str:
    """A one-line summary of a message in ``lang`` (falling back to English)."""
    if isinstance(body, Alert | Bulletin):
        text = _pick(body.text, lang)
        return text.headline if text else ""
    if isinstance(body, Incident):
        narrative = _pick(body.narrative, lang) if body.narrative else None
        place = f" at {body.place or body.crossing}" if body.place or body.crossing else ""
        first = (narrative or "").split("\n", 1)[0][:80]
        return f"{body.crime.value.replace('_', ' ')}{place}" + (f": {first}" if first else "")
    if isinstance(body, Receipt):
        return f"{body.status.value} {body.of.hex()[:8]}"
    return type(body).__name__


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
    """The inbox, newest first."""
    table = Table(title=f"inbox ({len(items)})", title_justify="left", expand=False)
    table.add_column("id", no_wrap=True, style="dim")
    table.add_column("severity", no_wrap=True)
    table.add_column("sent", no_wrap=True)
    table.add_column("from", no_wrap=True)
    table.add_column("headline", overflow="fold", min_width=24)
    table.add_column("", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for item in items:
        h = item.sealed.header
        body = item.body
        severity = body.severity.value if isinstance(body, Alert) else h.kind.label
        state = state_of(item, now, cancelled)
        table.add_row(
            h.msg_id.hex()[:6],
            Text(severity, style=_SEVERITY_STYLE.get(severity, "")),
            h.issued.strftime("%m-%d %H:%M"),
            h.sender,
            Text(headline(body, lang), style="bold" if item.read_at is None else ""),
            "unread" if item.read_at is None else "read",
            Text(state, style="green" if state == "active" else "dim"),
        )
    return table


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
    parts: list[Any] = [facts, Text("")]
    body = item.body
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
        parts.append(Text(f"{key}: {value}"))
    title = f"{h.kind.label} from {h.sender}"
    return Panel(Group(*parts), title=title, title_align="left")


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
    for warning in state.get("warnings") or []:
        table.add_row("warning", Text(warning, style="yellow"))
    return table
