"""The exception tree of the blo-alert library API.

Every error the library raises derives from one base, so a caller can catch
``BloError`` and know it has caught everything ours and nothing else::

    BloError
    ├── WireError            bytes that are not a valid blo-alert message
    │   ├── EncodeError      a message that cannot be put on the wire
    │   └── DecodeError      received bytes that cannot be read
    │       └── UnsupportedError  a newer format or coding than this reader knows
    ├── TrustError           keys, keysets and revocations
    │   └── RollbackError    a keyset older than the one already held
    └── CertsError           (in certs.errors) PKI files and enrolment bundles

Errors raised by msgpack, pydantic and cryptography are translated where the
library calls them (codec.py, envelope.py, truststore.py) and never escape
untranslated; tests/test_errors.py holds that line. The receiver core does not
raise at all for bad input: it returns ``Rejected`` with a ``Reason``.
"""

from __future__ import annotations

__all__ = [
    "BloError",
    "DecodeError",
    "EncodeError",
    "RollbackError",
    "TrustError",
    "UnsupportedError",
    "WireError",
]


class BloError(Exception):
    """Base of every error raised by blo-alert."""


class WireError(BloError):
    """Bytes or values that do not form a valid blo-alert message."""


class EncodeError(WireError):
    """A message cannot be encoded (too large, or a value the wire cannot carry)."""


class DecodeError(WireError):
    """Received bytes cannot be decoded; ``path`` names the offending field."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class UnsupportedError(DecodeError):
    """Bytes in a format version or body coding this reader does not know: upgrade it."""


class TrustError(BloError):
    """A key, keyset or revocation list cannot be trusted or applied."""


class RollbackError(TrustError):
    """A keyset or revocation list is older than the one already held."""
