"""Reading a PKI folder's public trust data: pinned roots, keysets, revocation lists.

Kept apart from pki.py (which issues keys and certificates with
cryptography's X.509 builders) so that a broker, which only reads, does not
load them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from certs.bundle import load_trust
from certs.errors import PkiMissingError
from certs.files import read_bytes
from schemas import TrustStore

__all__ = ["own_country", "roots", "trust_messages", "trust_store"]


def own_country(directory: Path) -> str:
    """The country whose root this folder holds."""
    return read_bytes(directory / "root" / "country", "run blo-certs init first").decode().strip()


def roots(directory: Path) -> dict[str, list[bytes]]:
    """Pinned root public keys: this country's and any imported ones."""
    found: dict[str, list[bytes]] = {}
    own = directory / "root" / "trust.pub"
    for path in [own, *sorted((directory / "roots").glob("*.pub"))]:
        key = serialization.load_pem_public_key(read_bytes(path, "run blo-certs init first"))
        if not isinstance(key, Ed25519PublicKey):
            raise PkiMissingError(f"{path} is not an Ed25519 public key")
        country = own_country(directory) if path == own else path.stem
        found.setdefault(country, []).append(key.public_bytes_raw())
    return found


def trust_messages(directory: Path) -> list[bytes]:
    """The signed keyset and revocation list of this country and of imported ones."""
    paths = [directory / "trust" / "keyset.msg", directory / "trust" / "revocation.msg"]
    paths += sorted((directory / "roots").glob("*.msg"))
    return [p.read_bytes() for p in paths if p.exists()]


def trust_store(directory: Path, now: datetime) -> TrustStore:
    """A verified trust store over the folder's roots and trust messages."""
    return load_trust(roots(directory), trust_messages(directory), now)
