"""HQ's incident map as SVG, from the same border GeoJSON as ``blo-sub map``.

The borders (``photos.map.borders``: Natural Earth via world-atlas, photos/data) are
drawn once per process into a small SVG served with a long cache life; each page
draws only its incidents over it. The projection is ``photos/map.py``'s:
equirectangular, x scaled by cos(latitude) at the frame's centre. Rings are
simplified to points at least ``STEP`` degrees apart (about 5 km, a pixel or two at
this size), and whole pixels bring the file from 219 KB of GeoJSON to about 30 KB.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from photos.map import borders

__all__ = ["FRAME", "HEIGHT", "STEP", "WIDTH", "MapPoint", "borders_svg", "project"]

#: The frame drawn: the Mekong countries (west, south, east, north), in degrees.
FRAME = (92.0, 8.0, 110.0, 24.5)
WIDTH = 600
#: Degrees between kept points of a border ring.
STEP = 0.05
# As photos/map.py, but Myanmar is not drawn in a blue next to the sea's.
_FILL = {"KH": "#f3e3c3", "VN": "#e6d3e8", "TH": "#d8e8cf", "LA": "#f5d9cc", "MM": "#dcd6b8"}
_CONTEXT = "#e4e4e4"


def _scale() -> float:
    _west, south, _east, north = FRAME
    return math.cos(math.radians((south + north) / 2))


HEIGHT = round(WIDTH * (FRAME[3] - FRAME[1]) / ((FRAME[2] - FRAME[0]) * _scale()))


def project(lat: float, lon: float) -> tuple[float, float]:
    """Pixels (x from the left, y from the top) of a position on the map."""
    west, south, east, north = FRAME
    x = (lon - west) / (east - west) * WIDTH
    y = (north - lat) / (north - south) * HEIGHT
    return round(x, 1), round(y, 1)


@dataclass(frozen=True, slots=True)
class MapPoint:
    """An incident on the map: where, a label, the link to its detail."""

    x: float
    y: float
    label: str
    href: str


def _ring(points: Iterable[list[float]]) -> str:
    kept: list[tuple[int, int]] = []
    last: tuple[float, float] | None = None
    for lon, lat in points:
        if last is not None and abs(lon - last[0]) < STEP and abs(lat - last[1]) < STEP:
            continue
        last = (lon, lat)
        x, y = project(lat, lon)
        point = (round(x), round(y))  # whole pixels: the file's size is its digits
        if not kept or kept[-1] != point:
            kept.append(point)
    if len(kept) < 3:
        return ""
    return "M" + "L".join(f"{x} {y}" for x, y in kept) + "Z"


def _polygons(geometry: dict[str, Any]) -> list[list[list[list[float]]]]:
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    if geometry["type"] == "MultiPolygon":
        return list(geometry["coordinates"])
    return []


def _inside(ring: list[list[float]]) -> bool:
    west, south, east, north = FRAME
    return any(west - 1 <= lon <= east + 1 and south - 1 <= lat <= north + 1 for lon, lat in ring)


@cache
def borders_svg() -> str:
    """The border map as a standalone SVG document (countries filled, names shown)."""
    paths = []
    for feature in borders()["features"]:
        props = feature.get("properties", {})
        fill = _CONTEXT if props.get("context") else _FILL.get(props.get("iso2", ""), _CONTEXT)
        d = "".join(
            _ring(ring)
            for polygon in _polygons(feature["geometry"])
            for ring in polygon
            if _inside(ring)
        )
        if d:
            paths.append(f'<path fill="{fill}" d="{d}"/>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#dbe9f4"/>'
        f'<g stroke="#777" stroke-width="0.6" stroke-linejoin="round">{"".join(paths)}</g>'
        "</svg>"
    )
