"""blo-alert publishing: the durable outbox and the ``blo-pub`` command.

A message is composed (compose.py), sealed with the node's next sequence
number and committed to the outbox before any network I/O (outbox.py); the
node's running client (``blo-sub run``) or ``blo-pub`` itself sends it.
"""

from publisher.compose import attachment, compose, load_document
from publisher.errors import ComposeError, OutboxError, PublisherError
from publisher.outbox import Outbox, Queued, connect

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
