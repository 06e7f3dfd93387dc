"""What a person reads (issue 9.17): borders that line up at 80 columns and in Khmer,
clusters never cut, incident fields as lines rather than Python dicts.

Widths here are measured independently of rich: a character takes a cell unless it
is a combining mark or a consonant stacked under the one before by a Khmer COENG.
"""

from __future__ import annotations

import unicodedata
from datetime import timedelta

import pytest
from netsim import ALERT, NOW, Net
from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.text import Text

from demo.scenario import OfficeStatus, Outcome
from demo.view import office_table, outcome_view
from schemas import (
    AlertText,
    Crime,
    Incident,
    Item,
    Lang,
    Position,
    Scope,
    Unit,
    open_envelope,
)
from subscriber.inbox import Stored
from subscriber.views import inbox_table, message_view, status_table

COENG = "\u17d2"
KHMER = "ព្រឹត្តិបត្រស្ដីពីការរឹបអូសហេរ៉ូអ៊ីននៅច្រកព្រំដែនបាវិត ក្រសួងមហាផ្ទៃ"


def cells(line: str) -> int:
    """Terminal cells by cluster: marks and stacked consonants take none."""
    width = 0
    for i, ch in enumerate(line):
        if unicodedata.category(ch) in ("Mn", "Mc", "Me"):
            continue
        if i and line[i - 1] == COENG:
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def render(renderable: RenderableType, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text().rstrip("\n").split("\n")


def assert_boxed(lines: list[str], width: int) -> None:
    """Every line of a bordered table/panel ends at the same column, with its border."""
    body = [line.rstrip() for line in lines if line.strip()]
    boxed = [line for line in body if line[:1] in "┏┃┡│└╭╰┌"]
    assert boxed, lines
    for line in boxed:
        assert line[-1] in "┓┃┩│┘╮╯┐┤", f"right border lost: {line!r}"
        assert cells(line) <= width, f"wider than {width}: {line!r}"
    assert len({cells(line) for line in boxed}) == 1, "\n".join(boxed)


def assert_no_cut_cluster(lines: list[str]) -> None:
    for line in lines:
        for i, ch in enumerate(line):
            if ch == COENG:
                after = line[i + 1 : i + 2]
                assert after, f"cut after COENG: {line!r}"
                assert unicodedata.category(after) == "Lo", f"cut after COENG: {line!r}"


def stored(net: Net, node: str, body: object, scope: Scope) -> Stored:
    sealed = open_envelope(net.send(node, body, scope))  # type: ignore[arg-type]
    return Stored(sealed, sealed.decode_body(), "t", NOW, None)


@pytest.fixture(scope="module")
def inbox_items() -> list[Stored]:
    net = Net()
    khmer = ALERT.model_copy(
        update={"text": {Lang.KM: AlertText(headline=KHMER), Lang.EN: AlertText(headline="x")}}
    )
    incident = Incident(
        crime=Crime.DRUG_TRAFFICKING,
        occurred=NOW - timedelta(hours=1),
        position=Position(lat=11.0791, lon=106.1846, accuracy_m=10),
        items=(Item(substance="methamphetamine", quantity=1.9, unit=Unit.KG, form="crystal"),),
        place="Bavet",
        narrative={Lang.KM: KHMER},
    )
    return [
        stored(net, "kh-nacd", ALERT, Scope.country("kh")),
        stored(net, "kh-nacd", khmer, Scope.country("kh")),
        stored(net, "kh-blo-bavet", incident, Scope.country("kh")),
    ]


@pytest.mark.parametrize("lang", [Lang.EN, Lang.KM])
@pytest.mark.parametrize("width", [80, 100])
def test_inbox_keeps_its_right_border(inbox_items: list[Stored], lang: Lang, width: int) -> None:
    lines = render(inbox_table(inbox_items, lang, NOW, {}), width)
    assert_boxed(lines, width)
    assert_no_cut_cluster(lines)
    assert any("active" in line for line in lines)  # the last column is there


@pytest.mark.parametrize("width", [14, 17, 20, 23])
def test_khmer_folds_between_clusters_not_inside(width: int) -> None:
    lines = render(Panel(Text(KHMER, overflow="fold")), width)
    assert_boxed(lines, width)
    assert_no_cut_cluster(lines)
    shown = "".join(line.strip("│ ") for line in lines[1:-1]).replace(" ", "")
    assert shown == KHMER.replace(" ", "")  # nothing lost or doubled


def test_incident_fields_are_lines_not_dicts(inbox_items: list[Stored]) -> None:
    lines = render(message_view(inbox_items[2], Lang.EN), 80)
    text = "\n".join(lines)
    for python in ("{", "}", "[", "'lat'", "'substance'"):
        assert python not in text.replace("[en]", "").replace("[km]", ""), text
    assert "11.0791° N, 106.1846° E (±10 m)" in text
    assert "1.9 kg methamphetamine" in text
    assert_boxed(lines, 80)
    assert_no_cut_cluster(lines)


def test_status_shows_why_the_link_is_not_up() -> None:
    state = {"node": "kh-blo-bavet", "link": "down", "last_error": "nothing listens on x:1"}
    lines = render(status_table(state, 0, 0, 0, {}, 0), 80)
    assert any("nothing listens on x:1" in line for line in lines)
    assert_boxed(lines, 80)
    up = render(status_table({**state, "link": "up"}, 0, 0, 0, {}, 0), 80)
    assert not any("nothing listens" in line for line in up)


def office(name: str, node: str, role: str = "blo") -> OfficeStatus:
    return OfficeStatus(
        node=node,
        name=name,
        role=role,
        link="up",
        cuts=2,
        alert=True,
        read=True,
        headline=KHMER,
        bulletins=1,
        incidents=1,
        delivered_receipts=12,
        read_receipts=11,
        rejected={"unauthorized": 1},
        forged_accepted=0,
        done=False,
        waiting_for="read receipt",
    )


@pytest.mark.parametrize("lang", ["en", "km"])
@pytest.mark.parametrize("width", [80, 100, 140])
def test_demo_table_keeps_names_and_borders(lang: str, width: int) -> None:
    offices = [
        office("NACD Phnom Penh", "kh-nacd", "hq"),
        office("Bavet (Svay Rieng)", "kh-blo-bavet"),
        office("Stung Treng (Mekong)", "kh-blo-stungtreng"),
    ]
    lines = render(office_table(offices, lang), width)
    assert_boxed(lines, width)
    assert_no_cut_cluster(lines)
    if width >= 100:  # a 100-column terminal shows every office's whole name
        for status in offices:
            assert any(status.name in line for line in lines), "\n".join(lines)


@pytest.mark.parametrize("width", [80, 100])
def test_demo_summary_keeps_names_and_borders(width: int) -> None:
    offices = [
        office("NACD Phnom Penh", "kh-nacd", "hq"),
        office("Bavet (Svay Rieng)", "kh-blo-bavet"),
        office("Stung Treng (Mekong)", "kh-blo-stungtreng"),
    ]
    outcome = Outcome(ok=True, seconds=1.0, offices=offices, events=[], cuts=2)
    lines = render(outcome_view(outcome, "summary"), width)
    assert_boxed(lines, width)
    for status in offices:  # the Office column used to collapse to nothing
        assert any(status.name in line for line in lines), "\n".join(lines)


def test_status_shows_faults_the_client_survived() -> None:
    state = {"node": "kh-blo-bavet", "link": "up", "faults": 2, "last_fault": "ticker: OSError"}
    text = "\n".join(render(status_table(state, 0, 0, 0, {}, 0), 80))
    assert "2 survived; last: ticker: OSError" in text
    clean = "\n".join(render(status_table({**state, "faults": 0}, 0, 0, 0, {}, 0), 80))
    assert "survived" not in clean  # positive control: no faults, no row
