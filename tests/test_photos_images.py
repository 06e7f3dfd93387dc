"""photos/images.py: EXIF GPS and time, orientation, metadata stripped, preview and full image."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms
from PIL.ExifTags import GPS, IFD, Base
from PIL.TiffImagePlugin import IFDRational

from photos import images
from photos.errors import (
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    MetadataError,
    NotAnImageError,
    UnsupportedImageError,
)
from photos.images import (
    PREVIEW_MAX_BYTES,
    load_photo,
    metadata_in,
    prepare_photo,
    read_gps,
)
from schemas.messages import Position, PositionSource

BAVET = Position(lat=11.0791, lon=106.1846)
INCIDENT = Position(lat=11.08, lon=106.18, accuracy_m=50)
SERIAL = "SN-4471-0098-XYZ"
ICT = timezone(timedelta(hours=7))


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Degrees, minutes and seconds as a camera writes them: rationals, seconds in 1/100."""
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60 * 100)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 100)


def _pixels(width: int, height: int, seed: int = 0, noise: float = 6.0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 255, y / height * 255, (x + y) % 256], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype("uint8"))


def camera_jpeg(
    image: Image.Image | None = None,
    *,
    position: Position | None = BAVET,
    orientation: int = 1,
    offset: str | None = "+07:00",
    quality: int = 85,
    icc: bool = True,
) -> bytes:
    """A JPEG shaped like a phone's: EXIF with make, model, serial, GPS and times, plus
    XMP, an ICC profile and a comment, all of which must be gone after preparing."""
    image = image or _pixels(1200, 900)
    exif = Image.Exif()
    exif[Base.Make] = "PhoneCo"
    exif[Base.Model] = "Field 7"
    exif[Base.Orientation] = orientation
    sub = exif.get_ifd(IFD.Exif)
    sub[Base.DateTimeOriginal] = "2026:11:28 09:41:07"
    sub[Base.BodySerialNumber] = SERIAL
    if offset:
        sub[Base.OffsetTimeOriginal] = offset
    if position is not None:
        gps = exif.get_ifd(IFD.GPSInfo)
        gps[GPS.GPSVersionID] = b"\x02\x03\x00\x00"
        gps[GPS.GPSLatitudeRef] = "N" if position.lat >= 0 else "S"
        gps[GPS.GPSLatitude] = _dms(position.lat)
        gps[GPS.GPSLongitudeRef] = "E" if position.lon >= 0 else "W"
        gps[GPS.GPSLongitude] = _dms(position.lon)
        gps[GPS.GPSHPositioningError] = IFDRational(1200, 100)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    image.save(
        out,
        "JPEG",
        quality=quality,
        exif=exif.tobytes(),
        icc_profile=profile if icc else None,
        comment=f"owner {SERIAL}".encode(),
        xmp=f'<x:xmpmeta xmlns:x="adobe:ns:meta/">{SERIAL}</x:xmpmeta>'.encode(),
    )
    return out.getvalue()


def test_real_world_exif_gps_becomes_the_signed_position() -> None:
    photo = prepare_photo(camera_jpeg(), incident_position=INCIDENT, name="seizure.jpg")
    assert photo.position_source is PositionSource.EXIF
    assert photo.position.lat == pytest.approx(11.0791, abs=2e-6)
    assert photo.position.lon == pytest.approx(106.1846, abs=2e-6)
    assert photo.position.accuracy_m == 12
    assert photo.taken == datetime(2026, 11, 28, 9, 41, 7, tzinfo=ICT)
    ref = photo.attachment()
    assert ref.position == photo.position
    assert ref.position_source is PositionSource.EXIF
    assert ref.taken == photo.taken


@pytest.mark.parametrize(("lat", "lon"), [(-33.8568, 151.2153), (40.7128, -74.006)])
def test_south_and_west_refs_give_negative_degrees(lat: float, lon: float) -> None:
    photo = prepare_photo(camera_jpeg(position=Position(lat=lat, lon=lon)), incident_position=BAVET)
    assert (photo.position.lat, photo.position.lon) == (
        pytest.approx(lat, abs=2e-6),
        pytest.approx(lon, abs=2e-6),
    )


@settings(max_examples=200)
@given(st.floats(-89.99, 89.99), st.floats(-179.99, 179.99))
def test_gps_block_decodes_to_the_position(lat: float, lon: float) -> None:
    gps = {
        GPS.GPSLatitudeRef: "S" if lat < 0 else "N",
        GPS.GPSLatitude: _dms(lat),
        GPS.GPSLongitudeRef: "W" if lon < 0 else "E",
        GPS.GPSLongitude: _dms(lon),
    }
    position, why = read_gps(gps)
    if position is None:  # both so near 0 that the seconds round to 0: "no fix"
        assert "0, 0" in why
        return
    assert position.lat == pytest.approx(lat, abs=3e-6)
    assert position.lon == pytest.approx(lon, abs=3e-6)


def test_tuple_rationals_from_older_writers_are_read() -> None:
    gps = {
        GPS.GPSLatitudeRef: b"N\x00",
        GPS.GPSLatitude: ((11, 1), (4, 1), (4476, 100)),
        GPS.GPSLongitudeRef: "E",
        GPS.GPSLongitude: ((106, 1), (11, 1), (456, 100)),
    }
    position, _ = read_gps(gps)
    assert position is not None
    assert (position.lat, position.lon) == (pytest.approx(11.0791), pytest.approx(106.1846))


@pytest.mark.parametrize(
    ("gps", "why"),
    [
        ({}, "no GPS position"),
        ({GPS.GPSLatitude: (IFDRational(1, 0),) * 3, GPS.GPSLongitude: _dms(1)}, "cannot be read"),
        ({GPS.GPSLatitude: (1, 2), GPS.GPSLongitude: _dms(1)}, "cannot be read"),
        ({GPS.GPSLatitude: _dms(1), GPS.GPSLongitude: _dms(1)}, "no N/S or E/W"),
        (
            {
                GPS.GPSLatitudeRef: "N",
                GPS.GPSLatitude: (IFDRational(0, 1),) * 3,
                GPS.GPSLongitudeRef: "E",
                GPS.GPSLongitude: (IFDRational(0, 1),) * 3,
            },
            "0, 0",
        ),
        (
            {
                GPS.GPSLatitudeRef: "N",
                GPS.GPSLatitude: (IFDRational(95, 1), IFDRational(0), IFDRational(0)),
                GPS.GPSLongitudeRef: "E",
                GPS.GPSLongitude: _dms(1),
            },
            "out of range",
        ),
    ],
)
def test_unusable_gps_is_said(gps: dict[int, object], why: str) -> None:
    position, reason = read_gps(gps)  # type: ignore[arg-type]
    assert position is None
    assert why in reason


def test_no_gps_takes_the_incident_position_and_is_marked_so() -> None:
    photo = prepare_photo(camera_jpeg(position=None), incident_position=INCIDENT)
    assert photo.position == INCIDENT
    assert photo.position_source is PositionSource.INCIDENT
    assert any("incident's position" in note for note in photo.notes)
    assert photo.attachment().position_source is PositionSource.INCIDENT


def test_time_taken_without_offset_uses_gps_time_or_the_given_zone() -> None:
    bare = camera_jpeg(offset=None, position=None)
    assert prepare_photo(bare, incident_position=BAVET).taken is None
    local = prepare_photo(bare, incident_position=BAVET, local_tz=ICT).taken
    assert local == datetime(2026, 11, 28, 9, 41, 7, tzinfo=ICT)
    # A GPS time (UTC) beats a guessed zone.
    image = Image.open(io.BytesIO(camera_jpeg(offset=None)))
    exif = image.getexif()
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[GPS.GPSDateStamp] = "2026:11:28"
    gps[GPS.GPSTimeStamp] = (IFDRational(2, 1), IFDRational(41, 1), IFDRational(5, 1))
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    photo = prepare_photo(out.getvalue(), incident_position=BAVET, local_tz=ICT)
    assert photo.taken == datetime(2026, 11, 28, 2, 41, 5, tzinfo=UTC)


def _assert_clean(data: bytes) -> None:
    assert metadata_in(data) == []
    image = Image.open(io.BytesIO(data))
    assert not set(image.info) & {"exif", "icc_profile", "xmp", "comment", "XML:com.adobe.xmp"}
    assert len(image.getexif()) == 0
    assert SERIAL.encode() not in data
    assert b"PhoneCo" not in data
    assert b"Exif" not in data
    assert b"ICC_PROFILE" not in data


@pytest.mark.parametrize("icc", [True, False])
def test_sent_images_hold_no_exif_xmp_icc_or_comment(icc: bool) -> None:
    original = camera_jpeg(icc=icc)
    assert set(metadata_in(original)) >= {"EXIF", "XMP", "comment"}  # positive control
    photo = prepare_photo(original, incident_position=BAVET)
    _assert_clean(photo.full)
    _assert_clean(photo.preview)


def test_orientation_is_applied_to_the_pixels() -> None:
    image = Image.new("RGB", (300, 200), "white")
    image.paste((255, 0, 0), (0, 0, 60, 40))  # red in the stored top-left corner
    photo = prepare_photo(camera_jpeg(image, orientation=6), incident_position=BAVET)
    assert photo.size == (200, 300)
    upright = Image.open(io.BytesIO(photo.full)).convert("RGB")
    assert upright.size == (200, 300)
    # Orientation 6 (rotate 90° clockwise to view): the stored top-left is now top-right.
    red = upright.getpixel((190, 10))
    assert isinstance(red, tuple)
    assert red[0] > 200
    assert red[1] < 80


def test_preview_fits_even_for_noise_and_full_is_capped() -> None:
    rng = np.random.default_rng(7)
    noise = Image.fromarray(rng.integers(0, 255, (720, 960, 3), dtype=np.uint8))
    worst = prepare_photo(camera_jpeg(noise, quality=95), incident_position=BAVET)
    assert len(worst.preview) <= PREVIEW_MAX_BYTES  # pure noise: quality, then size, give
    assert max(worst.preview_size) <= 640
    ordinary = prepare_photo(camera_jpeg(_pixels(2400, 1800)), incident_position=BAVET)
    assert max(ordinary.preview_size) == 640  # an ordinary photo keeps the full 640 px
    assert len(ordinary.preview) <= PREVIEW_MAX_BYTES
    assert ordinary.size == (1600, 1200)
    assert Image.open(io.BytesIO(ordinary.full)).size == (1600, 1200)
    small = prepare_photo(camera_jpeg(_pixels(800, 600)), incident_position=BAVET, max_side=1000)
    assert small.size == (800, 600)  # never enlarged


def test_png_with_alpha_and_profile_is_flattened_and_clean() -> None:
    image = Image.new("RGBA", (400, 300), (0, 128, 255, 0))
    image.paste((200, 10, 10, 255), (100, 100, 200, 200))
    out = io.BytesIO()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image.save(out, "PNG", icc_profile=icc, pnginfo=None)
    photo = prepare_photo(out.getvalue(), incident_position=BAVET)
    assert photo.position_source is PositionSource.INCIDENT
    assert photo.full_media_type == "image/jpeg"
    assert Image.open(io.BytesIO(photo.full)).convert("RGB").getpixel((5, 5)) == (255, 255, 255)
    _assert_clean(photo.full)


# -- keeping the original bytes -------------------------------------------------------


def _scan(data: bytes) -> bytes:
    """The compressed pixels: from the first SOS marker to EOI."""
    return data[data.index(b"\xff\xda") : data.rindex(b"\xff\xd9") + 2]


def test_keep_original_sends_the_same_pixels_without_metadata() -> None:
    original = camera_jpeg(_pixels(2000, 1500))
    photo = prepare_photo(
        original + b"MOTION-PHOTO-VIDEO", incident_position=BAVET, keep_original=True
    )
    assert photo.full_media_type == "image/jpeg"
    assert photo.size == (2000, 1500)
    assert _scan(photo.full) == _scan(original)  # not re-encoded
    assert b"MOTION-PHOTO-VIDEO" not in photo.full  # what trails the image is dropped
    _assert_clean(photo.full)
    assert photo.position_source is PositionSource.EXIF  # the position was read first


def test_keep_original_png_drops_ancillary_chunks() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", SERIAL)
    info.add_itxt("XML:com.adobe.xmp", SERIAL)
    out = io.BytesIO()
    exif = Image.Exif()
    exif[Base.BodySerialNumber] = SERIAL
    _pixels(300, 200).save(out, "PNG", pnginfo=info, exif=exif.tobytes())
    assert metadata_in(out.getvalue())  # positive control
    photo = prepare_photo(out.getvalue(), incident_position=BAVET, keep_original=True)
    assert photo.full_media_type == "image/png"
    assert metadata_in(photo.full) == []
    assert SERIAL.encode() not in photo.full
    assert Image.open(io.BytesIO(photo.full)).tobytes() == _pixels(300, 200).tobytes()


def test_keep_original_refuses_a_rotated_photo() -> None:
    with pytest.raises(MetadataError, match=r"rotated.*send it re-encoded") as caught:
        prepare_photo(
            camera_jpeg(orientation=6), incident_position=BAVET, keep_original=True, name="r.jpg"
        )
    assert caught.value.path == "r.jpg"


# -- errors ---------------------------------------------------------------------------


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (10, 10)).save(out, "GIF")
    return out.getvalue()


def _huge_png() -> bytes:
    out = io.BytesIO()
    Image.new("1", (10_000, 7_000)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"hello, not a photo", NotAnImageError, "not an image"),
        (_gif(), UnsupportedImageError, "GIF image; send JPEG or PNG"),
        (camera_jpeg()[:3000], CorruptImageError, "damaged or cut short"),
        (_huge_png(), ImageTooLargeError, "megapixels"),
    ],
)
def test_bad_files_get_typed_errors_naming_the_file(
    data: bytes, error: type[ImageError], words: str
) -> None:
    with pytest.raises(error, match=words) as caught:
        prepare_photo(data, incident_position=BAVET, name="/sdcard/DCIM/x.jpg")
    assert str(caught.value).startswith("/sdcard/DCIM/x.jpg: ")


def test_load_photo_reads_a_file_and_names_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(camera_jpeg())
    assert load_photo(path, incident_position=BAVET).name == str(path)
    with pytest.raises(NotAnImageError, match=r"missing\.jpg: cannot read"):
        load_photo(tmp_path / "missing.jpg", incident_position=BAVET)


def test_corrupt_exif_block_is_dropped_not_fatal() -> None:
    data = bytearray(camera_jpeg())
    at = data.index(b"Exif\x00\x00") + 6
    data[at : at + 8] = b"XX\x00\x00\xff\xff\xff\xff"  # not a TIFF header
    photo = prepare_photo(bytes(data), incident_position=INCIDENT)
    assert photo.position_source is PositionSource.INCIDENT
    _assert_clean(photo.full)


def test_fraction_sanity() -> None:
    # The rationals used above round-trip to the agreed Bavet figures.
    assert float(Fraction(4476, 100)) / 3600 + 4 / 60 + 11 == pytest.approx(11.0791)


def test_with_gps_writes_what_prepare_reads_back() -> None:
    from photos.exif import with_gps

    plain = io.BytesIO()
    _pixels(800, 600).save(plain, "JPEG", quality=80)
    where = Position(lat=-8.5069, lon=-115.2625, accuracy_m=8)
    geo = with_gps(plain.getvalue(), where, taken=datetime(2026, 11, 28, 9, 41, 7, tzinfo=ICT))
    assert _scan(geo) == _scan(plain.getvalue())  # pixels untouched
    photo = prepare_photo(geo, incident_position=BAVET)
    assert photo.position_source is PositionSource.EXIF
    assert photo.position.lat == pytest.approx(where.lat, abs=1e-6)
    assert photo.position.lon == pytest.approx(where.lon, abs=1e-6)
    assert photo.position.accuracy_m == 8
    assert photo.taken == datetime(2026, 11, 28, 9, 41, 7, tzinfo=ICT)
    again = with_gps(geo, BAVET)  # replaces, does not stack
    assert metadata_in(again).count("EXIF") == 1
    assert prepare_photo(again, incident_position=INCIDENT).position == Position(
        lat=11.0791, lon=106.1846, accuracy_m=None
    )


_SMALL = camera_jpeg(_pixels(240, 160))


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_damaged_photos_fail_only_with_typed_errors(data: st.DataObject) -> None:
    damaged = bytearray(_SMALL)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        damaged[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(damaged)))
    keep = data.draw(st.booleans())
    try:
        photo = prepare_photo(
            bytes(damaged[:cut]), incident_position=BAVET, keep_original=keep, name="d.jpg"
        )
    except ImageError as exc:
        said = str(exc)
        photo = None
    if photo is None:
        assert said.startswith("d.jpg: ")
        return
    assert metadata_in(photo.full) == []
    assert metadata_in(photo.preview) == []


# -- HEIC ------------------------------------------------------------------------------

HEIC_STUB = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"


def camera_heic(image: Image.Image) -> bytes:
    """A phone's HEIC: camera_jpeg's EXIF (serial, GPS, time, orientation 6), XMP, ICC."""
    source = Image.open(io.BytesIO(camera_jpeg(image, orientation=6)))
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    source.save(
        out,
        "HEIF",
        quality=80,
        exif=source.getexif().tobytes(),
        icc_profile=profile,
        xmp=f'<x:xmpmeta xmlns:x="adobe:ns:meta/">{SERIAL}</x:xmpmeta>'.encode(),
    )
    return out.getvalue()


@pytest.mark.skipif(not images._HAS_HEIF, reason="pillow-heif is not installed")
def test_a_heic_photo_end_to_end(tmp_path: Path) -> None:
    landscape = _pixels(600, 450)  # small: x265 is slow
    landscape.paste((255, 0, 0), (0, 0, 75, 450))  # a red band on the left
    data = camera_heic(landscape)
    # The control: a real HEIC, carrying everything that must not be sent.
    assert data[4:12] == b"ftypheic"
    assert SERIAL.encode() in data
    assert {"exif", "xmp", "icc_profile"} <= set(Image.open(io.BytesIO(data)).info)
    path = tmp_path / "IMG_0042.HEIC"
    path.write_bytes(data)
    photo = load_photo(path, incident_position=INCIDENT)
    assert photo.position_source is PositionSource.EXIF
    assert photo.position.lat == pytest.approx(BAVET.lat, abs=2e-6)
    assert photo.position.lon == pytest.approx(BAVET.lon, abs=2e-6)
    assert photo.taken == datetime(2026, 11, 28, 9, 41, 7, tzinfo=ICT)
    # Sent as a clean JPEG, upright: orientation 6 turns the left band to the top.
    assert photo.full_media_type == "image/jpeg"
    assert metadata_in(photo.full) == []
    assert metadata_in(photo.preview) == []
    assert SERIAL.encode() not in photo.full + photo.preview
    full = Image.open(io.BytesIO(photo.full))
    assert full.format == "JPEG"
    assert full.size == photo.size == (450, 600)
    red, green, _ = full.getpixel((225, 20))
    assert red > 200
    assert green < 60
    assert len(photo.preview) <= PREVIEW_MAX_BYTES
    assert photo.attachment().media_type == "image/jpeg"
    # Its own bytes cannot be kept: metadata is cut out of JPEG and PNG only.
    with pytest.raises(UnsupportedImageError, match=r"HEIF image cannot be kept.*--keep-original"):
        load_photo(path, incident_position=INCIDENT, keep_original=True)
    # A damaged HEIC is called damaged, not "install pillow-heif".
    with pytest.raises(CorruptImageError, match="pillow-heif cannot decode"):
        prepare_photo(HEIC_STUB, incident_position=INCIDENT, name="IMG_0043.HEIC")


def test_without_pillow_heif_a_heic_photo_is_refused_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As on a tablet without the package: no HEIF opener in Pillow, none in images.py.
    monkeypatch.setattr(Image, "ID", [f for f in Image.ID if f != "HEIF"])
    monkeypatch.setattr(images, "_HAS_HEIF", False)
    monkeypatch.setattr(images, "_FORMATS", {"JPEG": "image/jpeg", "PNG": "image/png"})
    with pytest.raises(UnsupportedImageError) as caught:
        prepare_photo(HEIC_STUB, incident_position=INCIDENT, name="/sdcard/DCIM/IMG_0042.HEIC")
    assert str(caught.value) == (
        "/sdcard/DCIM/IMG_0042.HEIC: a HEIC/HEIF photo, and pillow-heif is not installed: "
        "install it (pip install 'blo-alert[heif]') or export the photo as JPEG"
    )
