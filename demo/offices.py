"""The offices of the demo: Cambodia's NACD, its Border Liaison Offices, and Viet Nam's Moc Bai.

The twelve Cambodian offices are named after real border crossings, as
*examples*: the report does not list the BLO locations, and which crossings
host a BLO is not claimed here. Past twelve (``--offices``), simulated posts
are added round the three land borders.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HQ", "VN_COUNTERPART", "Office", "offices"]

HQ = "kh-nacd"
VN_COUNTERPART = "vn-blo-mocbai"
_BORDER_NAMES = {"vn": "Viet Nam", "la": "Lao PDR", "th": "Thailand"}


@dataclass(frozen=True, slots=True)
class Office:
    """One office tablet: its node id, names in English and Khmer, and the border it faces."""

    node: str
    name: str
    name_km: str
    border: str  # the neighbouring country's code
    regions: tuple[str, ...]
    counterparts: tuple[str, ...] = ()

    @property
    def country(self) -> str:
        return self.node[:2]

    def label(self, lang: str) -> str:
        """The office's name in ``lang`` (Khmer where known)."""
        return self.name_km if lang == "km" and self.name_km else self.name


def _kh(node: str, name: str, km: str, border: str, *extra: str, peer: str = "") -> Office:
    peers = (peer,) if peer else ()
    return Office(f"kh-blo-{node}", name, km, border, (f"kh-{border}", *extra), peers)


# Example crossings (see the module docstring): Bavet first, as it is the story's.
_CAMBODIA = [
    _kh("bavet", "Bavet", "បាវិត", "vn", "kh-vn-bavet", peer=VN_COUNTERPART),
    _kh("dongkralor", "Dong Kralor", "ដូងក្រឡ", "la"),
    _kh("poipet", "Poipet", "ប៉ោយប៉ែត", "th"),
    _kh("chamyeam", "Cham Yeam", "ចាំយាម", "th"),
    _kh("osmach", "O'Smach", "អូរស្មាច់", "th"),
    _kh("prumpailin", "Prum (Pailin)", "ព្រំ ប៉ៃលិន", "th"),
    _kh("kaamsamnor", "Kaam Samnor", "ក្អមសំណរ", "vn"),
    _kh("phnomden", "Phnom Den", "ភ្នំដិន", "vn"),
    _kh("prekchak", "Prek Chak", "ព្រែកចាក", "vn"),
    _kh("trapeangphlong", "Trapeang Phlong", "ត្រពាំងផ្លុង", "vn"),
    _kh("oyadav", "O'Yadav", "អូរយ៉ាដាវ", "vn"),
    _kh("stungtreng", "Stung Treng (Mekong)", "ស្ទឹងត្រែង", "la"),
]
_COUNTERPART = Office(
    VN_COUNTERPART, "Moc Bai (Viet Nam)", "មុកបៃ (វៀតណាម)", "kh", ("kh-vn-bavet",), ("kh-blo-bavet",)
)


def offices(count: int) -> list[Office]:
    """``count`` office tablets: Cambodian BLOs, with Viet Nam's office facing Bavet last."""
    if count < 3:
        raise ValueError("the scenario needs at least 3 offices (Bavet, another BLO, Moc Bai)")
    cambodian = list(_CAMBODIA[: count - 1])
    borders = ["vn", "th", "la"]
    for number in range(len(cambodian) + 1, count):
        border = borders[number % 3]
        name = f"Post {number} ({_BORDER_NAMES[border]} border, simulated)"
        km = f"ប៉ុស្តិ៍ {number}"
        cambodian.append(_kh(f"post{number}", name, km, border))
    return [*cambodian, _COUNTERPART]
