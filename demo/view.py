"""What the demo shows: a live table of the offices, the story so far, and the summary.

Khmer (``--lang km``) is printed as UTF-8 text; a terminal font with Khmer
glyphs (e.g. Noto Sans Khmer) shows it correctly.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from demo.scenario import Event, OfficeStatus, Outcome
from subscriber.views import use_cluster_widths

use_cluster_widths()  # Khmer measured by cluster (see subscriber/views.py)

__all__ = ["live_view", "outcome_view", "story_lines"]

_HEADERS = {
    "en": ("Office", "Link", "Alert", "Read", "Bulletins", "Rejected", ""),
    "km": ("ការិយាល័យ", "បណ្តាញ", "ការជូនដំណឹង", "បានអាន", "ព្រឹត្តិបត្រ", "បានបដិសេធ", ""),
}


def _link(status: OfficeStatus) -> Text:
    mark = Text("● up", style="green") if status.link == "up" else Text("○ down", style="red")
    if status.cuts:
        mark.append(f" ({status.cuts} cuts)", style="yellow")
    return mark


def _row(status: OfficeStatus) -> list[RenderableType]:
    rejected = sum(status.rejected.values())
    if status.role == "hq":
        alert = Text("sent", style="cyan")
        read = Text(
            f"{status.delivered_receipts} got, {status.read_receipts} read",
            style="green" if status.done else "yellow",
        )
        bulletins: RenderableType = Text(f"{status.incidents} incident", style="cyan")
    else:
        alert = Text("✓ " + status.headline, style="green") if status.alert else Text("—")
        if status.role == "counterpart":
            alert = Text("not addressed", style="dim")
        read = Text("✓", style="green") if status.read else Text("—")
        bulletins = Text(str(status.bulletins)) if status.bulletins else Text("—")
    refused = Text(str(rejected), style="bold red") if rejected else Text("0")
    if status.forged_accepted:
        done = Text(f"✗ {status.forged_accepted} wrongly held", style="bold red")
    elif status.done:
        done = Text("✓", style="bold green")
    else:
        done = Text(f"… {status.waiting_for}", style="yellow")
    for cell in (alert, read, done):
        cell.no_wrap, cell.overflow = True, "ellipsis"  # one line: the live view's height is fixed
    return [Text(status.name, style="bold"), _link(status), alert, read, bulletins, refused, done]


def office_table(offices: list[OfficeStatus], lang: str, *, max_rows: int = 0) -> Table:
    """One row per office; with ``max_rows``, offices still waiting are shown first.

    The office's name keeps its width (up to 20 cells); free text (the alert's
    headline, the read count, what is still awaited) gives way, cut with an
    ellipsis on one line. Widths are measured by grapheme cluster
    (subscriber.views), so Khmer keeps the borders in line.
    """
    table = Table(expand=True, pad_edge=False)
    name = min(max((cell_len(o.name) for o in offices), default=6), 20)
    # (min width, share of what is left, wraps): rich narrows "wrapping" columns first.
    layout = (
        (name, None, False),
        (None, None, False),
        (6, 2, True),
        (8, 2, True),
        (None, None, False),
        (None, None, False),
        (3, 1, True),
    )
    for header, (least, ratio, gives) in zip(_HEADERS[lang], layout, strict=True):
        table.add_column(
            header,
            no_wrap=not gives,
            overflow="ellipsis",
            min_width=least,
            max_width=name if header == _HEADERS[lang][0] else None,
            ratio=ratio,
        )
    shown = offices
    if max_rows and len(offices) > max_rows:
        shown = [o for o in offices if not o.done or o.role == "hq" or o.cuts][:max_rows]
        shown += [o for o in offices if o not in shown][: max_rows - len(shown)]
    for status in shown:
        table.add_row(*_row(status))
    if len(shown) < len(offices):
        rest = len(offices) - len(shown)
        done = sum(1 for o in offices if o.done and o not in shown)
        table.add_row(Text(f"… {rest} more offices ({done} done)", style="dim"), *[""] * 6)
    return table


def story_lines(events: list[Event], last: int = 0) -> Text:
    """The story so far, one line per event (the ``last`` lines only, if given)."""
    text = Text()
    for event in events[-last:] if last else events:
        text.append(f"{event.at:6.1f} s  ", style="dim")
        text.append(event.text + "\n")
    return text


def live_view(
    title: str, offices: list[OfficeStatus], events: list[Event], lang: str, height: int
) -> RenderableType:
    """The screen while the story runs."""
    rows = max(height - 16, 5)
    return Group(
        Panel(office_table(offices, lang, max_rows=rows), title=title, title_align="left"),
        Panel(story_lines(events, last=8), title="story", title_align="left"),
    )


def outcome_view(outcome: Outcome, title: str) -> RenderableType:
    """The summary after the run: every office, and the verdict."""
    table = Table(title=title, expand=False)
    # rich narrows only the columns that may wrap (a min_width would push the border
    # out): the office's name and node keep their width, what it holds wraps.
    table.add_column("Office", no_wrap=True, overflow="ellipsis", max_width=20)
    table.add_column("Node", no_wrap=True, overflow="ellipsis", max_width=18)
    table.add_column("Cuts", no_wrap=True, justify="right")
    table.add_column("Holds", overflow="fold")
    table.add_column("Refused (why)", overflow="fold")
    table.add_column("Result", overflow="fold")
    for status in outcome.offices:
        holds = []
        if status.role == "hq":
            holds.append(f"incident {status.incidents}")
            holds.append(
                f"receipts: {status.delivered_receipts} delivered, {status.read_receipts} read"
            )
        else:
            if status.alert:
                holds.append("alert (read)" if status.read else "alert")
            if status.bulletins:
                holds.append(f"bulletin {status.bulletins}")
        why = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(status.rejected.items()))
        result = (
            Text("✓", style="bold green")
            if status.done
            else Text(f"✗ {status.waiting_for or 'holds a forgery'}", style="bold red")
        )
        table.add_row(
            status.name, status.node, str(status.cuts or ""), ", ".join(holds) or "—", why, result
        )
    if outcome.ok:
        verdict = Text(
            f"PASS: NACD and all {len(outcome.offices) - 1} office tablets hold what they should "
            f"and nothing forged was accepted ({outcome.seconds:.1f} s, {outcome.cuts} link cuts).",
            style="bold green",
        )
        if outcome.map_file is not None:
            where = f"\nThe incident's map (HQ): {outcome.map_file}"
            if not outcome.map_kept:
                where += " (removed with this run's temporary folder: keep it with --dir DIR)"
            verdict.append(where, style="green")
    else:
        verdict = Text(
            "FAIL: " + "; ".join(outcome.problems or ["see the table"]), style="bold red"
        )
    return Group(table, verdict)
