"""The incident map: a PNG drawn offline with matplotlib (Agg), no tiles and no network.

Two panels. On the left, the six Mekong countries (Cambodia, China near the region,
Laos, Myanmar, Thailand, Viet Nam; neighbours grey for context) with the incident as
a red star and a box around the area on the right. On the right, that area: borders,
the incident, each photo where it was taken (numbered; a hollow circle when the photo
had no GPS and took the incident's position), the reporting office, and a scale bar.

Borders come from ``photos/data/mekong-borders.geojson`` (Natural Earth 1:50m via npm
world-atlas, converted once; see photos/data/README.md): shown as in Natural Earth,
not as endorsed; placed to within a few kilometres at that scale, which the footer
says. The projection is equirectangular, scaled by cos(latitude) at the centre of
each panel, which is true enough for a region this size and needs no map library.

Khmer labels need a Khmer font (Debian's fonts-khmeros: "Khmer OS"); matplotlib falls
back to it glyph by glyph from DejaVu Sans, and shapes the script. Without one, the
map is still drawn and ``MapFontWarning`` says the Khmer text will not read.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from matplotlib import font_manager
from matplotlib import patheffects as effects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.ticker import MaxNLocator

from photos.errors import MapError
from schemas.messages import Attachment, Position, PositionSource

__all__ = [
    "KHMER_FONTS",
    "MapFontWarning",
    "MapImage",
    "Office",
    "PhotoMark",
    "borders",
    "khmer_font",
    "photo_marks",
    "render_map",
]

#: Khmer fonts tried in order: Debian's fonts-khmeros first, then Google's Noto.
KHMER_FONTS = ("Khmer OS", "Khmer OS System", "Khmer OS Content", "Noto Sans Khmer")
_KM_PER_DEG = 111.32
_SEA = "#dbe9f4"
_FILL = {
    "KH": "#f3e3c3",
    "VN": "#e6d3e8",
    "TH": "#d8e8cf",
    "LA": "#f5d9cc",
    "MM": "#d4e4ec",
    "CN": "#ecebd0",
}
_CONTEXT_FILL = "#e4e4e4"
# Where each country's name sits on the overview (hand-placed: centroids of China or
# Viet Nam fall outside the frame or in the sea).
_LABELS = {
    "KH": (104.9, 12.6),
    "LA": (102.6, 19.4),
    "MM": (96.0, 21.8),
    "TH": (100.9, 15.6),
    "VN": (108.0, 14.2),
    "CN": (103.5, 27.0),
}
_INCIDENT = "#d7191c"
_PHOTO = "#1f5fbf"
_OFFICE = "#1a7f37"
_HALO = [effects.withStroke(linewidth=3, foreground="white")]


class MapFontWarning(UserWarning):
    """No Khmer font is installed: Khmer labels will show as boxes (install fonts-khmeros)."""


@dataclass(frozen=True, slots=True)
class PhotoMark:
    """A photo on the map: its label (``1``, ``2`` ...), where it was taken, and whether
    that position came from the photo's GPS or was the incident's."""

    label: str
    position: Position
    source: PositionSource = PositionSource.EXIF


@dataclass(frozen=True, slots=True)
class Office:
    """The reporting office: its name in English and Khmer (or another language) and,
    if known, where it is."""

    name: str
    local_name: str = ""
    position: Position | None = None


@dataclass(frozen=True, slots=True)
class MapImage:
    """The PNG, its size, and where each mark landed (pixels from the top left)."""

    png: bytes
    width: int
    height: int
    marks: dict[str, tuple[float, float]] = field(default_factory=dict)


def photo_marks(attachments: Sequence[Attachment], fallback: Position) -> list[PhotoMark]:
    """Marks for an incident's attachments, numbered from 1; one without a position is
    put at ``fallback`` (the incident) and marked so."""
    marks = []
    for number, attachment in enumerate(attachments, 1):
        source = attachment.position_source or (
            PositionSource.EXIF if attachment.position else PositionSource.INCIDENT
        )
        marks.append(PhotoMark(str(number), attachment.position or fallback, source))
    return marks


# -- data and fonts --------------------------------------------------------------------


@cache
def borders() -> dict[str, Any]:
    """The packaged border GeoJSON. Raises ``MapError`` if it is missing or damaged."""
    try:
        text = resources.files("photos.data").joinpath("mekong-borders.geojson").read_text()
        data = json.loads(text)
        if data.get("type") != "FeatureCollection" or not data.get("features"):
            raise ValueError("not a GeoJSON FeatureCollection")
    except (OSError, ValueError) as exc:
        raise MapError(
            f"photos/data/mekong-borders.geojson cannot be read ({exc}); reinstall blo-alert"
        ) from None
    return data  # type: ignore[no-any-return]


@cache
def khmer_font() -> str | None:
    """The family name of an installed Khmer font, or None."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in KHMER_FONTS if name in installed), None)


def _families() -> list[str]:
    khmer = khmer_font()
    if khmer is None:
        warnings.warn(
            "no Khmer font is installed, so Khmer labels on the map will not read: "
            "install fonts-khmeros (apt-get install fonts-khmeros)",
            MapFontWarning,
            stacklevel=3,
        )
        return ["DejaVu Sans"]
    return ["DejaVu Sans", khmer]


# -- drawing ---------------------------------------------------------------------------


def _draw_borders(ax: Axes, *, labels: bool) -> None:
    ax.set_facecolor(_SEA)
    for feature in borders()["features"]:
        props = feature["properties"]
        fill = _CONTEXT_FILL if props.get("context") else _FILL.get(props["iso2"], "#eeeeee")
        for polygon in feature["geometry"]["coordinates"]:
            for ring_no, ring in enumerate(polygon):
                ax.add_patch(
                    Polygon(
                        ring,
                        closed=True,
                        facecolor=_SEA if ring_no else fill,  # inner rings are holes
                        edgecolor="#5a5a5a",
                        linewidth=0.6,
                        zorder=1,
                    )
                )
        if labels and props["iso2"] in _LABELS:
            x, y = _LABELS[props["iso2"]]
            ax.text(
                x,
                y,
                props["name"],
                ha="center",
                va="center",
                fontsize=9,
                color="#444444",
                style="italic",
                zorder=2,
            )


def _country_names(ax: Axes, marks: Sequence[Position]) -> None:
    """Name each country that fills part of a zoomed panel, where its part is farthest
    from the marks, so a reader sees at once which side of a border a mark is on."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    steps = [(i + 0.5) / 16 for i in range(2, 14)]  # not hard against the frame
    grid = np.array([(x0 + (x1 - x0) * fx, y0 + (y1 - y0) * fy) for fx in steps for fy in steps])
    frac = (grid - (x0, y0)) / (x1 - x0, y1 - y0)
    at = np.array([((m.lon - x0) / (x1 - x0), (m.lat - y0) / (y1 - y0)) for m in marks])
    clearance = np.min(np.hypot(*(frac[:, None, :] - at[None, :, :]).transpose(2, 0, 1)), axis=1)
    for feature in borders()["features"]:
        inside = np.zeros(len(grid), dtype=bool)
        for polygon in feature["geometry"]["coordinates"]:
            ring = np.asarray(polygon[0])
            if ring[:, 0].max() < x0 or ring[:, 0].min() > x1:
                continue
            if ring[:, 1].max() < y0 or ring[:, 1].min() > y1:
                continue
            hit = MplPath(ring).contains_points(grid)
            for hole in polygon[1:]:
                hit &= ~MplPath(np.asarray(hole)).contains_points(grid)
            inside |= hit
        if inside.sum() < 10:
            continue
        best = int(np.argmax(np.where(inside, clearance, -1.0)))
        x, y = float(grid[best][0]), float(grid[best][1])
        ax.text(x, y, feature["properties"]["name"].upper(), ha="center", va="center",
                fontsize=11, color="#8a8a8a", zorder=2)  # fmt: skip


def _nice(value: float) -> float:
    power = 10 ** math.floor(math.log10(value))
    return float(max(m * power for m in (1, 2, 5, 10) if m * power <= value))


def _scale_bar(ax: Axes, families: list[str]) -> None:
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    lat = (y0 + y1) / 2
    km_per_deg = _KM_PER_DEG * math.cos(math.radians(lat))
    km = _nice((x1 - x0) * km_per_deg / 4)
    length = km / km_per_deg
    left, base = x0 + (x1 - x0) * 0.05, y0 + (y1 - y0) * 0.05
    tick = (y1 - y0) * 0.012
    ax.add_patch(
        Rectangle(
            (left - (x1 - x0) * 0.02, base - (y1 - y0) * 0.025),
            length + (x1 - x0) * 0.04,
            (y1 - y0) * 0.09,
            facecolor="white",
            alpha=0.85,
            edgecolor="none",
            zorder=5,
        )
    )
    ax.plot([left, left + length], [base, base], color="black", linewidth=2.5, zorder=6)
    for x in (left, left + length / 2, left + length):
        ax.plot([x, x], [base - tick, base + tick], color="black", linewidth=1.2, zorder=6)
    label = f"{km:g} km"
    ax.text(left + length / 2, base + tick * 1.6, label, ha="center", va="bottom",
            fontsize=9, fontfamily=families, zorder=6)  # fmt: skip


def _frame(ax: Axes, west: float, east: float, south: float, north: float) -> None:
    ax.set_xlim(west, east)
    ax.set_ylim(south, north)
    ax.set_aspect(1 / math.cos(math.radians((south + north) / 2)), adjustable="box")
    ax.set_anchor("N")  # panels of different shapes keep their titles level
    ax.tick_params(labelsize=7, colors="#555555")
    # Enough decimals that neighbouring ticks differ: 0 for the region, 4 for 500 m.
    span = min(east - west, north - south)
    places = 0 if span >= 3 else min(5, max(2, math.ceil(-math.log10(span)) + 1))
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.{places}f}°E")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.{places}f}°N")
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(6))


def _box(points: Sequence[Position], min_half_km: float) -> tuple[float, float, float, float]:
    """West, east, south, north of a panel around ``points``, at least ``min_half_km``
    from its centre each way (wider than high, like the panels)."""
    lats = [p.lat for p in points]
    lons = [p.lon for p in points]
    lat0, lon0 = (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2
    cos = math.cos(math.radians(lat0))
    half_km = max(
        min_half_km,
        (max(lats) - min(lats)) / 2 * _KM_PER_DEG * 1.4,
        (max(lons) - min(lons)) / 2 * _KM_PER_DEG * cos * 1.4,
    )
    dlat, dlon = half_km / _KM_PER_DEG, half_km / (_KM_PER_DEG * cos)
    return lon0 - dlon, lon0 + dlon, lat0 - dlat, lat0 + dlat


def _outline(ax: Axes, box: tuple[float, float, float, float]) -> None:
    west, east, south, north = box
    ax.add_patch(
        Rectangle((west, south), east - west, north - south, fill=False,
                  edgecolor=_INCIDENT, linewidth=1.2, linestyle="--", zorder=4)
    )  # fmt: skip


def _families_for(text: str, families: list[str]) -> list[str]:
    # The Khmer font has no bold: name it only for text that needs it.
    return families if any("\u1780" <= ch <= "\u17ff" for ch in text) else ["DejaVu Sans"]


def render_map(
    incident: Position,
    *,
    photos: Sequence[PhotoMark] = (),
    office: Office | None = None,
    title: str = "",
    area_half_km: float = 15.0,
    close_half_km: float = 0.25,
    dpi: int = 100,
) -> MapImage:
    """Draw the map and return the PNG. Three panels: the region; the area round the
    incident and the office (``area_half_km`` each way at least), borders placed to a
    few hundred metres; a close-up of the incident and its photos (``close_half_km``
    at least). Raises ``MapError``."""
    families = _families()
    figure = Figure(figsize=(15, 7), dpi=dpi, facecolor="white")
    canvas = FigureCanvasAgg(figure)
    overview = figure.add_axes((0.035, 0.09, 0.27, 0.8))
    area = figure.add_axes((0.35, 0.09, 0.3, 0.8))
    close = figure.add_axes((0.715, 0.09, 0.265, 0.8))
    marks: dict[str, Any] = {}

    west, south, east, north = borders()["bbox"]
    _draw_borders(overview, labels=True)
    _frame(overview, west, east, south, north)
    overview.set_title("Mekong region", fontsize=10, loc="left")
    overview.plot(incident.lon, incident.lat, marker="*", markersize=14, color=_INCIDENT,
                  markeredgecolor="white", zorder=5)  # fmt: skip
    _scale_bar(overview, families)

    near = [incident]
    if office is not None and office.position is not None:
        near.append(office.position)
    area_box = _box(near + [p.position for p in photos], area_half_km)
    close_box = _box([incident, *(p.position for p in photos)], close_half_km)
    _draw_borders(area, labels=False)
    _frame(area, *area_box)
    area.set_title("Area", fontsize=10, loc="left")
    _outline(area, close_box)
    area.plot(incident.lon, incident.lat, marker="*", markersize=18, color=_INCIDENT,
              markeredgecolor="white", linestyle="none", zorder=8)  # fmt: skip
    for photo in photos:
        area.plot(photo.position.lon, photo.position.lat, marker="o", markersize=5,
                  color=_PHOTO, linestyle="none", zorder=7)  # fmt: skip
    if office is not None:
        name = office.name + (f"\n{office.local_name}" if office.local_name else "")
        fam = _families_for(name, families)
        if office.position is not None:
            marks["office"] = area.plot(
                office.position.lon, office.position.lat, marker="s", markersize=10,
                color=_OFFICE, markeredgecolor="white", linestyle="none", zorder=7,
            )[0]  # fmt: skip
            area.annotate(name, (office.position.lon, office.position.lat), xytext=(9, -4),
                          textcoords="offset points", fontsize=10, color=_OFFICE,
                          fontfamily=fam, va="top", path_effects=_HALO, zorder=7)  # fmt: skip
        else:
            area.text(0.02, 0.97, f"Reported by {name}", transform=area.transAxes,
                      fontsize=10, color=_OFFICE, fontfamily=fam, va="top",
                      path_effects=_HALO, zorder=7)  # fmt: skip
    _country_names(area, near)
    _scale_bar(area, families)
    _legend(area, photos, office, families)

    _draw_borders(close, labels=False)
    _frame(close, *close_box)
    close.set_title(
        f"Incident at {incident.lat:.5f}°N, {incident.lon:.5f}°E", fontsize=10, loc="left"
    )
    for n, photo in enumerate(photos):
        hollow = photo.source is PositionSource.INCIDENT
        marks[f"photo {photo.label}"] = close.plot(
            photo.position.lon, photo.position.lat, marker="o",
            markersize=20 if hollow else 11, markerfacecolor="none" if hollow else _PHOTO,
            markeredgecolor=_PHOTO, markeredgewidth=2, linestyle="none", zorder=9,
        )[0]  # fmt: skip
        # A label points away from the incident, or fans out for photos taken on it,
        # so labels neither overlap nor leave the panel.
        dx = photo.position.lon - incident.lon
        dy = photo.position.lat - incident.lat
        far = math.hypot(dx, dy) > (close_box[1] - close_box[0]) * 0.05
        angle = math.atan2(dy, dx) if far else math.radians(150 + 75 * n)
        ox, oy = 34 * math.cos(angle), 30 * math.sin(angle)
        fx = (photo.position.lon - close_box[0]) / (close_box[1] - close_box[0])
        fy = (photo.position.lat - close_box[2]) / (close_box[3] - close_box[2])
        if (fx > 0.7 and ox > 0) or (fx < 0.3 and ox < 0):
            ox = -ox  # would leave the panel sideways: turn back in
        if (fy > 0.8 and oy > 0) or (fy < 0.25 and oy < 0):
            oy = -oy
        close.annotate(
            f"Photo {photo.label}" + (" (no GPS: at incident)" if hollow else ""),
            (photo.position.lon, photo.position.lat),
            xytext=(ox, oy),
            textcoords="offset points",
            ha="left" if ox >= 0 else "right",
            fontsize=9,
            color=_PHOTO,
            path_effects=_HALO,
            arrowprops={"arrowstyle": "-", "color": _PHOTO, "linewidth": 0.8},
            zorder=9,
        )
    marks["incident"] = close.plot(
        incident.lon, incident.lat, marker="*", markersize=22, color=_INCIDENT,
        markeredgecolor="white", linestyle="none", zorder=10,
    )[0]  # fmt: skip
    _country_names(close, [incident, *(p.position for p in photos)])
    _scale_bar(close, families)

    if title:
        fam = _families_for(title, families)
        weight = "bold" if len(fam) == 1 else "normal"  # the Khmer font has no bold
        figure.text(0.025, 0.95, title, fontsize=14, fontfamily=fam, fontweight=weight)
    figure.text(
        0.025,
        0.025,
        "Borders: Natural Earth 1:10m (public domain) via world-atlas, shown as in Natural "
        "Earth, not as endorsed; placed to within a few hundred metres.",
        fontsize=7.5,
        color="#555555",
    )
    try:
        out = io.BytesIO()
        with warnings.catch_warnings():
            if len(families) == 1:  # said once already, as a MapFontWarning
                warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            figure.savefig(out, format="png", dpi=dpi)  # also lays out the marks below
    except (ValueError, RuntimeError, OSError) as exc:
        raise MapError(f"the map cannot be drawn: {exc}") from None
    width, height = canvas.get_width_height()
    return MapImage(
        png=out.getvalue(),
        width=width,
        height=height,
        marks={name: _pixel(line, height) for name, line in marks.items()},
    )


def _pixel(line: Any, height: int) -> tuple[float, float]:
    xs, ys = line.get_xdata(), line.get_ydata()
    x, y = line.axes.transData.transform((float(xs[0]), float(ys[0])))
    return float(x), float(height - y)


def _legend(ax: Axes, photos: Sequence[PhotoMark], office: Office | None, fam: list[str]) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="*", markersize=14, color=_INCIDENT, linestyle="none",
               label="Incident"),
    ]  # fmt: skip
    if photos:
        handles.append(
            Line2D([], [], marker="o", markersize=9, color=_PHOTO, linestyle="none",
                   label="Photo (its own GPS)")
        )  # fmt: skip
    if any(p.source is PositionSource.INCIDENT for p in photos):
        handles.append(
            Line2D([], [], marker="o", markersize=9, markerfacecolor="white",
                   markeredgecolor=_PHOTO, markeredgewidth=2, linestyle="none",
                   label="Photo, no GPS (at incident)")
        )  # fmt: skip
    if office is not None and office.position is not None:
        handles.append(
            Line2D([], [], marker="s", markersize=9, color=_OFFICE, linestyle="none",
                   label="Reporting office")
        )  # fmt: skip
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9,
              prop={"family": fam, "size": 8})  # fmt: skip
