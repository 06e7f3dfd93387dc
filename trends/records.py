"""From signed incidents to flat records: who, where, which week, what, how much.

A record is one countable thing: an incident counts once per crime, and a drug
incident once per substance it seized (an incident with heroin and
methamphetamine raises both series). Quantities are converted to one unit per
dimension (kg for mass, litres for volume; tablets, pieces, head and cartons
stay as they are), because 1.9 kg and 300 g of the same substance must add up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas import Crime, Incident, Unit, country_of
from trends.weeks import week_of

__all__ = ["BASE_UNIT", "Record", "base_quantity", "records_of"]

#: Each wire unit as (the unit it is summed in, the factor to get there).
BASE_UNIT: dict[Unit, tuple[str, float]] = {
    Unit.KG: ("kg", 1.0),
    Unit.G: ("kg", 0.001),
    Unit.L: ("l", 1.0),
    Unit.ML: ("l", 0.001),
    Unit.TABLET: ("tablets", 1.0),
    Unit.PIECE: ("pieces", 1.0),
    Unit.HEAD: ("head", 1.0),
    Unit.CARTON: ("cartons", 1.0),
}


def base_quantity(quantity: float, unit: Unit) -> tuple[float, str]:
    """``quantity`` in ``unit`` as (amount, base unit): 300 g is (0.3, "kg")."""
    base, factor = BASE_UNIT[unit]
    return quantity * factor, base


@dataclass(frozen=True, slots=True)
class Record:
    """One countable event: an incident, or one substance of a drug incident."""

    week: int
    office: str
    crossing: str
    country: str
    region: str
    crime: Crime
    #: The substance, for drug trafficking only (lower case); "" otherwise.
    substance: str
    #: Seized amount in ``unit`` (the base unit), 0.0 when nothing was weighed.
    quantity: float
    unit: str


def _substance(name: str) -> str:
    return " ".join(name.lower().split())


def records_of(
    incidents: Iterable[tuple[str, Incident]], regions: Mapping[str, str] | None = None
) -> list[Record]:
    """Records of ``(sender, incident)`` pairs; ``regions`` maps an office to its border
    region (its first region in the keyset), else the office's country stands in."""
    regions = regions or {}
    out: list[Record] = []
    for sender, incident in incidents:
        country = country_of(sender)
        crossing = incident.crossing or incident.place or sender
        region = regions.get(sender) or country
        week = week_of(incident.occurred)
        if incident.crime is Crime.DRUG_TRAFFICKING and incident.items:
            # One record per substance; several items of one substance add up.
            amounts: dict[str, tuple[float, str]] = {}
            for item in incident.items:
                amount, unit = base_quantity(item.quantity, item.unit)
                name = _substance(item.substance)
                held = amounts.get(name)
                if held is None:
                    amounts[name] = (amount, unit)
                elif held[1] == unit:
                    amounts[name] = (held[0] + amount, unit)
            for name, (amount, unit) in amounts.items():
                out.append(
                    Record(
                        week, sender, crossing, country, region, incident.crime, name, amount, unit
                    )
                )
            continue
        amount, unit = 0.0, ""
        if incident.items:
            # Non-drug crimes: the first item's unit is the series' unit; others of
            # the same dimension add up, the rest are not weighed.
            unit = BASE_UNIT[incident.items[0].unit][0]
            for item in incident.items:
                value, base = base_quantity(item.quantity, item.unit)
                if base == unit:
                    amount += value
        out.append(
            Record(week, sender, crossing, country, region, incident.crime, "", amount, unit)
        )
    return out
