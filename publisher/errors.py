"""Errors of the publisher package, under the library's one base error::

    BloError                (schemas.errors)
    └── PublisherError      a message cannot be composed, queued or sent
        ├── ComposeError    an option or document does not make a valid message
        ├── OutboxError     the outbox file cannot be used
        └── DataFolderError the node's data folder (--data) cannot be used

sqlite3 errors are translated in outbox.py; pydantic's in compose.py.
"""

from __future__ import annotations

from schemas import BloError

__all__ = ["ComposeError", "DataFolderError", "OutboxError", "PublisherError"]


class PublisherError(BloError):
    """A message cannot be composed, queued or sent."""


class ComposeError(PublisherError):
    """Options or a document do not make a valid message; the message names the field."""


class OutboxError(PublisherError):
    """The outbox file cannot be opened or written."""


class DataFolderError(PublisherError):
    """The node's data folder is not a folder, or cannot be created."""
