"""Errors of the photos package, under the library's one base error::

    BloError                      (schemas.errors)
    └── PhotoError                a photo, a blob or the blob store cannot be used
        ├── ImageError            a file that cannot be sent as a photo (names the file)
        │   ├── NotAnImageError       not an image at all
        │   ├── UnsupportedImageError an image of a type we do not send (HEIC without
        │   │                         pillow-heif, GIF, TIFF, ...)
        │   ├── ImageTooLargeError    too many bytes or pixels to read safely
        │   ├── CorruptImageError     an image whose data cannot be decoded
        │   └── MetadataError         metadata that cannot be removed without
        │                             re-encoding (kept original bytes only)
        ├── BlobError             a blob's description or chunks do not hold together
        ├── StoreError            the blob store file cannot be opened or written
        │   ├── UnknownBlobError      a blob no accepted message described
        │   └── QuotaError            a blob that would put an office or the store over
        │                             its quota (says how much is free)
        └── MapError              the map cannot be drawn (bad border data, no position)

Pillow's, sqlite3's and matplotlib's errors are translated where they are called
(images.py, store.py, map.py). A chunk arriving from the network is not an error:
``chunks.verify_chunk`` and ``store.BlobStore.put_chunk`` return a result with a
reason, so a bad chunk never stops a receive loop.
"""

from __future__ import annotations

from schemas.errors import BloError

__all__ = [
    "BlobError",
    "CorruptImageError",
    "ImageError",
    "ImageTooLargeError",
    "MapError",
    "MetadataError",
    "NotAnImageError",
    "PhotoError",
    "QuotaError",
    "StoreError",
    "UnknownBlobError",
    "UnsupportedImageError",
]


class PhotoError(BloError):
    """A photo, blob or blob store cannot be used; the message says which and what to do."""


class ImageError(PhotoError):
    """A file cannot be sent as a photo; ``path`` names it (empty for in-memory bytes)."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class NotAnImageError(ImageError):
    """The file is not an image Pillow recognises."""


class UnsupportedImageError(ImageError):
    """An image of a type that is not sent (only JPEG, PNG and, with pillow-heif, HEIC)."""


class ImageTooLargeError(ImageError):
    """Too many bytes or pixels to read safely."""


class CorruptImageError(ImageError):
    """The image's data cannot be decoded (truncated or damaged)."""


class MetadataError(ImageError):
    """Metadata that cannot be removed without re-encoding the kept original bytes."""


class BlobError(PhotoError):
    """A blob's description and its bytes or chunks do not agree."""


class StoreError(PhotoError):
    """The blob store file cannot be opened or written."""


class UnknownBlobError(StoreError):
    """A blob or chunk that no signed, accepted message described."""


class QuotaError(StoreError):
    """A blob would put its office, or the whole store, over quota."""


class MapError(PhotoError):
    """The map cannot be drawn."""
