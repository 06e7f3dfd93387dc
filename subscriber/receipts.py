"""Receipts a node owes: queued exactly once, even across a crash.

The inbox marks a message as owing a receipt (``delivered`` for a stored alert,
``read`` for an opened one) in the same transaction that stores or reads it.
``settle`` then queues the owed receipts in the outbox and clears the marks.
The inbox and the outbox are two SQLite files, and WAL commits atomically per
file only; a crash between them leaves the marks set, and the next ``settle``
(the client runs it at every start) queues them. A receipt's id is derived
from the alert's, so one queued just before the crash is found, not repeated.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from publisher import Outbox
from schemas import Receipt, ReceiptStatus, Scope, WireModel
from subscriber.inbox import OWE_DELIVERED, OWE_READ, Inbox

__all__ = ["RECEIPT_DAYS", "receipt_id", "settle"]

RECEIPT_DAYS = 30
_STATUSES = ((OWE_DELIVERED, ReceiptStatus.DELIVERED), (OWE_READ, ReceiptStatus.READ))


def receipt_id(of: bytes, status: ReceiptStatus, node: str) -> bytes:
    """The message id of ``node``'s ``status`` receipt for message ``of``."""
    seed = b"blo-receipt\0" + of + status.value.encode() + b"\0" + node.encode()
    return hashlib.sha256(seed).digest()[:16]


def settle(inbox: Inbox, outbox: Outbox, node: str, now: datetime) -> int:
    """Queue every receipt ``inbox`` says is owed (one outbox transaction), then stop
    owing them. Returns how many were queued now (0 for those queued before)."""
    owed = inbox.owed()
    if not owed:
        return 0
    now = now.replace(microsecond=0)
    items: list[tuple[WireModel, Scope]] = []
    ids: list[bytes] = []
    for msg_id, sender, bits in owed:
        for bit, status in _STATUSES:
            if bits & bit:
                items.append((Receipt(of=msg_id, status=status, at=now), Scope.node(sender)))
                ids.append(receipt_id(msg_id, status, node))
    queued = outbox.submit_many(
        items, issued=now, expires=now + timedelta(days=RECEIPT_DAYS), msg_ids=ids
    )
    inbox.settle([(msg_id, bits) for msg_id, _, bits in owed])
    return len(queued)
