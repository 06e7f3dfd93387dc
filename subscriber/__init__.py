"""blo-alert nodes: the running client (a BLO tablet or an HQ) and the officer's commands.

``NodeClient`` keeps one MQTT link and moves messages between it and two
SQLite files: the inbox (inbox.py) and the outbox (publisher.Outbox).
``blo-sub`` (cli.py) is its command line; views.py draws what an officer sees.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from subscriber.client import NodeClient
from subscriber.errors import FolderInUse, InboxError, SubscriberError
from subscriber.inbox import Inbox, Stored
from subscriber.link import node_client
from subscriber.lock import FolderLock
from subscriber.receipts import receipt_id, settle

if TYPE_CHECKING:
    from subscriber.views import headline, inbox_table, message_view, status_table

__all__ = [
    "FolderInUse",
    "FolderLock",
    "Inbox",
    "InboxError",
    "NodeClient",
    "Stored",
    "SubscriberError",
    "headline",
    "inbox_table",
    "message_view",
    "node_client",
    "receipt_id",
    "settle",
    "status_table",
]


def __getattr__(name: str) -> Any:
    # The views (rich) load on first use: the running client never draws a table.
    if name in ("headline", "inbox_table", "message_view", "status_table"):
        return getattr(importlib.import_module("subscriber.views"), name)
    raise AttributeError(f"module 'subscriber' has no attribute {name!r}")
