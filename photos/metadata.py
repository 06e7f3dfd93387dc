"""Finding metadata in a JPEG or PNG, and cutting it out without re-encoding.

``metadata_in`` lists what a file still carries (EXIF, XMP, ICC, IPTC, comments,
thumbnails, text chunks, bytes after the end of the image); images.py runs it on
everything it produces. ``strip_metadata`` keeps only what decoding needs: JPEG
segments other than APPn and COM (an Adobe APP14 colour-transform flag stays), PNG
critical chunks and the colour-interpretation ones (tRNS, gAMA, cHRM, sRGB, sBIT),
and nothing after the end of the image (phones append motion-photo videos there).
A JPEG's scans are walked marker by marker, so the compressed pixels are copied
byte for byte.
"""

from __future__ import annotations

from photos.errors import CorruptImageError, UnsupportedImageError

__all__ = ["jpeg_label", "jpeg_segments", "metadata_in", "strip_metadata"]


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"sBIT"}
_PNG_NAMES = {b"eXIf": "EXIF", b"iCCP": "ICC", b"tIME": "time", b"iTXt": "text/XMP"}


def jpeg_segments(data: bytes, name: str) -> tuple[list[tuple[int, int, int]], int]:
    """The JPEG's top-level segments as (marker, start, end), a scan including its
    entropy-coded data; and where the image ends (after EOI)."""
    bad = CorruptImageError
    if data[:2] != b"\xff\xd8":
        raise bad("not a JPEG stream", name)
    out, pos, n = [(0xD8, 0, 2)], 2, len(data)
    while True:
        if pos >= n or data[pos] != 0xFF:
            raise bad("the JPEG's segments are damaged or cut short", name)
        start = pos
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            raise bad("the JPEG ends inside a marker", name)
        marker, pos = data[pos], pos + 1
        if marker == 0xD9:
            out.append((marker, start, pos))
            return out, pos
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out.append((marker, start, pos))
            continue
        if pos + 2 > n or int.from_bytes(data[pos : pos + 2], "big") < 2:
            raise bad("a JPEG segment has no valid length", name)
        end = pos + int.from_bytes(data[pos : pos + 2], "big")
        if end > n:
            raise bad("a JPEG segment runs past the end of the file", name)
        if marker == 0xDA:  # entropy-coded data runs to the next real marker
            i = end
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    raise bad("the JPEG ends inside its image data", name)
                follow = data[j + 1]
                if follow == 0x00 or 0xD0 <= follow <= 0xD7:
                    i = j + 2
                elif follow == 0xFF:
                    i = j + 1
                else:
                    end = j
                    break
        out.append((marker, start, end))
        pos = end


def jpeg_label(data: bytes, marker: int, start: int, end: int) -> str | None:
    """What a JPEG segment holds, or None if it carries no metadata."""
    body = data[start + 4 : end]
    if marker == 0xE0:
        # JFIF: density only, unless it carries a thumbnail (bytes 12 and 13: its size).
        if body.startswith(b"JFIF\x00") and len(body) >= 14 and body[12] == body[13] == 0:
            return None
        return "JFIF thumbnail" if body.startswith(b"JFIF\x00") else "APP0"
    if marker == 0xEE and body.startswith(b"Adobe"):
        return None  # colour transform flag, needed to decode; nothing about the device
    if marker == 0xE1:
        return "XMP" if body.startswith(b"http://ns.adobe.com/") else "EXIF"
    if marker == 0xE2:
        return "ICC" if body.startswith(b"ICC_PROFILE") else "APP2 (MPF)"
    if marker == 0xED:
        return "IPTC"
    if marker == 0xFE:
        return "comment"
    if 0xE0 <= marker <= 0xEF:
        return f"APP{marker - 0xE0}"
    return None


def _png_chunks(data: bytes, name: str) -> tuple[list[tuple[bytes, int, int]], int]:
    if not data.startswith(_PNG_SIGNATURE):
        raise CorruptImageError("not a PNG stream", name)
    out, pos = [], len(_PNG_SIGNATURE)
    while True:
        if pos + 12 > len(data):
            raise CorruptImageError("the PNG is cut short", name)
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise CorruptImageError("a PNG chunk runs past the end of the file", name)
        out.append((kind, pos, end))
        pos = end
        if kind == b"IEND":
            return out, pos


def metadata_in(data: bytes, name: str = "") -> list[str]:
    """The metadata a JPEG or PNG still carries ([] when clean). Raises ``ImageError``
    for anything else."""
    if data.startswith(_PNG_SIGNATURE):
        chunks, end = _png_chunks(data, name)
        found = [
            _PNG_NAMES.get(kind, kind.decode("latin-1"))
            for kind, _, _ in chunks
            if kind not in _PNG_KEEP
        ]
    elif data.startswith(b"\xff\xd8"):
        segments, end = jpeg_segments(data, name)
        labels = (jpeg_label(data, *segment) for segment in segments)
        found = [label for label in labels if label]
    else:
        raise UnsupportedImageError("metadata can be checked in JPEG and PNG only", name)
    if end < len(data):
        found.append(f"{len(data) - end} bytes after the end of the image")
    return found


def strip_metadata(data: bytes, fmt: str, name: str) -> bytes:
    """The file's own bytes with every metadata segment cut out, pixels untouched."""
    if fmt == "PNG":
        chunks, _ = _png_chunks(data, name)
        kept = [data[a:b] for kind, a, b in chunks if kind in _PNG_KEEP]
        return _PNG_SIGNATURE + b"".join(kept)
    if fmt == "JPEG":
        segments, _ = jpeg_segments(data, name)
        return b"".join(
            data[a:b] for marker, a, b in segments if jpeg_label(data, marker, a, b) is None
        )
    raise UnsupportedImageError(
        f"the original bytes of a {fmt} image cannot be kept (metadata is cut out of "
        "JPEG and PNG only): send it without --keep-original, re-encoded as JPEG",
        name,
    )
