"""The replay window against a plain reference model: a set of every number seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas import ReplayWindow, SeqVerdict

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@given(
    st.lists(st.tuples(st.sampled_from("ab"), st.integers(1, 400)), max_size=200),
    st.integers(8, 300),
    st.integers(1, 20),
)
def test_window_matches_exact_model(events: list[tuple[str, int]], span: int, gaps: int) -> None:
    window = ReplayWindow(span=span, max_gaps=gaps)
    seen: dict[str, set[int]] = {}
    for step, (sender, seq) in enumerate(events):
        verdict = window.check(sender, seq)
        mine = seen.get(sender)
        if mine is None:
            assert verdict is SeqVerdict.NEW
        elif seq in mine:
            # Never accept a number twice, whatever the bounds did.
            assert verdict in (SeqVerdict.DUPLICATE, SeqVerdict.TOO_OLD)
        elif seq > max(mine):
            expected = SeqVerdict.JUMP if seq - max(mine) > span else SeqVerdict.NEW
            assert verdict is expected
        else:
            # Unseen below the top: new unless the bounds dropped it (then too old).
            assert verdict in (SeqVerdict.NEW, SeqVerdict.TOO_OLD)
            if seq >= max(mine) - span and len(window.gaps()) < gaps:
                assert verdict is SeqVerdict.NEW
        if verdict is SeqVerdict.NEW:
            window.commit(sender, seq, T0 + timedelta(seconds=step))
            seen.setdefault(sender, set()).add(seq)
        # Reported gaps are exactly unseen numbers, within bounds.
        for gap in window.gaps():
            assert gap.count >= 1
            assert not any(gap.first <= s <= gap.last for s in seen[gap.sender])
        assert len([g for g in window.gaps() if g.sender == sender]) <= gaps


def test_snapshot_restores_state() -> None:
    window = ReplayWindow()
    for seq in (1, 2, 5, 9):
        window.commit("kh-nacd", seq, T0)
    copy = ReplayWindow()
    copy.restore(window.snapshot())
    assert copy.gaps() == window.gaps()
    assert copy.check("kh-nacd", 5) is SeqVerdict.DUPLICATE
    assert copy.check("kh-nacd", 7) is SeqVerdict.NEW


def test_first_contact_reports_history_as_a_gap() -> None:
    # A replaced tablet hears #120 first: #1-119 are a gap to ask the archive for.
    window = ReplayWindow()
    window.commit("kh-nacd", 120, T0)
    assert [(g.first, g.last) for g in window.gaps()] == [(1, 119)]


def test_gap_count_is_bounded_oldest_dropped() -> None:
    window = ReplayWindow(max_gaps=3)
    for seq in range(1, 20, 2):  # 1, 3, 5, ... leaves a gap at every even number
        window.commit("kh-nacd", seq, T0)
    assert [g.first for g in window.gaps()] == [14, 16, 18]
    assert window.check("kh-nacd", 2) is SeqVerdict.TOO_OLD
    assert window.check("kh-nacd", 16) is SeqVerdict.NEW
