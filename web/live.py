"""What changed in the node's files, for the pages' server-sent events.

One watcher thread per server asks each SQLite file for ``PRAGMA data_version``
every ``period`` seconds on a connection of its own: the number changes whenever
another connection (the running client, ``blo-pub``, a page's action) commits. A
change bumps that area's version; each open page's event stream sends the names
of the areas that moved since it last looked, and the page fetches again only the
parts that show them. Nothing is sent while nothing changes, apart from a comment
every 15 s that keeps proxies from closing the stream.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path

__all__ = ["AREAS", "Watcher", "changed", "sse"]

log = logging.getLogger("blo.web")

#: Area name -> the file in the node's folder whose commits it follows.
AREAS = {"inbox": "inbox.sqlite3", "outbox": "outbox.sqlite3", "photos": "blobs.sqlite3"}


def changed(before: Mapping[str, int], now: Mapping[str, int]) -> list[str]:
    """The areas whose version moved between two snapshots (sorted)."""
    return sorted(area for area, version in now.items() if before.get(area) != version)


def sse(event: str, data: str) -> bytes:
    """One server-sent event; ``data`` must be a single line (area names are)."""
    if "\n" in data or "\r" in data:
        raise ValueError("an event's data is one line here")
    return f"event: {event}\ndata: {data}\n\n".encode()


class Watcher:
    """Polls the node's files for commits; ``versions`` is a snapshot of the counters."""

    def __init__(self, folder: Path, period: float = 0.3) -> None:
        self.folder = folder
        self.period = period
        self._versions = dict.fromkeys(AREAS, 0)
        self._seen: dict[str, int | None] = dict.fromkeys(AREAS)
        self._db: dict[str, sqlite3.Connection] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blo-web-watch", daemon=True)

    @property
    def versions(self) -> dict[str, int]:
        return dict(self._versions)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for db in self._db.values():
            db.close()

    def _data_version(self, area: str) -> int | None:
        path = self.folder / AREAS[area]
        if area not in self._db:
            if not path.exists():
                return None
            self._db[area] = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False
            )
        return int(self._db[area].execute("PRAGMA data_version").fetchone()[0])

    def poll(self) -> list[str]:
        """Look once; returns the areas that changed (and bumps their versions)."""
        moved = []
        for area in AREAS:
            try:
                version = self._data_version(area)
            except sqlite3.Error as exc:
                log.warning("web: cannot watch %s: %s", AREAS[area], exc)
                self._db.pop(area, None)
                continue
            if version != self._seen[area]:
                if self._seen[area] is not None or version is not None:
                    self._versions[area] += 1
                    moved.append(area)
                self._seen[area] = version
        return moved

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.poll()
            except Exception:  # never let the watcher die: the pages would go stale
                log.exception("web: the change watcher failed once; going on")
