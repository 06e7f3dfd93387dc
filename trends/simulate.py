"""A realistic incident history to prove the detectors on, with a truth file.

``history`` is pure: offices x weeks of sparse, seasonal, over-dispersed counts
per crime and substance, with seizure sizes drawn per substance, and injected
events recorded in ``Truth``:

    outbreak       a series' rate rises by 3 to 6 incidents a week (plus twice its
                   usual level) for 3 to 8 weeks: a new route, a new network
    new_substance  a substance never seen at the office appears and stays
    quantity       one seizure 20 to 60 times the series' usual (median) size

``write`` turns a history into real signed incidents: a PKI per country (certs.Pki),
each office's incidents sealed in order under its own key and outbox epoch,
checked by a real ``Receiver`` and stored in each HQ's inbox (subscriber.Inbox)
and in one archive store (broker.archive) that holds every country's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas import Crime, Incident, Item, Position, Signer, Unit
from trends.errors import SimulateError
from trends.offices import Office, pick
from trends.weeks import monday, week_of_date

__all__ = ["Event", "History", "SimIncident", "Truth", "history", "incidents_of", "write"]

_YEAR = 365.25 / 7

# series: (crime, substance, base rate per week, unit, median size, share of offices)
_SERIES: list[tuple[Crime, str, float, Unit | None, float, float]] = [
    (Crime.DRUG_TRAFFICKING, "methamphetamine", 1.2, Unit.KG, 0.6, 1.0),
    (Crime.DRUG_TRAFFICKING, "heroin", 0.35, Unit.KG, 0.4, 0.6),
    (Crime.DRUG_TRAFFICKING, "cannabis", 0.35, Unit.KG, 3.0, 0.7),
    (Crime.DRUG_TRAFFICKING, "ketamine", 0.25, Unit.KG, 0.5, 0.5),
    (Crime.DRUG_TRAFFICKING, "yaba", 0.4, Unit.TABLET, 2000.0, 0.6),
    (Crime.MIGRANT_SMUGGLING, "", 0.8, None, 0.0, 1.0),
    (Crime.HUMAN_TRAFFICKING, "", 0.2, None, 0.0, 0.8),
    (Crime.WILDLIFE, "", 0.3, Unit.KG, 5.0, 0.7),
    (Crime.WEAPONS, "", 0.12, Unit.PIECE, 2.0, 0.6),
    (Crime.COUNTERFEIT_GOODS, "", 0.35, Unit.CARTON, 10.0, 0.8),
    (Crime.OTHER, "", 0.25, None, 0.0, 1.0),
]
#: Substances an office may see appear for the first time.
_NEW = ["ketamine", "heroin", "mdma", "nimetazepam", "fentanyl"]
_NEW_SIZE = {"mdma": (Unit.TABLET, 500.0), "nimetazepam": (Unit.TABLET, 300.0)}
#: A floor on a present series' rate, so a crime an office handles is not gone for a
#: year by chance (that would be a true "first seen", but not an injected one).
_MIN_RATE = 0.1
_TZ = {"cn": 32, "mm": 26}  # UTC offset in quarter hours; the others are +7 (28)


@dataclass(frozen=True, slots=True)
class SimIncident:
    """One simulated incident before it is signed."""

    office: int
    week: int
    crime: Crime
    substance: str
    quantity: float
    unit: Unit | None
    minute: int  # minutes into the week, local time


@dataclass(frozen=True, slots=True)
class Event:
    """One injected event (the truth file's rows)."""

    kind: str  # outbreak | new_substance | quantity
    office: str
    crossing: str
    crime: str
    substance: str
    start_week: int
    weeks: int
    size: float  # extra incidents a week, or the spike's size factor


@dataclass(frozen=True)
class Truth:
    """What was injected where, for scoring detection."""

    seed: int
    offices: list[str]
    first_week: int
    last_week: int
    events: list[Event] = field(default_factory=list)

    def dumps(self) -> str:
        """The truth file's JSON text."""
        return json.dumps(
            {
                "seed": self.seed,
                "offices": self.offices,
                "first_week": self.first_week,
                "last_week": self.last_week,
                "events": [asdict(e) for e in self.events],
            },
            indent=1,
        )

    @classmethod
    def loads(cls, text: str) -> Truth:
        """Read a truth file's JSON text."""
        doc = json.loads(text)
        return cls(
            doc["seed"],
            doc["offices"],
            doc["first_week"],
            doc["last_week"],
            [Event(**e) for e in doc["events"]],
        )


@dataclass(frozen=True)
class History:
    """A simulated history: the offices, their incidents, and the truth."""

    offices: tuple[Office, ...]
    incidents: list[SimIncident]
    truth: Truth


def _season(crime: Crime, week: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    # Drugs peak in the dry season (Jan-Mar), migration after Khmer/Thai New Year (Apr-May).
    peak = {Crime.MIGRANT_SMUGGLING: 16, Crime.HUMAN_TRAFFICKING: 18}.get(crime, 6)
    return np.asarray(1 + 0.35 * np.cos(2 * np.pi * (week - peak) / _YEAR), dtype=np.float64)


def history(
    offices: int = 74,
    years: float = 3,
    seed: int = 1,
    end: datetime | None = None,
    *,
    outbreaks: int | None = None,
    new_substances: int | None = None,
    spikes: int | None = None,
    inject: bool = True,
) -> History:
    """Simulate ``years`` of weekly incidents at ``offices`` offices, ending with the week
    of ``end`` (default 2026-06-29). Event counts default to about one outbreak per 8
    office-years, one new substance per 25 and one large seizure per 15."""
    if not 1 <= offices <= 74:
        raise SimulateError(f"--offices {offices}: the simulation knows 1 to 74 offices")
    if not 0.5 <= years <= 10:
        raise SimulateError(f"--years {years}: simulate 0.5 to 10 years")
    rng = np.random.default_rng(seed)
    chosen = pick(offices)
    last = week_of_date((end or datetime(2026, 6, 29, tzinfo=UTC)).date())
    n = round(years * _YEAR)
    first = last - n + 1
    weeks = np.arange(first, last + 1)
    office_years = offices * years
    n_out = outbreaks if outbreaks is not None else max(1, round(office_years / 8))
    n_new = new_substances if new_substances is not None else max(1, round(office_years / 25))
    n_spk = spikes if spikes is not None else max(1, round(office_years / 15))
    if not inject:
        n_out = n_new = n_spk = 0
    # Events need a baseline before them: new substances a year and more (first seen).
    if n < 70:
        n_new = 0
    # Rates: office size (log-normal), slow trend, office-week noise shared by series.
    size = rng.lognormal(0.0, 0.5, offices)
    trend = rng.normal(0.0, 0.12, offices)
    noise = rng.gamma(20.0, 1 / 20.0, (offices, n))
    present = np.asarray([[rng.random() < share for *_, share in _SERIES] for _ in range(offices)])
    present[:, 0] = True
    rate = np.zeros((offices, len(_SERIES), n))
    years_in = (weeks - first) / _YEAR
    for s, (crime, _sub, base, *_rest) in enumerate(_SERIES):
        level = np.maximum(base * size, _MIN_RATE)
        rate[:, s, :] = (
            level[:, None]
            * _season(crime, weeks)[None, :]
            * np.exp(trend[:, None] * years_in[None, :])
            * noise
        )
    rate *= present[:, :, None]
    counts = rng.poisson(rate)
    scale = np.ones(counts.shape)  # seizure size factor (quantity spikes)
    extra_series: list[tuple[int, str, Unit, float, int, float]] = []
    events: list[Event] = []
    busy: set[tuple[int, int, int]] = set()

    def free(o: int, s: int, start: int, length: int) -> bool:
        return all((o, s, w) not in busy for w in range(start - 14, start + length + 14))

    tries = 0
    while len([e for e in events if e.kind == "outbreak"]) < n_out and tries < 10_000:
        tries += 1
        o = int(rng.integers(offices))
        s = int(rng.choice(np.flatnonzero(present[o])))
        length = int(rng.integers(3, 9))
        start = int(rng.integers(16, n - 3))
        if not free(o, s, start, length):
            continue
        extra = float(rng.uniform(3.0, 6.0))
        for k in range(start, min(start + length, n)):
            ramp = 0.6 if k == start else 1.0
            counts[o, s, k] += rng.poisson(ramp * (extra + 2 * rate[o, s, k]))
            busy.add((o, s, k))
        crime, sub = _SERIES[s][0], _SERIES[s][1]
        events.append(
            Event(
                "outbreak",
                chosen[o].node,
                chosen[o].crossing,
                crime.value,
                sub,
                int(weeks[start]),
                length,
                round(extra, 2),
            )
        )
    tries = 0
    while len([e for e in events if e.kind == "quantity"]) < n_spk and tries < 10_000:
        tries += 1
        o = int(rng.integers(offices))
        weighed = [s for s in np.flatnonzero(present[o]) if _SERIES[s][3] is not None]
        s = int(rng.choice(weighed))
        k = int(rng.integers(min(60, n - 8), n))
        if not free(o, s, k, 1):
            continue
        busy.add((o, s, k))
        counts[o, s, k] = max(counts[o, s, k], 1)
        factor = float(rng.uniform(20.0, 60.0))
        scale[o, s, k] = factor
        crime, sub = _SERIES[s][0], _SERIES[s][1]
        events.append(
            Event(
                "quantity",
                chosen[o].node,
                chosen[o].crossing,
                crime.value,
                sub,
                int(weeks[k]),
                1,
                round(factor, 1),
            )
        )
    taken: set[tuple[int, str]] = set()
    tries = 0
    while len([e for e in events if e.kind == "new_substance"]) < n_new and tries < 10_000:
        tries += 1
        o = int(rng.integers(offices))
        held = {_SERIES[s][1] for s in np.flatnonzero(present[o])}
        options = [x for x in _NEW if x not in held and (o, x) not in taken]
        if not options:
            continue
        sub = str(rng.choice(options))
        start = int(rng.integers(60, n - 2))
        new_level = float(rng.uniform(0.3, 1.0))
        taken.add((o, sub))
        unit, median = _NEW_SIZE.get(sub, (Unit.KG, 0.3))
        extra_series.append((o, sub, unit, median, start, new_level))
        events.append(
            Event(
                "new_substance",
                chosen[o].node,
                chosen[o].crossing,
                Crime.DRUG_TRAFFICKING.value,
                sub,
                int(weeks[start]),
                n - start,
                new_level,
            )
        )
    out: list[SimIncident] = []
    sigma = 0.9
    for o, s, k in zip(*np.nonzero(counts), strict=True):
        crime, sub, _base, unit, median, _share = _SERIES[s]
        for _ in range(int(counts[o, s, k])):
            q: float = 0.0
            if unit is not None:
                if scale[o, s, k] > 1:
                    # A record seizure: the factor times the usual size, once.
                    q = float(median * scale[o, s, k])
                    scale[o, s, k] = 1.0
                else:
                    q = float(median * rng.lognormal(0.0, sigma))
            out.append(
                SimIncident(
                    int(o), int(weeks[k]), crime, sub, q, unit, int(rng.integers(7 * 24 * 60))
                )
            )
    for o, sub, unit, median, start, new_level in extra_series:
        new_counts = rng.poisson(new_level * noise[o, start:])
        new_counts[0] = max(new_counts[0], 1)  # the truth's start is its first incident
        for j, c in enumerate(new_counts.tolist()):
            for _ in range(c):
                out.append(
                    SimIncident(
                        o,
                        int(weeks[start + j]),
                        Crime.DRUG_TRAFFICKING,
                        sub,
                        float(median * rng.lognormal(0.0, sigma)),
                        unit,
                        int(rng.integers(7 * 24 * 60)),
                    )
                )
    out.sort(key=lambda i: (i.office, i.week, i.minute))
    truth = Truth(seed, [o.node for o in chosen], first, last, events)
    return History(chosen, out, truth)


def to_incident(office: Office, sim: SimIncident, rng: np.random.Generator) -> Incident:
    """The wire incident of a simulated one (local time, position near the crossing)."""
    tz = timezone(timedelta(minutes=15 * _TZ.get(office.country, 28)))
    occurred = datetime.combine(monday(sim.week), time(), tz) + timedelta(minutes=sim.minute)
    items: tuple[Item, ...] = ()
    if sim.unit is not None:
        quantity, unit = sim.quantity, sim.unit
        if unit is Unit.KG and quantity < 1:
            quantity, unit = quantity * 1000, Unit.G  # small seizures are weighed in grams
        if unit in (Unit.TABLET, Unit.PIECE, Unit.CARTON):
            quantity = float(max(1, round(quantity)))
        items = (
            Item(
                substance=sim.substance or sim.crime.value, quantity=round(quantity, 3), unit=unit
            ),
        )
    return Incident(
        crime=sim.crime,
        occurred=occurred,
        position=Position(
            lat=round(office.lat + rng.normal(0, 0.02), 5),
            lon=round(office.lon + rng.normal(0, 0.02), 5),
            accuracy_m=int(rng.integers(5, 200)),
        ),
        crossing=office.crossing,
        items=items,
        persons_detained=int(rng.poisson(1.5)),
    )


def _signer(pki_dir: Path, node: str) -> Signer:
    key = serialization.load_pem_private_key(
        (pki_dir / "nodes" / node / "sign.key").read_bytes(), password=None
    )
    if not isinstance(key, Ed25519PrivateKey):
        raise SimulateError(f"{pki_dir}/nodes/{node}/sign.key is not an Ed25519 key")
    return Signer(node, key)


def write(
    hist: History,
    out: Path,
    now: datetime,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write ``hist`` as signed incidents under ``out``; returns the paths written.

    Layout: ``pki/CC/`` (one PKI per country, every other root imported),
    ``data/CC-nacd/inbox.sqlite3`` (each HQ's inbox), ``archive.sqlite3`` (all
    countries' incidents, as the archive stores them) and ``truth.json``.
    """
    from broker.archive import ArchiveStore
    from certs import NodeSpec, Pki
    from schemas import Kind, Receiver, Role, Scope, TrustStore, seal, topics_for, trust_topic
    from subscriber.inbox import Inbox

    say = progress or (lambda _text: None)
    if out.exists() and any(out.iterdir()):
        raise SimulateError(f"{out} is not empty: give a new folder for the simulation")
    start = datetime.combine(monday(hist.truth.first_week), time(), UTC) - timedelta(days=7)
    days = (now - start).days + 400
    countries = sorted({o.country for o in hist.offices})
    pkis: dict[str, Pki] = {}
    for cc in countries:
        pki = pkis[cc] = Pki(out / "pki" / cc)
        pki.init(cc, f"{cc}-nacd", start, days=days + 3650)
        specs = [NodeSpec(o.node, Role.BLO, (o.region,)) for o in hist.offices if o.country == cc]
        pki.issue_many(specs, start, days=days, bundles=False)
    for cc, pki in pkis.items():
        for other in countries:
            if other != cc:
                pki.import_root(pkis[other].dir)
        pki.refresh(now)  # a current keyset, as the HQ holds at ``now``
    for pki in pkis.values():
        pki.write_bundle(f"{pki.country}-nacd")
    say(f"PKI of {len(countries)} countries in {out / 'pki'}")
    roots = {cc: pki.roots()[cc] for cc, pki in pkis.items()}
    store = TrustStore(roots)
    receiver = Receiver(store)
    archive = ArchiveStore(out / "archive.sqlite3")
    inboxes = {cc: Inbox(out / "data" / f"{cc}-nacd" / "inbox.sqlite3") for cc in countries}
    for cc, pki in pkis.items():
        data = (pki.dir / "trust" / "keyset.msg").read_bytes()
        topic = trust_topic(Kind.KEYSET, cc)
        result = receiver.receive(topic, data, now)
        if not result.ok:
            raise SimulateError(f"keyset of {cc} refused: {result}")
        archive.add(result, topic, now)  # type: ignore[arg-type]
        for inbox in inboxes.values():
            inbox.save_trust(Kind.KEYSET, cc, pki.keyset().version, data)
    rng = np.random.default_rng(hist.truth.seed + 1)
    by_office: dict[int, list[SimIncident]] = {}
    for sim in hist.incidents:
        by_office.setdefault(sim.office, []).append(sim)
    total = 0
    for o, sims in sorted(by_office.items()):
        office = hist.offices[o]
        signer = _signer(pkis[office.country].dir, office.node)
        epoch = int(rng.integers(1, 2**62))
        scope = Scope.country(office.country)
        topic = topics_for(Kind.INCIDENT, scope, office.node)[0]
        batch = []
        for seq, sim in enumerate(sims, start=1):
            incident = to_incident(office, sim, rng)
            issued = min(incident.occurred + timedelta(hours=2), now)
            wire = seal(
                signer,
                incident,
                seq=seq,
                scope=scope,
                issued=issued,
                expires=issued + timedelta(days=365),
                epoch=epoch,
            )
            result = receiver.receive(topic, wire, now)
            if not result.ok:
                raise SimulateError(f"{office.node} #{seq} refused: {result}")
            batch.append(result)
            archive.add(result, topic, now)  # type: ignore[arg-type]
        inboxes[office.country].add_many(batch, now)  # type: ignore[arg-type]
        total += len(batch)
        say(f"{office.node}: {len(batch)} incidents")
    archive.close()
    for inbox in inboxes.values():
        inbox.close()
    truth = out / "truth.json"
    truth.write_text(hist.truth.dumps() + "\n")
    say(f"{total} signed incidents; truth in {truth}")
    return {
        "archive": out / "archive.sqlite3",
        "truth": truth,
        **{f"{cc}-nacd": out / "data" / f"{cc}-nacd" for cc in countries},
    }


def incidents_of(hist: History) -> list[tuple[str, Incident]]:
    """The history as (sender, incident) pairs, unsigned (for fast measurement)."""
    rng = np.random.default_rng(hist.truth.seed + 1)
    return [
        (hist.offices[s.office].node, to_incident(hist.offices[s.office], s, rng))
        for s in hist.incidents
    ]
