"""The photo transfer protocol, sans-I/O: what a receiver asks for, what a holder sends.

Receiver-driven. A node that accepts an incident with photos registers their blobs
in its store (``photos.store``) and asks a holder for the chunks it lacks with a
*need frame* on ``blo/need/HOLDER/ME``: the blob's root, its chunk count and a
``NeedMap``. The holder (the incident's sender, or the archive) answers with the
chunks on ``blo/chunk/CC/HOLDER``, which the whole audience reads, so one answer
feeds every receiver that lacked the same chunks. Nothing is pushed unasked.

- ``Asking`` (receiver): a blob is asked for at once, then again only when
  ``patience`` seconds pass without any chunk arriving (of any blob: while a holder
  is busy with a preview, the full image queued behind it is not asked for again,
  and chunks in flight are not asked for twice). Chunks travel at QoS 1 on
  persistent sessions, so a cut alone loses none; asking again is for a holder
  that restarted or is gone. Asks alternate between the sender and the archive, so
  a sender switched off does not stall a transfer the archive can finish. The need
  map holds only what is missing: a resume, not a restart.
- ``Serving`` (holder): what was asked, merged per blob, handed out ``budget``
  chunks at a time, smallest blob first (previews before full images), so the
  caller can keep a bounded number of chunks in flight and an alert published
  meanwhile waits for a few chunks at most, never for the photos.
- ``check_source``: a chunk is taken only on the chunk topic of its incident's
  country, from its sender or an archive.

Times are plain numbers (monotonic seconds) passed in; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgpack

from photos.chunks import NeedMap
from photos.errors import BlobError
from photos.store import BlobStatus

__all__ = [
    "Ask",
    "Asking",
    "Serving",
    "check_source",
    "decode_need",
    "encode_need",
]


def encode_need(root: bytes, need: NeedMap) -> bytes:
    """A need frame: ``[root, n, need map]`` in msgpack."""
    return bytes(msgpack.packb([root, need.n, need.encode()], use_bin_type=True))


def decode_need(payload: bytes) -> tuple[bytes, NeedMap]:
    """Read a need frame strictly. Raises ``BlobError`` (the caller logs and drops it)."""
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=True, max_bin_len=1 << 18)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise BlobError(f"need frame: not msgpack ({exc})") from None
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not isinstance(value[0], bytes)
        or len(value[0]) != 32
        or not isinstance(value[1], int)
        or not isinstance(value[2], bytes)
    ):
        raise BlobError("need frame: expected [root(32 bytes), n, need map]")
    return value[0], NeedMap.decode(value[2], value[1])


def check_source(
    country: str, source: str, status: BlobStatus, is_archive: Callable[[str], bool]
) -> str | None:
    """Why a chunk of ``status``'s blob may not come from ``source`` on ``country``'s
    chunk topic, or None if it may (its sender's office, or an archive)."""
    if not status.office.startswith(f"{country}-"):
        return f"chunk of {status.office}'s blob on the chunk topic of {country}"
    if source != status.office and not is_archive(source):
        return (
            f"chunk of {status.office}'s blob served by {source}, neither its sender nor an archive"
        )
    return None


@dataclass(frozen=True, slots=True)
class Ask:
    """One need frame to send: to ``holder``, for blob ``root``."""

    holder: str
    root: bytes
    need: NeedMap


@dataclass(slots=True)
class _Asked:
    at: float
    held: int
    tries: int = 0


@dataclass
class Asking:
    """A receiver's asks: once at once, then again after ``patience`` without progress."""

    me: str
    archive: str | None
    patience: float = 8.0
    _asked: dict[bytes, _Asked] = field(default_factory=dict)
    _progress_at: float = float("-inf")

    def progress(self, now: float) -> None:
        """A new chunk arrived (of any blob): the holders are delivering."""
        self._progress_at = now

    def due(self, missing: Iterable[tuple[BlobStatus, NeedMap]], now: float) -> list[Ask]:
        """What to ask for now, from ``BlobStore.missing()`` (previews first)."""
        out = []
        for status, need in missing:
            if status.office == self.me:  # its own photos, still being stored by blo-pub
                continue
            root = status.ref.merkle_root
            last = self._asked.get(root)
            if last is not None:
                if status.held > last.held:  # chunks are coming: let them
                    last.held, last.at = status.held, now
                    continue
                if now - max(last.at, self._progress_at) < self.patience:
                    continue
            tries = 0 if last is None else last.tries + 1
            holder = status.office
            if tries % 2 and self.archive is not None and self.archive != self.me:
                holder = self.archive
            if holder == self.me:  # an archive asking: only the sender holds it
                holder = status.office
            self._asked[root] = _Asked(now, status.held, tries)
            out.append(Ask(holder, root, need))
        return out

    def forget(self, roots: Iterable[bytes]) -> None:
        """Drop what is known of blobs that are complete (or gone)."""
        for root in roots:
            self._asked.pop(root, None)


@dataclass
class Serving:
    """A holder's queue of chunks asked for, merged per blob, smallest blob first."""

    _pending: dict[bytes, set[int]] = field(default_factory=dict)
    _size: dict[bytes, int] = field(default_factory=dict)

    def asked(self, root: bytes, size: int, need: NeedMap) -> None:
        """Someone needs ``need`` of blob ``root`` (``size`` bytes): add it to the queue."""
        self._pending.setdefault(root, set()).update(need.missing())
        self._size[root] = size

    def requeue(self, root: bytes, size: int, indices: Iterable[int]) -> None:
        """Put back chunks taken but not sent (the link went as they were published)."""
        self._pending.setdefault(root, set()).update(indices)
        self._size[root] = size

    def take(self, budget: int) -> list[tuple[bytes, int]]:
        """Up to ``budget`` chunks to send now: previews (small blobs) before full images,
        each blob in index order."""
        out: list[tuple[bytes, int]] = []
        for root in sorted(self._pending, key=lambda r: self._size[r]):
            wanted = self._pending[root]
            while wanted and len(out) < budget:
                index = min(wanted)
                wanted.discard(index)
                out.append((root, index))
            if not wanted:
                del self._pending[root]
                del self._size[root]
            if len(out) >= budget:
                break
        return out

    def __len__(self) -> int:
        return sum(len(v) for v in self._pending.values())
