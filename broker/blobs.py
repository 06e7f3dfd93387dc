"""The archive's photo blobs: it stores and serves them like any holder.

The archive reads every country's incidents, so it registers their photos, asks
the sender for the chunks (``subscriber.photos.PhotoLink``, the node's own code)
and keeps them in a blob store beside its envelope file
(``ARCHIVE-blobs.sqlite3``). Needs addressed to it (``blo/need/ARCHIVE/+``) are
answered on ``blo/chunk/CC/ARCHIVE``: a receiver whose sender is switched off or
cut finishes from here, asking only for what it lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt

from photos.store import BlobStore, Quotas
from schemas import Role, TrustStore
from subscriber.photos import PhotoLink

__all__ = ["ARCHIVE_QUOTAS", "archive_blobs", "blob_file"]

_GIB = 1024**3
#: The archive keeps every office's photos: more room than a tablet's store.
ARCHIVE_QUOTAS = Quotas(per_office=2 * _GIB, total=32 * _GIB)


def blob_file(db: Path) -> Path:
    """The blob store beside the archive's envelope file ``db``."""
    return db.with_name(f"{db.stem}-blobs.sqlite3")


def archive_blobs(
    me: str,
    db: Path,
    client: mqtt.Client,
    trust: TrustStore,
    clock: Callable[[], datetime],
) -> PhotoLink:
    """The archive's ``PhotoLink``: it asks senders only, and serves whoever asks it."""

    def is_archive(node: str) -> bool:
        entry = trust.node(node)
        return entry is not None and entry.role is Role.ARCHIVE

    return PhotoLink(
        me,
        BlobStore(blob_file(db), ARCHIVE_QUOTAS),
        client,
        archive=None,
        is_archive=is_archive,
        clock=clock,
    )
