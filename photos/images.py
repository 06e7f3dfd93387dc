"""Turn a photo file into what an incident sends: a position, a time, a preview, a full image.

``prepare_photo`` reads a JPEG or PNG (HEIC where pillow-heif is installed) with
Pillow, takes the EXIF GPS position (degrees, minutes, seconds as rationals with
N/S/E/W references) and the time taken, applies the EXIF orientation to the pixels,
and drops every other piece of metadata (EXIF with its device serials, XMP, ICC,
IPTC, comments, thumbnails): the position goes into the signed incident, not into
the image. It makes:

- a preview: about 640 px on the long side, at most ~24 KB (the JPEG quality is
  lowered step by step until it fits, then the size if it must);
- the full image: re-encoded, long side at most 1,600 px by default. With
  ``keep_original`` the file's own bytes are sent instead, with metadata segments
  cut out losslessly (JPEG APPn/COM, PNG ancillary chunks, anything after the end
  of the image), the colour profile included; a photo stored rotated (EXIF
  orientation other than 1) is refused then, as it would show sideways.

Every output is checked by ``metadata.metadata_in`` before it is returned. A photo without
a usable GPS fix takes the incident's position, marked ``PositionSource.INCIDENT``.

This module reads no clock and touches no network; ``load_photo`` is the only
function that reads a file.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from PIL.ExifTags import GPS, IFD, Base

from photos.chunks import DEFAULT_CHUNK_SIZE, describe
from photos.errors import (
    CorruptImageError,
    ImageTooLargeError,
    MetadataError,
    NotAnImageError,
    UnsupportedImageError,
)
from photos.metadata import metadata_in, strip_metadata
from schemas.messages import Attachment, Position, PositionSource

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "PREVIEW_MAX_BYTES",
    "PREVIEW_SIDE",
    "PreparedPhoto",
    "load_photo",
    "metadata_in",
    "prepare_photo",
    "read_gps",
]

#: A phone photo is 2 to 12 MB; past this a file is not a photo to send over a BLO link.
MAX_FILE_BYTES = 40 * 1024 * 1024
#: 60 megapixels: above any phone camera, well below what would exhaust a tablet's memory.
MAX_PIXELS = 60_000_000
PREVIEW_SIDE = 640
PREVIEW_MAX_BYTES = 24 * 1024
FULL_SIDE = 1600
_FULL_QUALITY = 85
_PREVIEW_QUALITIES = (80, 70, 60, 50, 40, 30, 25, 20)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")


def _heif_opener() -> bool:
    try:
        from pillow_heif import register_heif_opener  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    register_heif_opener()
    return True


_HAS_HEIF = _heif_opener()
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"} | (
    {"HEIF": "image/heic"} if _HAS_HEIF else {}
)


@dataclass(frozen=True, slots=True)
class PreparedPhoto:
    """A photo ready to send: clean image bytes and what the signed incident says of it."""

    name: str
    preview: bytes
    full: bytes
    full_media_type: str
    size: tuple[int, int]
    preview_size: tuple[int, int]
    position: Position
    position_source: PositionSource
    taken: datetime | None
    notes: tuple[str, ...] = ()

    def attachment(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Attachment:
        """The reference the signed incident carries: both blobs, position and time."""
        full = describe(self.full, self.full_media_type, chunk_size)
        return Attachment(
            sha256=full.sha256,
            size=full.size,
            media_type=full.media_type,
            position=self.position,
            taken=self.taken,
            chunk_size=full.chunk_size,
            merkle_root=full.merkle_root,
            preview=describe(self.preview, "image/jpeg", chunk_size),
            position_source=self.position_source,
        )


# -- reading ---------------------------------------------------------------------------


def load_photo(path: Path, **options: Any) -> PreparedPhoto:
    """Read ``path`` and ``prepare_photo`` it (the same keyword options)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageTooLargeError(
                f"{size} bytes is over the {MAX_FILE_BYTES}-byte limit for a photo; "
                "export a smaller copy from the camera app",
                str(path),
            )
        data = path.read_bytes()
    except OSError as exc:
        raise NotAnImageError(f"cannot read the file: {exc.strerror}", str(path)) from None
    return prepare_photo(data, name=str(path), **options)


def _open(data: bytes, name: str) -> Image.Image:
    if len(data) > MAX_FILE_BYTES:
        raise ImageTooLargeError(f"{len(data)} bytes is over the {MAX_FILE_BYTES}-byte limit", name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageTooLargeError("too many pixels to read safely", name) from None
    except UnidentifiedImageError:
        if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
            if _HAS_HEIF:  # its opener looked and gave up: not a missing package
                raise CorruptImageError(
                    "a HEIC/HEIF file that pillow-heif cannot decode (damaged, cut short, "
                    "or an encoding it lacks); export the photo as JPEG",
                    name,
                ) from None
            raise UnsupportedImageError(
                "a HEIC/HEIF photo, and pillow-heif is not installed: install it "
                "(pip install 'blo-alert[heif]') or export the photo as JPEG",
                name,
            ) from None
        raise NotAnImageError("not an image (JPEG or PNG expected)", name) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"the image header cannot be read ({exc})", name) from None
    if image.format not in _FORMATS:
        raise UnsupportedImageError(
            f"a {image.format} image; send JPEG or PNG"
            + ("" if _HAS_HEIF else " (HEIC with pillow-heif installed)"),
            name,
        )
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{width}x{height} is over {MAX_PIXELS // 1_000_000} megapixels; send a smaller copy",
            name,
        )
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImageError(
            f"the image data is damaged or cut short ({exc}); copy the file again", name
        ) from None
    return image


def _ratio(value: Any) -> float:
    # IFDRational, or a (numerator, denominator) pair from older writers.
    if isinstance(value, tuple) and len(value) == 2:
        num, den = value
        return float(num) / float(den) if den else math.nan
    return float(value)


def _dms(value: Any) -> float:
    if not isinstance(value, tuple) or len(value) != 3:
        return math.nan
    degrees, minutes, seconds = (_ratio(v) for v in value)
    if not (0 <= minutes < 60 and 0 <= seconds < 60.5):  # some cameras round to 60.0
        return math.nan
    return degrees + minutes / 60 + seconds / 3600


def _ref(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ").upper()


def read_gps(gps: dict[int, Any]) -> tuple[Position | None, str]:
    """The position in an EXIF GPS block, or None and why not."""
    if GPS.GPSLatitude not in gps or GPS.GPSLongitude not in gps:
        return None, "no GPS position in the photo"
    try:
        lat, lon = _dms(gps[GPS.GPSLatitude]), _dms(gps[GPS.GPSLongitude])
    except (TypeError, ValueError, ZeroDivisionError):
        return None, "the photo's GPS position cannot be read"
    if math.isnan(lat) or math.isnan(lon):
        return None, "the photo's GPS position cannot be read"
    lat_ref, lon_ref = _ref(gps.get(GPS.GPSLatitudeRef, "")), _ref(gps.get(GPS.GPSLongitudeRef, ""))
    if lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        return None, "the photo's GPS position has no N/S or E/W reference"
    if not (0 <= lat <= 90 and 0 <= lon <= 180):
        return None, "the photo's GPS position is out of range"
    if lat == 0 and lon == 0:
        return None, "the photo's GPS says 0, 0 (no fix)"
    accuracy = None
    if GPS.GPSHPositioningError in gps:
        try:
            err = _ratio(gps[GPS.GPSHPositioningError])
            accuracy = round(err) if 0 <= err <= 100_000 else None
        except (TypeError, ValueError, ZeroDivisionError):
            accuracy = None
    return Position(
        lat=round(-lat if lat_ref == "S" else lat, 6),
        lon=round(-lon if lon_ref == "W" else lon, 6),
        accuracy_m=accuracy,
    ), ""


def _offset(text: Any) -> tzinfo | None:
    try:
        sign = -1 if str(text)[0] == "-" else 1
        hours, minutes = str(text).strip("\x00 ")[1:].split(":")
        delta = sign * timedelta(hours=int(hours), minutes=int(minutes))
    except (ValueError, IndexError):
        return None
    if delta % timedelta(minutes=15) or abs(delta) > timedelta(hours=14):
        return None
    return timezone(delta)


def _taken(exif: Image.Exif, gps: dict[int, Any], local: tzinfo | None) -> datetime | None:
    sub = exif.get_ifd(IFD.Exif)
    original = sub.get(Base.DateTimeOriginal) or exif.get(Base.DateTime)
    when = None
    if isinstance(original, str):
        try:
            when = datetime.strptime(original.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            when = None
    zone = _offset(sub.get(Base.OffsetTimeOriginal)) if Base.OffsetTimeOriginal in sub else None
    if when is not None and zone is not None:
        return when.replace(tzinfo=zone)
    # The GPS time is UTC, so it is better than a local time with no offset.
    stamp, clock = gps.get(GPS.GPSDateStamp), gps.get(GPS.GPSTimeStamp)
    if isinstance(stamp, str) and isinstance(clock, tuple) and len(clock) == 3:
        try:
            day = datetime.strptime(stamp.strip("\x00 "), "%Y:%m:%d").replace(tzinfo=UTC)
            h, m, s = (_ratio(v) for v in clock)
            return (day + timedelta(hours=h, minutes=m, seconds=int(s))).replace(microsecond=0)
        except (ValueError, TypeError, OverflowError, ZeroDivisionError):
            pass
    if when is not None and local is not None:
        return when.replace(tzinfo=local)
    return None


# -- pixels ----------------------------------------------------------------------------


def _to_srgb(image: Image.Image, notes: list[str]) -> Image.Image:
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode=mode
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        notes.append("the photo's colour profile could not be applied; colours may differ")
        return image
    return converted if converted is not None else image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB (or L for greyscale) pixels, transparency laid on white, and no ``info``."""
    if image.mode in ("1", "L"):
        target = "L"
    elif image.mode.startswith("I"):
        # 16-bit greyscale: scale to 8 bits (a plain convert would clip to white).
        image = image.convert("I").point(lambda v: v * (1 / 256))
        target = "L"
    elif image.mode == "F":
        target = "L"
    else:
        target = "RGB"
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    # A new image built from the pixels alone: nothing from the file's info (EXIF,
    # ICC, XMP, comments) can ride along into the encoder.
    pixels = image.convert(target)
    return Image.frombytes(pixels.mode, pixels.size, pixels.tobytes())


def _scaled(image: Image.Image, side: int) -> Image.Image:
    if max(image.size) <= side:
        return image
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


def _preview(image: Image.Image, side: int, max_bytes: int) -> tuple[bytes, tuple[int, int]]:
    # Quality first (cheap for the eye at 640 px), then size: bounded at 12 shrinks.
    for _ in range(12):
        small = _scaled(image, side)
        for quality in _PREVIEW_QUALITIES:
            data = _jpeg(small, quality)
            if len(data) <= max_bytes:
                return data, small.size
        side = max(64, int(side * 0.8))
    raise ImageTooLargeError(f"no preview fits in {max_bytes} bytes")  # pragma: no cover


def _checked(data: bytes, what: str, name: str) -> bytes:
    left = metadata_in(data, name)
    if left:  # a guard on Pillow's behaviour: never send what we meant to remove
        raise MetadataError(f"the {what} still carries {', '.join(left)}", name)
    return data


def prepare_photo(
    data: bytes,
    *,
    incident_position: Position,
    name: str = "",
    max_side: int = FULL_SIDE,
    keep_original: bool = False,
    local_tz: tzinfo | None = None,
    preview_side: int = PREVIEW_SIDE,
    preview_max_bytes: int = PREVIEW_MAX_BYTES,
) -> PreparedPhoto:
    """Read a photo's bytes and prepare it for an incident (see the module docstring).

    ``name`` is the file name errors cite. ``local_tz`` is the zone a camera's local
    time is read in when the photo records neither its UTC offset nor a GPS time.
    Raises an ``ImageError`` subclass that names the file and says what to do.
    """
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as complaints:
        # Pillow warns, and reads on, on a damaged EXIF block (when it opens a JPEG, too).
        warnings.simplefilter("always")
        image = _open(data, name)
        try:
            exif = image.getexif()
            gps = dict(exif.get_ifd(IFD.GPSInfo))
        except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error):
            exif, gps = Image.Exif(), {}
            notes.append("the photo's EXIF block cannot be read; it is dropped")
        position, why = read_gps(gps)
        try:
            taken = _taken(exif, gps, local_tz)
        except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error):
            taken = None
            notes.append("the photo's time taken cannot be read")
    if complaints:
        notes.append("the photo's metadata is damaged; what could be read was used")
    fmt = image.format or ""
    source = PositionSource.EXIF
    if position is None:
        notes.append(f"{why}: the incident's position is used")
        position, source = incident_position, PositionSource.INCIDENT
    orientation = exif.get(Base.Orientation, 1)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged EXIF block was noted above
            upright = ImageOps.exif_transpose(image)
    except (OSError, ValueError, TypeError, KeyError, SyntaxError, struct.error) as exc:
        raise CorruptImageError(f"the orientation cannot be applied ({exc})", name) from None
    pixels = _flatten(_to_srgb(upright, notes))

    if keep_original:
        if orientation in range(2, 9):  # 1 is upright; other values are not rotations
            raise MetadataError(
                f"the photo is stored rotated (EXIF orientation {orientation}); with its "
                "metadata removed it would show sideways: send it re-encoded instead",
                name,
            )
        full = _checked(strip_metadata(data, fmt, name), "original", name)
        _open(full, name)  # still a readable image after the cut
        media = _FORMATS[fmt]
        size = pixels.size
    else:
        big = _scaled(pixels, max_side)
        full, media, size = (
            _checked(_jpeg(big, _FULL_QUALITY), "full image", name),
            "image/jpeg",
            big.size,
        )
    preview, preview_size = _preview(pixels, preview_side, preview_max_bytes)
    return PreparedPhoto(
        name=name,
        preview=_checked(preview, "preview", name),
        full=full,
        full_media_type=media,
        size=size,
        preview_size=preview_size,
        position=position,
        position_source=source,
        taken=taken,
        notes=tuple(notes),
    )
