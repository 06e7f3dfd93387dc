"""blo-alert publishing: the durable outbox and the ``blo-pub`` command.

A message is composed (compose.py), sealed with the node's next sequence
number and committed to the outbox before any network I/O (outbox.py); the
node's running client (``blo-sub run``) or ``blo-pub`` itself sends it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from publisher.errors import ComposeError, OutboxError, PublisherError
from publisher.outbox import Outbox, Queued, connect

if TYPE_CHECKING:
    from publisher.compose import attachment, compose, load_document

__all__ = [
    "ComposeError",
    "Outbox",
    "OutboxError",
    "PublisherError",
    "Queued",
    "attachment",
    "compose",
    "connect",
    "load_document",
]


def __getattr__(name: str) -> Any:
    # Composing loads the photo pipeline (Pillow, ~5 MiB): a running tablet that only
    # queues receipts never needs it, so it loads on first use (issue 15, footprint).
    if name in ("attachment", "compose", "load_document"):
        return getattr(importlib.import_module("publisher.compose"), name)
    raise AttributeError(f"module 'publisher' has no attribute {name!r}")
