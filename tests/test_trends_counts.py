"""From incidents to records, weekly counts and roll-ups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from schemas import Crime, Incident, Item, Position, Unit
from trends.counts import rollup, weekly_counts
from trends.records import records_of
from trends.weeks import label, monday, week_of

HERE = Position(lat=11.07, lon=106.16)
ICT = timezone(timedelta(hours=7))


def incident(crime: Crime, *items: Item, when: datetime | None = None) -> Incident:
    return Incident(
        crime=crime,
        occurred=when or datetime(2026, 6, 17, 10, 0, tzinfo=ICT),
        position=HERE,
        crossing="Bavet",
        items=items,
    )


def test_quantities_in_one_unit_and_one_record_per_substance() -> None:
    drugs = incident(
        Crime.DRUG_TRAFFICKING,
        Item(substance="Methamphetamine", quantity=1.6, unit=Unit.KG),
        Item(substance="methamphetamine ", quantity=300.0, unit=Unit.G),
        Item(substance="heroin", quantity=250.0, unit=Unit.G),
    )
    records = records_of([("kh-blo-bavet", drugs)], {"kh-blo-bavet": "kh-vn-bavet"})
    by = {r.substance: r for r in records}
    assert set(by) == {"methamphetamine", "heroin"}
    assert abs(by["methamphetamine"].quantity - 1.9) < 1e-9
    assert by["methamphetamine"].unit == "kg"
    assert abs(by["heroin"].quantity - 0.25) < 1e-9
    assert by["heroin"].region == "kh-vn-bavet"
    smuggling = incident(Crime.MIGRANT_SMUGGLING)
    (record,) = records_of([("kh-blo-poipet", smuggling)])
    assert (record.substance, record.quantity, record.region) == ("", 0.0, "kh")


def test_the_week_is_the_officers_local_week() -> None:
    # Monday 00:30 in Bavet is a new week there, and still Sunday in UTC.
    monday_night = datetime(2026, 6, 22, 0, 30, tzinfo=ICT)
    (record,) = records_of([("kh-blo-bavet", incident(Crime.OTHER, when=monday_night))])
    assert label(record.week) == "2026-W26"
    assert week_of(monday_night.astimezone(UTC)) == record.week - 1


@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.sampled_from(["kh-blo-bavet", "vn-blo-mocbai"])),
        max_size=60,
    )
)
def test_counts_and_rollups_add_up(events: list[tuple[int, str]]) -> None:
    base = week_of(datetime(2026, 1, 7, tzinfo=UTC))
    pairs = [
        (
            office,
            incident(
                Crime.DRUG_TRAFFICKING,
                Item(substance="yaba", quantity=200.0, unit=Unit.TABLET),
                when=datetime.combine(monday(base + w), datetime.min.time(), ICT),
            ),
        )
        for w, office in events
    ]
    counts = weekly_counts(records_of(pairs))
    assert int(counts.counts.sum()) == len(events)
    for level in ("country", "region"):
        rolled = rollup(counts, level)  # type: ignore[arg-type]
        assert int(rolled.counts.sum()) == len(events)
        assert abs(rolled.quantity.sum() - 200.0 * len(events)) < 1e-6
