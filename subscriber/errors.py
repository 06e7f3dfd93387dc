"""Errors of the subscriber package, under the library's one base error::

    BloError                (schemas.errors)
    └── SubscriberError     a node's files or link cannot be used
        ├── InboxError      the inbox file cannot be opened or is of another layout
        └── FolderInUse     another client already runs on this data folder

sqlite3 errors are translated in inbox.py; OS errors of the lock in lock.py.
"""

from __future__ import annotations

from schemas import BloError

__all__ = ["FolderInUse", "InboxError", "SubscriberError"]


class SubscriberError(BloError):
    """A node's files or link cannot be used; the message names the file and what to do."""


class InboxError(SubscriberError):
    """The inbox file cannot be opened, or was written by another layout."""


class FolderInUse(SubscriberError):
    """Another running client holds this data folder."""
