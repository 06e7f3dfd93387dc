"""photos/map.py: the offline incident map for Bavet, with photos, the office and Khmer."""

from __future__ import annotations

import io
import json
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font
from PIL import Image

from photos import map as incident_map
from photos.map import MapFontWarning, MapImage, Office, PhotoMark, photo_marks, render_map
from schemas.messages import Attachment, Position, PositionSource

BAVET = Position(lat=11.0791, lon=106.1846)
OFFICE_KM = "ការិយាល័យទំនាក់ទំនងព្រំដែនបាវិត"
PHOTOS = [
    PhotoMark("1", Position(lat=11.0803, lon=106.1861)),
    PhotoMark("2", Position(lat=11.0772, lon=106.1829)),
]


@pytest.fixture(scope="module")
def bavet() -> MapImage:
    return render_map(
        BAVET,
        photos=PHOTOS,
        office=Office("BLO Bavet", OFFICE_KM, Position(lat=11.0655, lon=106.1617)),
        title="Seizure at Bavet, 28 Nov 2026",
    )


def _rgb(image: MapImage) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image.png)).convert("RGB")).astype(int)


def test_the_bavet_map_is_a_png_of_sensible_size(bavet: MapImage, tmp_path: Path) -> None:
    assert bavet.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert 40_000 < len(bavet.png) < 1_000_000
    assert (bavet.width, bavet.height) == (1500, 700)
    assert Image.open(io.BytesIO(bavet.png)).size == (1500, 700)
    (tmp_path / "bavet.png").write_bytes(bavet.png)  # left for a person to look at


def test_marks_are_drawn_where_they_belong(bavet: MapImage) -> None:
    pixels = _rgb(bavet)
    x, y = (round(v) for v in bavet.marks["incident"])
    background = pixels[y - 60, x - 60]  # the close-up's land, away from any mark
    star = pixels[y, x]
    assert np.abs(star - background).sum() > 150
    assert star[0] > 180  # red
    assert star[1] < 90
    ox, oy = (round(v) for v in bavet.marks["office"])
    office = pixels[oy, ox]
    assert office[1] > office[0] + 40  # green
    assert office[1] > office[2] + 40
    # Photo 1 lies north-east of the incident, photo 2 south-west (y grows downwards).
    p1, p2 = bavet.marks["photo 1"], bavet.marks["photo 2"]
    assert p1[0] > x > p2[0]
    assert p1[1] < y < p2[1]
    for px, py in (p1, p2):
        photo = pixels[round(py), round(px)]
        assert photo[2] > photo[0] + 60  # blue


def test_a_photo_without_gps_is_drawn_hollow_at_the_incident() -> None:
    attachments = [
        Attachment(sha256=bytes(32), size=9, media_type="image/jpeg", position=PHOTOS[0].position,
                   position_source=PositionSource.EXIF),
        Attachment(sha256=bytes(32), size=9, media_type="image/jpeg"),
    ]  # fmt: skip
    marks = photo_marks(attachments, BAVET)
    assert marks == [
        PhotoMark("1", PHOTOS[0].position, PositionSource.EXIF),
        PhotoMark("2", BAVET, PositionSource.INCIDENT),
    ]
    image = render_map(BAVET, photos=marks, close_half_km=0.3)
    x, y = image.marks["photo 2"]
    ring = _rgb(image)[round(y) - 14 : round(y) + 15, round(x) - 14 : round(x) + 15]
    blue = (ring[..., 2] > ring[..., 0] + 60).sum()
    assert blue > 40  # the ring shows round the incident's star


def test_khmer_labels_have_a_font() -> None:
    if not Path("/usr/share/fonts/truetype/khmeros/KhmerOS.ttf").exists():
        pytest.skip("fonts-khmeros is not installed here (.ci/run installs it)")
    name = incident_map.khmer_font()
    assert name == "Khmer OS"
    path = font_manager.findfont(
        font_manager.FontProperties(family=name), fallback_to_default=False
    )
    font = FT2Font(path)
    assert all(font.get_char_index(ord(ch)) for ch in OFFICE_KM if ch != "\u200b")


def test_without_a_khmer_font_the_map_is_drawn_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(incident_map, "khmer_font", lambda: None)
    with pytest.warns(MapFontWarning, match="install fonts-khmeros"):
        image = render_map(BAVET, office=Office("BLO Bavet", OFFICE_KM))
    assert image.png.startswith(b"\x89PNG")


def test_with_a_khmer_font_there_is_no_warning() -> None:
    if incident_map.khmer_font() is None:
        pytest.skip("no Khmer font installed")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MapFontWarning)
        render_map(BAVET, office=Office("BLO Bavet", OFFICE_KM))


def test_border_data_is_small_licensed_and_holds_the_six_countries() -> None:
    data_dir = resources.files("photos.data")
    raw = data_dir.joinpath("mekong-borders.geojson").read_bytes()
    assert len(raw) < 400_000
    data = json.loads(raw)
    mekong = {f["properties"]["iso2"] for f in data["features"] if not f["properties"]["context"]}
    assert mekong == {"KH", "CN", "LA", "MM", "TH", "VN"}
    assert "not as endorsed" in data["note"] or "no endorsement" in data["note"]
    licence = data_dir.joinpath("LICENSE-borders.txt").read_text()
    assert "public domain" in licence
    assert "ISC" in licence
    west, south, east, north = data["bbox"]
    for feature in data["features"]:
        for polygon in feature["geometry"]["coordinates"]:
            for ring in polygon:
                assert ring[0] == ring[-1]
                assert all(west <= x <= east and south <= y <= north for x, y in ring)
