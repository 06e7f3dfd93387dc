"""A country's PKI folder: its root, its nodes, and the signed keyset.

Layout (private keys 0600, created exclusively, never overwritten)::

    DIR/root/ca.key        P-256 CA key: signs TLS certificates    (keep offline)
    DIR/root/ca.crt        the CA certificate brokers and tablets trust
    DIR/root/trust.key     Ed25519 root key: signs keysets          (keep offline)
    DIR/root/trust.pub     its public key, pinned by every receiver
    DIR/roots/CC.pub       pinned root keys of other countries (blo-certs import-root)
    DIR/roots/CC.crt       their CA certificates (and CC.keyset.msg, CC.crl.pem ...)
    DIR/trust/keyset.msg   the current signed keyset (the node registry)
    DIR/trust/revocation.msg  the current signed revocation list
    DIR/trust/crl.pem      X.509 CRL of revoked and replaced tablets' certificates
    DIR/nodes/NODE/        sign.key, tls.key, tls.crt of one node; seal.key, its X25519
                           encryption key (seal.ID.key: rotated-out ones, still opened)
    DIR/bundles/NODE.json  the node's enrolment bundle
    DIR/servers/NAME/      tls.key, tls.crt of a broker

The keyset on disk is the registry: every operation reads it, verifies it
with the root, and writes the next version. ``now`` is an argument throughout.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from certs import folder
from certs.bundle import EnrolmentBundle
from certs.errors import PkiExistsError, PkiInputError, PkiMissingError
from certs.files import read_bytes, write_new, write_replace
from certs.x509 import issue_client, issue_server, new_ca, new_tls_key, pem_cert, pem_key
from schemas import (
    KeyEntry,
    Keyset,
    NodeEntry,
    Revocation,
    RevokedKey,
    Role,
    Scope,
    Signer,
    TrustStore,
    country_of,
    key_id_of,
    open_envelope,
    seal,
)
from schemas.ids import is_country, is_node_id, is_region
from schemas.seal import seal_key_id

__all__ = ["KEYSET_DAYS", "NodeSpec", "Pki"]

#: How long a keyset stays fresh; receivers warn after that.
KEYSET_DAYS = 90


def _pem_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem_private(key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class NodeSpec(NamedTuple):
    """A node to issue: id, role, border regions, cross-border counterparts."""

    node: str
    role: Role
    regions: tuple[str, ...] = ()
    counterparts: tuple[str, ...] = ()


class Pki:
    """Operations on one country's PKI folder."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    # -- paths and loading -------------------------------------------------------

    def _path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    @property
    def country(self) -> str:
        """The country this PKI belongs to (from its keyset)."""
        return self.keyset().country

    def _load_private(self, path: Path) -> Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
        data = read_bytes(path, "run blo-certs init first, or point --dir at the PKI folder")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise PkiMissingError(f"{path} is not a readable private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise PkiMissingError(f"{path} holds an unexpected kind of key")
        return key

    def _root_signer(self, country: str) -> Signer:
        key = self._load_private(self._path("root", "trust.key"))
        assert isinstance(key, Ed25519PrivateKey)
        return Signer(country, key)

    def _ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = self._load_private(self._path("root", "ca.key"))
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        cert_path = self._path("root", "ca.crt")
        cert = x509.load_pem_x509_certificate(read_bytes(cert_path, "run blo-certs init first"))
        return key, cert

    def roots(self) -> dict[str, list[bytes]]:
        """Pinned root public keys: this country's and any imported ones."""
        return folder.roots(self.dir)

    def _own_country(self) -> str:
        return folder.own_country(self.dir)

    def trust_messages(self) -> list[bytes]:
        """The signed keyset and revocation list of this country and of imported ones."""
        return folder.trust_messages(self.dir)

    def trust_store(self, now: datetime) -> TrustStore:
        """A verified trust store over this folder's roots and trust messages."""
        return folder.trust_store(self.dir, now)

    def keyset(self) -> Keyset:
        """The current keyset of this country, verified against its root."""
        data = read_bytes(self._path("trust", "keyset.msg"), "run blo-certs init first")
        sealed = open_envelope(data)
        pub = Ed25519PublicKey.from_public_bytes(self.roots()[self._own_country()][0])
        if not sealed.verify(pub):
            raise PkiMissingError(f"{self._path('trust', 'keyset.msg')} fails its root signature")
        body = sealed.decode_body()
        assert isinstance(body, Keyset)
        return body

    def revocation(self) -> Revocation | None:
        """The current revocation list, if one was written."""
        path = self._path("trust", "revocation.msg")
        if not path.exists():
            return None
        body = open_envelope(path.read_bytes()).decode_body()
        assert isinstance(body, Revocation)
        return body

    # -- writing the registry ------------------------------------------------------

    def _publish(
        self,
        country: str,
        nodes: Iterable[NodeEntry],
        revoked: Iterable[RevokedKey],
        version: int,
        now: datetime,
    ) -> Keyset:
        signer = self._root_signer(country)
        keyset = Keyset(
            country=country,
            version=version,
            issued=now,
            expires=now + timedelta(days=KEYSET_DAYS),
            nodes=tuple(sorted(nodes, key=lambda n: n.node)),
        )
        revocation = Revocation(
            country=country, version=version, issued=now, revoked=tuple(revoked)
        )
        scope = Scope.country(country)
        for body, name in ((keyset, "keyset.msg"), (revocation, "revocation.msg")):
            wire = seal(signer, body, seq=version, scope=scope, issued=now, expires=keyset.expires)
            write_replace(self._path("trust", name), wire)
        self._write_crl(keyset, now)
        return keyset

    def _write_crl(self, keyset: Keyset, now: datetime) -> None:
        """An X.509 CRL of every TLS certificate of a revoked or replaced node.

        TLS-only brokers such as Mosquitto cannot read the keyset; the CRL
        tells them which certificates to refuse.
        """
        ca_key, ca_cert = self._ca()
        nodes = self._path("nodes")
        revoked = [p / "tls.crt" for p in nodes.glob("*.replaced-*")]
        revoked += [nodes / n.node / "tls.crt" for n in keyset.nodes if n.revoked is not None]
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - timedelta(minutes=5))
            .next_update(now + timedelta(days=KEYSET_DAYS))
        )
        for path in revoked:
            if path.exists():
                serial = x509.load_pem_x509_certificate(path.read_bytes()).serial_number
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(serial)
                    .revocation_date(now - timedelta(minutes=5))
                    .build()
                )
        crl = builder.sign(ca_key, hashes.SHA256())
        write_replace(self._path("trust", "crl.pem"), crl.public_bytes(serialization.Encoding.PEM))

    def init(self, country: str, hq: str, now: datetime, *, days: int = 3650) -> NodeEntry:
        """Create the country root and the HQ node's identity."""
        if not is_country(country):
            raise PkiInputError(f"country {country!r} is not a two-letter code such as kh")
        if not is_node_id(hq) or country_of(hq) != country:
            raise PkiInputError(f"HQ node {hq!r} must look like {country}-nacd")
        if self._path("root").exists():
            raise PkiExistsError(f"{self._path('root')} already exists: this folder has a root")
        ca_key = new_tls_key()
        trust_key = Ed25519PrivateKey.generate()
        write_new(self._path("root", "ca.key"), pem_key(ca_key), secret=True)
        write_new(self._path("root", "trust.key"), _pem_private(trust_key), secret=True)
        write_new(self._path("root", "ca.crt"), pem_cert(new_ca(country, ca_key, now, days)))
        write_new(self._path("root", "trust.pub"), _pem_public(trust_key.public_key()))
        write_new(self._path("root", "country"), country.encode() + b"\n")
        self._publish(country, [], [], 1, now)
        return self.issue(hq, Role.HQ, now)

    def issue(
        self,
        node: str,
        role: Role,
        now: datetime,
        *,
        regions: Iterable[str] = (),
        counterparts: Iterable[str] = (),
        days: int = 730,
        replace: bool = False,
    ) -> NodeEntry:
        """Issue a node's keys and certificate, publish the next keyset, write its bundle."""
        return self.issue_many(
            [NodeSpec(node, role, tuple(regions), tuple(counterparts))],
            now,
            days=days,
            replace=replace,
        )[0]

    def issue_many(
        self,
        specs: Iterable[NodeSpec],
        now: datetime,
        *,
        days: int = 730,
        replace: bool = False,
        bundles: bool = True,
    ) -> list[NodeEntry]:
        """Issue several nodes under one new keyset version (enrolling a fleet at once).

        With ``bundles=False`` only the key and certificate files are written
        (pki/nodes/NODE/); ``write_bundle`` makes a bundle later.
        """
        keyset = self.keyset()
        revocation = self.revocation()
        revoked = list(revocation.revoked) if revocation else []
        nodes = {n.node: n for n in keyset.nodes}
        issued = []
        for spec in specs:
            entry = self._issue_one(spec, keyset.country, nodes, revoked, now, days, replace)
            nodes[entry.node] = entry
            issued.append(entry)
        self._publish(keyset.country, nodes.values(), revoked, keyset.version + 1, now)
        if bundles:
            for entry in issued:
                self.write_bundle(entry.node)
        return issued

    def _issue_one(
        self,
        spec: NodeSpec,
        country: str,
        nodes: dict[str, NodeEntry],
        revoked: list[RevokedKey],
        now: datetime,
        days: int,
        replace: bool,
    ) -> NodeEntry:
        node, role, regions, counterparts = spec
        if not is_node_id(node) or country_of(node) != country:
            raise PkiInputError(
                f"node {node!r} must be a {country}- id such as {country}-blo-bavet "
                f"(this PKI is {country}'s)"
            )
        for bad in [r for r in regions if not is_region(r)]:
            raise PkiInputError(f"region {bad!r} is not a lower-case name such as kh-vn-bavet")
        for bad in [c for c in counterparts if not is_node_id(c) or c == node]:
            raise PkiInputError(f"counterpart {bad!r} is not another node id")
        held = nodes.get(node)
        node_dir = self._path("nodes", node)
        if held is not None or node_dir.exists():
            if not replace:
                raise PkiExistsError(
                    f"{node} is already issued ({node_dir}); use 'rotate' for a new signing "
                    "key or 'issue --replace' for a replacement tablet"
                )
            # The old tablet's keys stay revoked for good; its files are kept aside.
            done = {r.key_id for r in revoked if r.node == node}
            for key in (*held.keys, *held.seal_keys) if held else ():
                if key.key_id not in done:
                    revoked.append(
                        RevokedKey(node=node, key_id=key.key_id, at=now, reason="replaced")
                    )
            if node_dir.exists():
                shutil.move(node_dir, node_dir.with_name(f"{node}.replaced-{int(now.timestamp())}"))
        sign_key = Ed25519PrivateKey.generate()
        tls_key = new_tls_key()
        ca_key, ca_cert = self._ca()
        cert = issue_client(ca_key, ca_cert, node, tls_key, now, days)
        write_new(node_dir / "sign.key", _pem_private(sign_key), secret=True)
        write_new(node_dir / "tls.key", pem_key(tls_key), secret=True)
        write_new(node_dir / "tls.crt", pem_cert(cert))
        seal_entry = _new_seal_key(node_dir, now, days)
        public = sign_key.public_key().public_bytes_raw()
        return NodeEntry(
            node=node,
            role=role,
            regions=regions if held is None or regions else held.regions,
            counterparts=counterparts if held is None or counterparts else held.counterparts,
            keys=(
                KeyEntry(
                    key_id=key_id_of(public),
                    public_key=public,
                    not_before=now - timedelta(minutes=5),
                    not_after=now + timedelta(days=days),
                ),
            ),
            tls_cert_sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest(),
            seal_keys=(seal_entry,),
        )

    def rotate(
        self, node: str, now: datetime, *, overlap_days: int = 14, days: int = 730
    ) -> KeyEntry:
        """Give ``node`` a new signing key; the old one stays valid for ``overlap_days``."""
        keyset = self.keyset()
        held = keyset.node(node)
        if held is None or held.revoked is not None:
            raise PkiInputError(f"{node} is not an active node of this PKI; see 'blo-certs list'")
        node_dir = self._path("nodes", node)
        old = self._load_private(node_dir / "sign.key")
        assert isinstance(old, Ed25519PrivateKey)
        old_id = key_id_of(old.public_key().public_bytes_raw())
        new = Ed25519PrivateKey.generate()
        public = new.public_key().public_bytes_raw()
        write_new(node_dir / f"sign.{old_id.hex()}.key", _pem_private(old), secret=True)
        write_replace(node_dir / "sign.key", _pem_private(new), secret=True)
        cutoff = now + timedelta(days=overlap_days)
        kept = tuple(
            k.model_copy(update={"not_after": min(k.not_after, cutoff)})
            for k in held.keys
            if k.not_after > now
        )
        fresh = KeyEntry(
            key_id=key_id_of(public),
            public_key=public,
            not_before=now - timedelta(minutes=5),
            not_after=now + timedelta(days=days),
        )
        # The encryption key rotates with it: senders seal to the newest from now on,
        # and the old one stays in the bundle so what was sealed to it still opens.
        old_seal = node_dir / "seal.key"
        if old_seal.exists():
            old_key = _load_seal(old_seal)
            old_seal_id = seal_key_id(old_key.public_key().public_bytes_raw())
            write_new(node_dir / f"seal.{old_seal_id.hex()}.key", _pem_seal(old_key), secret=True)
            old_seal.unlink()
        kept_seal = tuple(
            k.model_copy(update={"not_after": min(k.not_after, cutoff)})
            for k in held.seal_keys
            if k.not_after > now
        )
        seal_entry = _new_seal_key(node_dir, now, days)
        entry = held.model_copy(
            update={"keys": (*kept, fresh)[-8:], "seal_keys": (*kept_seal, seal_entry)[-8:]}
        )
        revocation = self.revocation()
        others = [n for n in keyset.nodes if n.node != node]
        self._publish(
            keyset.country,
            [*others, entry],
            revocation.revoked if revocation else (),
            keyset.version + 1,
            now,
        )
        self.write_bundle(node)
        return fresh

    def refresh(self, now: datetime) -> Keyset:
        """Re-sign the current registry and revocation list as the next version, fresh.

        Trust messages expire (``KEYSET_DAYS``) so that a node cut off from newer
        ones shows "trust stale" instead of trusting an old list for ever; an
        operator re-signs before then even when nothing changed.
        """
        keyset = self.keyset()
        revocation = self.revocation()
        return self._publish(
            keyset.country,
            keyset.nodes,
            revocation.revoked if revocation else (),
            keyset.version + 1,
            now,
        )

    def revoke(
        self, node: str, now: datetime, *, reason: str = "", key_id: bytes | None = None
    ) -> Keyset:
        """Revoke every key of ``node`` (signing and encryption) and publish the next
        keyset and revocation list; with ``key_id``, only that one key."""
        keyset = self.keyset()
        held = keyset.node(node)
        if held is None:
            raise PkiInputError(f"{node} is not in keyset v{keyset.version}; see 'blo-certs list'")
        if key_id is not None:
            return self._revoke_key(keyset, held, key_id, now, reason)
        if held.revoked is not None:
            raise PkiInputError(f"{node} was already revoked at {held.revoked.isoformat()}")
        revocation = self.revocation()
        revoked = [
            *(revocation.revoked if revocation else ()),
            *(
                RevokedKey(node=node, key_id=k.key_id, at=now, reason=reason[:200])
                for k in (*held.keys, *held.seal_keys)
            ),
        ]
        entry = held.model_copy(update={"revoked": now})
        others = [n for n in keyset.nodes if n.node != node]
        return self._publish(keyset.country, [*others, entry], revoked, keyset.version + 1, now)

    def _revoke_key(
        self, keyset: Keyset, held: NodeEntry, key_id: bytes, now: datetime, reason: str
    ) -> Keyset:
        """Revoke one signing or encryption key of ``held``; the node stays."""
        if key_id not in {k.key_id for k in (*held.keys, *held.seal_keys)}:
            raise PkiInputError(f"{held.node} has no key {key_id.hex()}; see 'blo-certs list'")
        revocation = self.revocation()
        revoked = [*(revocation.revoked if revocation else ())]
        revoked.append(RevokedKey(node=held.node, key_id=key_id, at=now, reason=reason[:200]))
        return self._publish(keyset.country, keyset.nodes, revoked, keyset.version + 1, now)

    def import_root(self, other: Path) -> str:
        """Pin another country's root (from its PKI folder) so its nodes can be verified."""
        foreign = Pki(other)
        try:
            country = foreign._own_country()
        except UnicodeDecodeError:
            country = "?"
        # The name becomes part of a path under roots/: a forged folder must not steer it.
        if not is_country(country):
            raise PkiInputError(
                f"{other}/root/country holds {country[:20]!r}, not a two-letter country code: "
                "not a blo-certs PKI folder, nothing imported"
            )
        if country == self._own_country():
            raise PkiInputError(f"{other} is this country's own PKI ({country})")
        write_replace(
            self._path("roots", f"{country}.pub"), foreign._path("root", "trust.pub").read_bytes()
        )
        write_replace(
            self._path("roots", f"{country}.crt"), foreign._path("root", "ca.crt").read_bytes()
        )
        for name in ("keyset.msg", "revocation.msg", "crl.pem"):
            src = foreign._path("trust", name)
            if src.exists():
                write_replace(self._path("roots", f"{country}.{name}"), src.read_bytes())
        return country

    def server(self, name: str, hosts: list[str], now: datetime, *, days: int = 730) -> Path:
        """Issue a broker's TLS server certificate for ``hosts`` (plus loopback).

        Loopback is always included: the archive runs beside the broker and
        connects over 127.0.0.1.
        """
        hosts = list(dict.fromkeys([*hosts, "localhost", "127.0.0.1"]))
        if not is_region(name):
            raise PkiInputError(f"server name {name!r} must be lower-case letters, digits and -")
        ca_key, ca_cert = self._ca()
        key = new_tls_key()
        out = self._path("servers", name)
        write_new(out / "tls.key", pem_key(key), secret=True)
        write_new(
            out / "tls.crt", pem_cert(issue_server(ca_key, ca_cert, name, hosts, key, now, days))
        )
        return out

    def write_bundle(self, node: str) -> Path:
        """(Re)write ``node``'s enrolment bundle from its files and the current trust."""
        node_dir = self._path("nodes", node)
        entry = self.keyset().node(node)
        if entry is None:
            raise PkiInputError(f"{node} is not in the keyset")
        cas = [self._path("root", "ca.crt"), *sorted(self._path("roots").glob("*.crt"))]
        bundle = EnrolmentBundle(
            node=node,
            role=entry.role,
            sign_key=read_bytes(node_dir / "sign.key", "issue the node first").decode(),
            tls_key=read_bytes(node_dir / "tls.key", "issue the node first").decode(),
            tls_cert=read_bytes(node_dir / "tls.crt", "issue the node first").decode(),
            seal_keys=_seal_keys(node_dir),
            ca_certs=tuple(p.read_text() for p in cas),
            roots={
                c: tuple(base64.b64encode(k).decode() for k in ks) for c, ks in self.roots().items()
            },
            trust=tuple(base64.b64encode(m).decode() for m in self.trust_messages()),
        )
        path = self._path("bundles", f"{node}.json")
        write_replace(path, bundle.dumps(), secret=True)
        return path


def _pem_seal(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_seal(path: Path) -> X25519PrivateKey:
    data = read_bytes(path, "issue the node first")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise PkiMissingError(f"{path} is not a readable private key: {exc}") from None
    if not isinstance(key, X25519PrivateKey):
        raise PkiMissingError(f"{path} is not an X25519 key")
    return key


def _new_seal_key(node_dir: Path, now: datetime, days: int) -> KeyEntry:
    """Draw a node's X25519 encryption key (its own, not derived from the signing key)."""
    key = X25519PrivateKey.generate()
    write_new(node_dir / "seal.key", _pem_seal(key), secret=True)
    public = key.public_key().public_bytes_raw()
    return KeyEntry(
        key_id=seal_key_id(public),
        public_key=public,
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=days),
    )


def _seal_keys(node_dir: Path) -> tuple[str, ...]:
    """The node's encryption keys for its bundle: the current one first, then rotated-out
    ones (what was sealed to them must still open). A node issued before sealing has none."""
    current = node_dir / "seal.key"
    older = sorted(node_dir.glob("seal.*.key"))
    return tuple(p.read_text() for p in ([current] if current.exists() else []) + older)
