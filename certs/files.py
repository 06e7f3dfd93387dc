"""Careful file writing for key material: exclusive create, 0600 for secrets."""

from __future__ import annotations

import os
from pathlib import Path

from certs.errors import PkiExistsError, PkiMissingError

__all__ = ["read_bytes", "write_new", "write_replace"]


def write_new(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Create ``path`` with ``data``; refuse if it exists. Secrets are 0600 from birth."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o600 if secret else 0o644
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise PkiExistsError(
            f"{path} already exists; refusing to overwrite it (move it away first if you mean to)"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)  # the umask may have narrowed a public file further


def write_replace(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Atomically replace ``path`` (for public, versioned files such as the keyset)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    write_new(tmp, data, secret=secret)
    os.replace(tmp, path)


def read_bytes(path: Path, hint: str) -> bytes:
    """Read ``path``; if missing, say what to do (``hint``)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiMissingError(f"{path} is missing: {hint}") from None
    except OSError as exc:
        raise PkiMissingError(f"{path} cannot be read: {exc.strerror}") from None
