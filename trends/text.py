"""What a signal says, in English and Khmer: one line an officer understands.

Khmer lines use Khmer digits and the Khmer names of crimes and of the common
substances; a substance without a Khmer name keeps its English one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas import Crime

if TYPE_CHECKING:
    from trends.detectors import Signal

__all__ = ["COUNTRY_NAMES", "CRIME_KM", "LANGS", "SUBSTANCE_KM", "explain", "khmer_digits", "what"]

LANGS = ("en", "km")

CRIME_KM: dict[Crime, str] = {
    Crime.DRUG_TRAFFICKING: "ការជួញដូរគ្រឿងញៀន",
    Crime.MIGRANT_SMUGGLING: "ការរត់ពន្ធជនចំណាកស្រុក",
    Crime.HUMAN_TRAFFICKING: "ការជួញដូរមនុស្ស",
    Crime.WILDLIFE: "ការជួញដូរសត្វព្រៃ",
    Crime.WEAPONS: "ការជួញដូរអាវុធ",
    Crime.COUNTERFEIT_GOODS: "ទំនិញក្លែងក្លាយ",
    Crime.OTHER: "បទល្មើសផ្សេងៗ",
}
SUBSTANCE_KM: dict[str, str] = {
    "methamphetamine": "មេតំហ្វេតាមីន",
    "heroin": "ហេរ៉ូអ៊ីន",
    "cannabis": "កញ្ឆា",
    "ketamine": "កេតាមីន",
    "cocaine": "កូកាអ៊ីន",
    "yaba": "ថ្នាំយ៉ាម៉ា",
    "opium": "អាភៀន",
    "mdma": "អិចស្តាស៊ី",
}
UNIT_KM = {
    "kg": "គីឡូក្រាម",
    "l": "លីត្រ",
    "tablets": "គ្រាប់",
    "pieces": "ដុំ",
    "head": "ក្បាល",
    "cartons": "កេស",
}
COUNTRY_NAMES: dict[str, tuple[str, str]] = {
    "kh": ("Cambodia", "កម្ពុជា"),
    "cn": ("China", "ចិន"),
    "la": ("Lao PDR", "ឡាវ"),
    "mm": ("Myanmar", "មីយ៉ាន់ម៉ា"),
    "th": ("Thailand", "ថៃ"),
    "vn": ("Viet Nam", "វៀតណាម"),
}
_KHMER_DIGITS = str.maketrans("0123456789", "០១២៣៤៥៦៧៨៩")


def khmer_digits(text: str) -> str:
    """``text`` with its digits written in Khmer."""
    return text.translate(_KHMER_DIGITS)


def what(crime: Crime, substance: str, lang: str = "en") -> str:
    """The name of a series' subject: the substance for drugs, else the crime."""
    if lang == "km":
        return SUBSTANCE_KM.get(substance, substance) if substance else CRIME_KM[crime]
    return substance or crime.value.replace("_", " ")


def _p(p: float | None) -> str:
    if p is None:
        return ""
    return "p < 0.0001" if p < 0.0001 else f"p = {p:.4f}"


def _n(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def explain(signal: Signal, lang: str = "en") -> str:
    """One line for ``signal`` in ``lang`` (en or km)."""
    from trends.detectors import Detector

    k = signal.key
    x, e, sd = signal.observed, signal.expected, signal.spread
    place = k.place
    if k.level == "country" and k.place in COUNTRY_NAMES:
        place = COUNTRY_NAMES[k.place][1 if lang == "km" else 0]
    head = f"{place}, {what(k.crime, k.substance, lang)}: "
    d = signal.detector
    if lang == "km":
        if d is Detector.FIRST_SEEN:
            body = f"ឃើញលើកដំបូងក្នុងរយៈពេល ៥២ សប្តាហ៍ ({_n(x)} ករណីសប្តាហ៍នេះ)"
        elif d is Detector.QUANTITY:
            unit = UNIT_KM.get(signal.unit, signal.unit)
            body = (
                f"ការរឹបអូស {_n(x)} {unit} ធំជាងធម្មតា {x / max(e, 1e-9):.0f} ដង "
                f"(ធម្មតា {e:.2g} {unit}, {signal.baseline_n} ការរឹបអូសក្នុងមួយឆ្នាំកន្លងមក)"
            )
        else:
            name = {
                Detector.EARS_C2: "EARS C2",
                Detector.POISSON: "Poisson",
                Detector.GLM: "GLM តាមរដូវ",
            }[d]
            body = f"{_n(x)} ករណីសប្តាហ៍នេះ, កម្រិតមូលដ្ឋាន {e:.1f} +- {sd:.1f}, {_p(signal.p)}"
            # The detector's name keeps its Latin digits (EARS C2 is a name, not a number).
            return khmer_digits(head + body) + f" ({name})"
        return khmer_digits(head + body)
    if d is Detector.FIRST_SEEN:
        body = f"first seen in 52 weeks ({_n(x)} this week)"
    elif d is Detector.QUANTITY:
        body = (
            f"a {_n(x)} {signal.unit} seizure, {x / max(e, 1e-9):.0f}x the usual "
            f"{e:.2g} {signal.unit} ({signal.baseline_n} seizures in the past year)"
        )
    else:
        name = {
            Detector.EARS_C2: "EARS C2",
            Detector.POISSON: "Poisson",
            Detector.GLM: "seasonal GLM",
        }[d]
        noun = "incident" if x == 1 else "incidents"
        body = f"{_n(x)} {noun} this week, baseline {e:.1f} +- {sd:.1f}, {_p(signal.p)} ({name})"
    return head + body
