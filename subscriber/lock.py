"""One running client per data folder: an advisory lock held for the process's life.

Two clients on one folder would share a client id: the broker hands the
session to whichever connected last, so they take it from each other forever,
each link flapping with no error. ``FolderLock`` makes the second one stop at
once with a message naming the holder. The lock is ``flock`` on a file in the
folder: the kernel releases it when the process dies, even by SIGKILL, so a
crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from subscriber.errors import FolderInUse, SubscriberError

__all__ = ["FolderLock"]


class FolderLock:
    """An exclusive, non-blocking lock on the file ``path`` (in the folder it guards),
    held by ``purpose``: the next one who tries is told who holds it."""

    def __init__(self, path: Path, purpose: str) -> None:
        self.path = path
        self.purpose = purpose
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``FolderInUse`` naming who holds it."""
        if self._file is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise SubscriberError(f"cannot lock {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise FolderInUse(
                f"{self.path.parent} is in use by {holder}: stop that one first, "
                "or give this one another data folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{self.purpose} (pid {os.getpid()})\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Let the folder go (closing the file drops the lock)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
