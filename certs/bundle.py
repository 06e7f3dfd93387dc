"""The enrolment bundle: one file holding everything a tablet needs but the broker address.

Copying this one file (0600) onto a tablet enrols it: its Ed25519 signing key,
its X25519 encryption keys, its TLS key and certificate, the CA certificates
that vouch for the broker, the pinned root keys of every country it must
verify, and the keysets current at enrolment (newer ones arrive over MQTT, retained).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import BaseModel, ConfigDict, ValidationError

from certs.errors import BundleError
from schemas import (
    DecodeError,
    NodeId,
    Receiver,
    Rejected,
    Role,
    Signer,
    TrustError,
    TrustStore,
    open_envelope,
    trust_topic,
)
from schemas.seal import Opener

__all__ = ["BUNDLE_FORMAT", "EnrolmentBundle", "load_trust"]

BUNDLE_FORMAT: Literal["blo-enrolment/1"] = "blo-enrolment/1"


class EnrolmentBundle(BaseModel):
    """Everything one node needs to join the network."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["blo-enrolment/1"] = BUNDLE_FORMAT
    node: NodeId
    role: Role
    sign_key: str
    tls_key: str
    tls_cert: str
    ca_certs: tuple[str, ...]
    #: country -> raw Ed25519 root public keys, base64
    roots: dict[str, tuple[str, ...]]
    #: signed trust messages (keysets, revocation lists), base64
    trust: tuple[str, ...]
    #: the node's X25519 encryption keys (PEM), current first, then rotated-out ones
    seal_keys: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: Path) -> EnrolmentBundle:
        """Read a bundle file. Raises ``BundleError`` naming the file."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise BundleError(
                f"{path} not found: copy the node's bundle from the PKI folder (bundles/NODE.json)"
            ) from None
        except IsADirectoryError:
            raise BundleError(
                f"{path} is a folder: give the bundle file itself (bundles/NODE.json)"
            ) from None
        except OSError as exc:
            raise BundleError(f"{path}: {exc.strerror or exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BundleError(
                f"{path} is not an enrolment bundle: {where}: {first['msg']}"
            ) from None

    def dumps(self) -> bytes:
        """The bundle as JSON bytes."""
        return json.dumps(self.model_dump(mode="json"), indent=1).encode()

    def write_tls(self, folder: Path) -> tuple[Path, Path, Path]:
        """Write the CA, certificate and key (0600) for TLS libraries that need files.

        Returns (ca, cert, key). ``folder`` is created 0700.
        """
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca, cert, key = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
        ca.write_text("".join(self.ca_certs))
        cert.write_text(self.tls_cert)
        key.touch(mode=0o600)
        os.chmod(key, 0o600)
        key.write_text(self.tls_key)
        return ca, cert, key

    def tls_context(self) -> ssl.SSLContext:
        """A TLS client context with this node's certificate and key and the bundle's CAs.

        The private key never stays on disk: Python's ``ssl`` loads a certificate
        chain only from a path, so the key is written to an anonymous memory file
        (Linux ``memfd``) or, elsewhere, to a 0600 file in a private folder that is
        removed as soon as it is loaded. Raises ``BundleError`` for a corrupt
        certificate or key.
        """
        try:
            context = ssl.create_default_context(cadata="".join(self.ca_certs))
        except (ssl.SSLError, ValueError) as exc:
            raise BundleError(
                f"bundle of {self.node}: a CA certificate is unreadable ({exc}): "
                "re-issue the bundle with blo-certs"
            ) from None
        try:
            with _secret_file(self.tls_cert + self.tls_key) as path:
                context.load_cert_chain(path)
        except (ssl.SSLError, ValueError) as exc:
            raise BundleError(
                f"bundle of {self.node}: its TLS certificate or key is unreadable ({exc}): "
                "re-issue the bundle with blo-certs"
            ) from None
        return context

    def signer(self) -> Signer:
        """The node's message signer."""
        try:
            key = serialization.load_pem_private_key(self.sign_key.encode(), password=None)
        except ValueError as exc:
            raise BundleError(f"bundle of {self.node}: signing key unreadable: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise BundleError(f"bundle of {self.node}: signing key is not Ed25519")
        return Signer(self.node, key)

    def opener(self) -> Opener:
        """The node's encryption keys, to open what was sealed for it."""
        keys = []
        for pem in self.seal_keys:
            try:
                key = serialization.load_pem_private_key(pem.encode(), password=None)
            except ValueError as exc:
                raise BundleError(
                    f"bundle of {self.node}: encryption key unreadable: {exc}"
                ) from None
            if not isinstance(key, X25519PrivateKey):
                raise BundleError(f"bundle of {self.node}: encryption key is not X25519")
            keys.append(key)
        return Opener.from_keys(self.node, keys)

    def trust_store(self, now: datetime) -> TrustStore:
        """A trust store with the pinned roots and the bundle's verified trust messages."""
        try:
            roots = {c: [base64.b64decode(k) for k in keys] for c, keys in self.roots.items()}
            messages = [base64.b64decode(m) for m in self.trust]
        except ValueError as exc:
            raise BundleError(f"bundle of {self.node}: bad base64: {exc}") from None
        try:
            return load_trust(roots, messages, now)
        except BundleError as exc:
            raise BundleError(f"bundle of {self.node}: {exc}") from None


@contextlib.contextmanager
def _secret_file(text: str) -> Iterator[str]:
    """A path to ``text`` that only this process can read, gone after the block."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("blo-tls", 0)
        try:
            data = text.encode()
            while data:
                data = data[os.write(fd, data) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="blo-tls-") as folder:  # created 0700
        path = os.path.join(folder, "chain.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(text)
        yield path


def load_trust(roots: dict[str, list[bytes]], messages: list[bytes], now: datetime) -> TrustStore:
    """A trust store pinned to ``roots`` with signed trust ``messages`` verified and applied."""
    try:
        store = TrustStore(roots)
    except TrustError as exc:
        raise BundleError(f"bad root key: {exc}") from None
    receiver = Receiver(store)
    for data in messages:
        try:
            header = open_envelope(data).header
        except DecodeError as exc:
            raise BundleError(f"bad trust message: {exc}") from None
        result = receiver.receive(trust_topic(header.kind, header.sender), data, now)
        if isinstance(result, Rejected) and not result.reason.benign:
            raise BundleError(str(result))
    return store
