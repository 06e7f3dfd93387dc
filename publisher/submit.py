"""Check, sign and queue one composed message: the path ``blo-pub`` and the web app share.

``blo-pub alert|incident|bulletin`` and the officer's and HQ's web pages (web/) both
end here, so a message from a form is refused, signed, numbered and queued exactly
like one from the command line: the draft is judged with the rules every receiver
and broker apply (``compose.refusal``), photos are checked against the office's
quota before anything is signed, then the message is committed to the outbox and
its photos registered in the blob store for the running ``blo-sub run`` to serve.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from certs import EnrolmentBundle
from photos.images import PreparedPhoto
from photos.store import BlobStore, Quotas, blob_refs
from publisher.compose import compose, keep_photos, refusal
from publisher.errors import ComposeError
from publisher.outbox import Outbox, Queued
from publisher.sealing import seal_for
from schemas import (
    BloError,
    Draft,
    Incident,
    Receiver,
    Role,
    Scope,
    TrustStore,
    addressed_to,
    open_envelope,
    trust_topic,
)

__all__ = ["BLOB_FILE", "Submitted", "addressed_offices", "node_trust", "submit_document"]

#: The node's blob store, in its data folder (the same name subscriber/photos.py uses).
BLOB_FILE = "blobs.sqlite3"


@dataclass(frozen=True, slots=True)
class Submitted:
    """A message checked, signed and committed to the outbox."""

    draft: Draft
    queued: Queued
    #: Bytes of the photos kept for sending (previews and full images).
    photo_bytes: int = 0
    #: The nodes it was sealed for (empty: sent in clear).
    sealed_for: tuple[str, ...] = ()


def node_trust(bundle: EnrolmentBundle, folder: Path, now: datetime) -> TrustStore:
    """The bundle's trust, brought up to date with the keysets the running client kept.

    An office issued after this node's enrolment is known only from those.
    """
    from subscriber.inbox import Inbox  # (subscriber imports publisher: not at load)

    store = bundle.trust_store(now)
    inbox_file = folder / "inbox.sqlite3"
    if not inbox_file.exists():
        return store
    inbox = Inbox(inbox_file)
    try:
        receiver = Receiver(store)
        for data in inbox.trust_messages():
            header = open_envelope(data).header
            receiver.receive(trust_topic(header.kind, header.sender), data, now)
    finally:
        inbox.close()
    return store


def addressed_offices(store: TrustStore, scope: Scope) -> list[str]:
    """Every active BLO that ``scope`` addresses, by the keysets in ``store`` (sorted)."""
    return sorted(
        entry.node
        for country in store.countries
        if (keyset := store.keyset(country))
        for entry in keyset.nodes
        if entry.role is Role.BLO and entry.revoked is None and addressed_to(scope, entry)
    )


def submit_document(
    bundle: EnrolmentBundle,
    folder: Path,
    doc: dict[str, Any],
    *,
    now: datetime,
    expires_in: timedelta,
    photos: list[PreparedPhoto] | None = None,
    quota: int | None = None,
    confidential: bool = False,
) -> Submitted:
    """Compose ``doc``, refuse what could never arrive, sign and queue it.

    ``photos`` are the prepared photos whose attachments ``doc`` already holds
    (``compose.prepare_photos``); ``quota`` is the office's photo quota in bytes.
    Bulletins are always sealed for their recipients, alerts and incidents when
    ``confidential`` (``publisher.sealing``).
    Raises ``ComposeError`` (or another ``BloError``) with one line saying why;
    nothing is queued then.
    """
    draft = compose(doc, sender=bundle.node, now=now, expires_in=expires_in)
    trust = node_trust(bundle, folder, now)
    why = refusal(draft, trust, bundle.signer().key_id)
    if why:
        raise ComposeError(f"not queued: {why}")
    photos = photos or []
    if confidential and photos:
        raise ComposeError(
            "not queued: photo chunks travel unsealed, so a confidential incident cannot "
            "carry photos; send it without --photo, or without --confidential"
        )
    recipients = seal_for(
        draft.kind, draft.scope, bundle.node, trust, now, confidential=confidential
    )
    store = None
    if photos and isinstance(draft.body, Incident):
        # The quota is checked before the incident is signed: a photo that cannot
        # be kept at the sender could never be served to anyone.
        limit = quota if quota is not None else Quotas().per_office
        store = BlobStore(
            folder / BLOB_FILE, Quotas(per_office=limit, total=max(limit, Quotas().total))
        )
        refs = [ref for a in draft.body.attachments for ref in blob_refs(a)]
        try:
            store.ensure_room(bundle.node, refs)
        except BloError:
            store.close()
            raise
    msg_id = os.urandom(16)
    size = 0
    if store is not None and isinstance(draft.body, Incident):
        # Photos first, then the incident: a crash between the two leaves photos that
        # no incident names (retention prunes them), never an incident whose photos
        # nobody holds (no receiver could ever complete it).
        try:
            keep_photos(
                store,
                photos,
                draft.body.attachments,
                office=bundle.node,
                msg_id=msg_id,
                now=now,
            )
        finally:
            store.close()
        size = sum(len(p.preview) + len(p.full) for p in photos)
    outbox = Outbox(folder / "outbox.sqlite3", bundle.signer())
    try:
        queued = outbox.submit(
            draft.body,
            draft.scope,
            issued=draft.issued,
            expires=draft.expires,
            msg_id=msg_id,
            seal_for=recipients,
        )
    finally:
        outbox.close()
    sealed = tuple(r.node for r in recipients or ())
    return Submitted(draft, queued, size, sealed)
