"""Write a GPS position and a time taken into a JPEG's EXIF, as a phone camera does.

For the demo and for tests, which need geo-coded photos to send; real photos come
with their own. The EXIF block is spliced in without re-encoding the pixels: an
existing EXIF block is replaced, everything else is kept. The position is written
as degrees, minutes and seconds (seconds in 1/1000) with N/S/E/W references, the
time as DateTimeOriginal with OffsetTimeOriginal.
"""

from __future__ import annotations

from datetime import datetime

from PIL import Image
from PIL.ExifTags import GPS, IFD, Base
from PIL.TiffImagePlugin import IFDRational

from photos.errors import ImageError
from photos.metadata import jpeg_label, jpeg_segments
from schemas.messages import Position

__all__ = ["with_gps"]


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    millis = round(abs(value) * 3600 * 1000)
    degrees, rest = divmod(millis, 3600 * 1000)
    minutes, seconds = divmod(rest, 60 * 1000)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 1000)


def with_gps(
    jpeg: bytes, position: Position, *, taken: datetime | None = None, name: str = ""
) -> bytes:
    """``jpeg`` with an EXIF block holding ``position`` (and ``taken``). Raises
    ``ImageError`` if ``jpeg`` is not a readable JPEG stream."""
    exif = Image.Exif()
    exif[Base.Make] = "blo-alert demo"
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    gps[GPS.GPSLatitudeRef] = "N" if position.lat >= 0 else "S"
    gps[GPS.GPSLatitude] = _dms(position.lat)
    gps[GPS.GPSLongitudeRef] = "E" if position.lon >= 0 else "W"
    gps[GPS.GPSLongitude] = _dms(position.lon)
    if position.accuracy_m is not None:
        gps[GPS.GPSHPositioningError] = IFDRational(position.accuracy_m, 1)
    if taken is not None:
        sub = exif.get_ifd(IFD.Exif)
        sub[Base.DateTimeOriginal] = taken.strftime("%Y:%m:%d %H:%M:%S")
        offset = taken.strftime("%z")  # +0700
        if offset:
            sub[Base.OffsetTimeOriginal] = f"{offset[:3]}:{offset[3:]}"
    block = exif.tobytes()  # b"Exif\0\0" and the TIFF structure
    if len(block) + 2 > 0xFFFF:
        raise ImageError("the EXIF block would be too large", name)  # pragma: no cover
    app1 = b"\xff\xe1" + (len(block) + 2).to_bytes(2, "big") + block
    segments, end = jpeg_segments(jpeg, name)
    kept = [jpeg[a:b] for marker, a, b in segments if jpeg_label(jpeg, marker, a, b) != "EXIF"]
    # After SOI and a JFIF header if there is one, where cameras put it.
    at = 2 if len(kept) > 1 and kept[1][:2] == b"\xff\xe0" else 1
    return b"".join([*kept[:at], app1, *kept[at:]]) + jpeg[end:]
