"""The archive's photo blobs: it stores and serves them like any holder.

The archive reads every country's incidents, so it registers their photos, asks
the sender for the chunks (``subscriber.photos.PhotoLink``, the node's own code)
and keeps them in a blob store beside its envelope file
(``ARCHIVE-blobs.sqlite3``). Needs addressed to it (``blo/need/ARCHIVE/+``) are
answered on ``blo/chunk/CC/ARCHIVE``: a receiver whose sender is switched off or
cut finishes from here, asking only for what it lacks.

At start it resumes the photos of incidents it stored just before a crash (stored,
not yet registered), and it keeps complete photos for ever and unfinished ones for
30 days unless ``BLO_ARCHIVE_PHOTOS_KEEP_DAYS`` / ``BLO_ARCHIVE_PHOTOS_PARTIAL_DAYS``
say otherwise (``photos.store.retention_from``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt

from photos.store import ARCHIVE_RETENTION, BlobStore, Quotas, Retention, retention_from
from schemas import BloError, Kind, Role, TrustStore
from schemas.base import WireModel
from schemas.envelope import Header, open_envelope
from subscriber.photos import PhotoLink

__all__ = ["ARCHIVE_QUOTAS", "RETENTION_ENV", "archive_blobs", "archived_incidents", "blob_file"]

log = logging.getLogger("blo.archive")

#: BLO_ARCHIVE_PHOTOS_KEEP_DAYS, BLO_ARCHIVE_PHOTOS_PARTIAL_DAYS: the archive's own,
#: apart from a node's (an HQ may run both on one machine).
RETENTION_ENV = "BLO_ARCHIVE_PHOTOS"

_GIB = 1024**3
#: The archive keeps every office's photos: more room than a tablet's store.
ARCHIVE_QUOTAS = Quotas(per_office=2 * _GIB, total=32 * _GIB)


def blob_file(db: Path) -> Path:
    """The blob store beside the archive's envelope file ``db``."""
    return db.with_name(f"{db.stem}-blobs.sqlite3")


def archived_incidents(
    db: Path, since: datetime | None
) -> Iterator[tuple[Header, WireModel, datetime]]:
    """The incidents in the archive's envelope file ``db`` received at or after
    ``since`` (all if None): header, body and when received, for ``PhotoLink.resume``.

    Read from the file ``broker.archive.ArchiveStore`` keeps (its ``envelopes``
    table), on a read-only connection of its own. The envelopes were verified when
    they were stored; one that no longer decodes is logged and skipped.
    """
    try:
        # A URI for read-only; as_uri needs an absolute path (blo-broker's --data is
        # often relative).
        con = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        log.warning("%s: incidents not read for their photos: %s", db, exc)
        return
    try:
        rows = con.execute(
            "SELECT data, received FROM envelopes WHERE kind = ? AND received >= ?",
            (int(Kind.INCIDENT), int(since.timestamp()) if since else 0),
        ).fetchall()
    except sqlite3.Error as exc:
        log.warning("%s: incidents not read for their photos: %s", db, exc)
        return
    finally:
        con.close()
    for data, received in rows:
        try:
            sealed = open_envelope(data)
            yield sealed.header, sealed.decode_body(), datetime.fromtimestamp(received, UTC)
        except BloError as exc:
            log.warning("%s: an archived incident does not decode: %s", db, exc)


def archive_blobs(
    me: str,
    db: Path,
    client: mqtt.Client,
    trust: TrustStore,
    clock: Callable[[], datetime],
    retention: Retention | None = None,
) -> PhotoLink:
    """The archive's ``PhotoLink``: it asks senders only, and serves whoever asks it.
    Photos of incidents in ``db`` that were never registered (a crash between storing
    an incident and registering its photos) are registered now, and fetched."""

    def is_archive(node: str) -> bool:
        entry = trust.node(node)
        return entry is not None and entry.role is Role.ARCHIVE

    if retention is None:
        retention = retention_from(os.environ, RETENTION_ENV, ARCHIVE_RETENTION)
    link = PhotoLink(
        me,
        BlobStore(blob_file(db), ARCHIVE_QUOTAS),
        client,
        archive=None,
        is_archive=is_archive,
        clock=clock,
        retention=retention,
    )
    since = None if retention.partial is None else clock() - retention.partial
    link.resume(archived_incidents(db, since))
    return link
