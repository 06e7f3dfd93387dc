"""The 74 Border Liaison Offices of the simulation: node, crossing, border region, position.

Names follow the programme's real crossings where they are public; positions
are approximate (to a few km) and only place the incidents on a map.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OFFICES", "Office", "pick"]


@dataclass(frozen=True, slots=True)
class Office:
    """One BLO: its node id, its crossing's name, its border region and position."""

    node: str
    crossing: str
    region: str
    lat: float
    lon: float

    @property
    def country(self) -> str:
        """The office's country code."""
        return self.node[:2]


# (country, crossing, facing country, lat, lon)
_TABLE: list[tuple[str, str, str, float, float]] = [
    ("kh", "Bavet", "vn", 11.07, 106.16),
    ("kh", "Poipet", "th", 13.66, 102.56),
    ("kh", "Koh Kong", "th", 11.62, 102.91),
    ("kh", "O'Smach", "th", 14.43, 103.70),
    ("kh", "Dong Kralor", "la", 13.92, 105.97),
    ("kh", "Prek Chak", "vn", 10.47, 104.48),
    ("kh", "Kaam Samnor", "vn", 11.02, 105.05),
    ("kh", "Phnom Den", "vn", 10.76, 104.83),
    ("kh", "Trapeang Kriel", "la", 13.95, 106.05),
    ("kh", "Oyadav", "vn", 13.58, 107.52),
    ("kh", "Pailin", "th", 12.85, 102.58),
    ("kh", "Choam", "th", 14.30, 103.90),
    ("th", "Mae Sai", "mm", 20.43, 99.88),
    ("th", "Chiang Saen", "la", 20.27, 100.09),
    ("th", "Chiang Khong", "la", 20.26, 100.41),
    ("th", "Nong Khai", "la", 17.87, 102.72),
    ("th", "Mukdahan", "la", 16.54, 104.73),
    ("th", "Nakhon Phanom", "la", 17.40, 104.78),
    ("th", "Aranyaprathet", "kh", 13.69, 102.51),
    ("th", "Khlong Yai", "kh", 11.66, 102.89),
    ("th", "Mae Sot", "mm", 16.71, 98.57),
    ("th", "Ranong", "mm", 9.96, 98.63),
    ("th", "Chong Chom", "kh", 14.43, 103.71),
    ("th", "Ban Pakard", "kh", 12.85, 102.57),
    ("th", "Chong Mek", "la", 15.12, 105.57),
    ("th", "Bueng Kan", "la", 18.36, 103.65),
    ("th", "Mae Sariang", "mm", 18.16, 97.93),
    ("th", "Sangkhlaburi", "mm", 15.16, 98.45),
    ("la", "Houayxay", "th", 20.28, 100.41),
    ("la", "Boten", "cn", 21.19, 101.67),
    ("la", "Tonpheung", "mm", 20.36, 100.10),
    ("la", "Thakhek", "th", 17.40, 104.80),
    ("la", "Savannakhet", "th", 16.55, 104.75),
    ("la", "Vientiane", "th", 17.88, 102.70),
    ("la", "Vangtao", "th", 15.12, 105.58),
    ("la", "Nong Nokkhian", "kh", 13.92, 105.99),
    ("la", "Lak Sao", "vn", 18.38, 105.17),
    ("la", "Densavan", "vn", 16.60, 106.63),
    ("la", "Pakxan", "th", 18.39, 103.66),
    ("la", "Phou Keua", "vn", 14.70, 107.45),
    ("la", "Xiengkok", "mm", 20.92, 100.60),
    ("la", "Pangmong", "cn", 21.60, 101.90),
    ("vn", "Moc Bai", "kh", 11.08, 106.16),
    ("vn", "Lao Bao", "la", 16.62, 106.60),
    ("vn", "Cau Treo", "la", 18.38, 105.17),
    ("vn", "Tinh Bien", "kh", 10.60, 104.95),
    ("vn", "Xa Xia", "kh", 10.45, 104.48),
    ("vn", "Lao Cai", "cn", 22.50, 103.96),
    ("vn", "Mong Cai", "cn", 21.53, 107.96),
    ("vn", "Huu Nghi", "cn", 21.97, 106.70),
    ("vn", "Bo Y", "la", 14.70, 107.55),
    ("vn", "Na Meo", "la", 20.40, 104.30),
    ("vn", "Le Thanh", "kh", 13.58, 107.54),
    ("vn", "Tay Trang", "la", 21.25, 102.90),
    ("mm", "Tachileik", "th", 20.45, 99.88),
    ("mm", "Myawaddy", "th", 16.69, 98.51),
    ("mm", "Muse", "cn", 23.99, 97.90),
    ("mm", "Kawthaung", "th", 9.98, 98.55),
    ("mm", "Lwejel", "cn", 24.28, 97.62),
    ("mm", "Chinshwehaw", "cn", 23.42, 98.68),
    ("mm", "Mong La", "cn", 21.68, 100.30),
    ("mm", "Wanpong", "la", 20.35, 100.05),
    ("mm", "Payathonzu", "th", 15.30, 98.40),
    ("mm", "Myeik", "th", 12.44, 98.60),
    ("cn", "Mohan", "la", 21.18, 101.69),
    ("cn", "Ruili", "mm", 24.01, 97.85),
    ("cn", "Jinghong", "la", 22.00, 100.80),
    ("cn", "Hekou", "vn", 22.51, 103.95),
    ("cn", "Daluo", "mm", 21.70, 100.05),
    ("cn", "Menglian", "mm", 22.33, 99.59),
    ("cn", "Dongxing", "vn", 21.55, 107.97),
    ("cn", "Pingxiang", "vn", 22.10, 106.75),
    ("cn", "Mengla", "la", 21.47, 101.56),
    ("cn", "Tengchong", "mm", 25.02, 98.49),
]


def _slug(name: str) -> str:
    return "".join(c for c in name.lower().replace(" ", "") if c.isalnum())


OFFICES: tuple[Office, ...] = tuple(
    Office(
        f"{cc}-blo-{_slug(name)}",
        name,
        "-".join(sorted((cc, facing))) + f"-{_slug(name)}",
        lat,
        lon,
    )
    for cc, name, facing, lat, lon in _TABLE
)


def pick(n: int) -> tuple[Office, ...]:
    """``n`` offices spread over the countries (round robin), Cambodia's first."""
    by_country: dict[str, list[Office]] = {}
    for office in OFFICES:
        by_country.setdefault(office.country, []).append(office)
    queues = list(by_country.values())
    out: list[Office] = []
    i = 0
    while len(out) < n:
        queue = queues[i % len(queues)]
        if queue:
            out.append(queue.pop(0))
        i += 1
    return tuple(out)
