"""Weeks as integers: week 0 starts on Monday 1970-01-05; labels are ISO weeks.

An incident counts in the week of its local date (the officer's week), so a
seizure at 23:30 on Sunday in Bavet is Sunday's, whatever the UTC date.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

__all__ = ["EPOCH_MONDAY", "label", "monday", "week_of", "week_of_date"]

EPOCH_MONDAY = date(1970, 1, 5)


def week_of_date(day: date) -> int:
    """The week number of a calendar date."""
    return (day - EPOCH_MONDAY).days // 7


def week_of(when: datetime) -> int:
    """The week number of an aware time, by its own local date."""
    return week_of_date(when.date())


def monday(week: int) -> date:
    """The Monday that starts ``week``."""
    return EPOCH_MONDAY + timedelta(days=7 * week)


def label(week: int) -> str:
    """``2026-W23``: the ISO year and week of ``week``."""
    year, number, _ = monday(week).isocalendar()
    return f"{year}-W{number:02d}"
