"""Bridge certificates: how one country's broker proves itself to a neighbour's.

A federated border is one TLS connection, dialed by one country's Mosquitto to
the other's (broker/federation.py). The dialing side presents a client
certificate its own CA issues here; the other side trusts that CA because it
imported this country's root (``blo-certs import-root``), and gives the
certificate's name exactly the topics the sharing rules let cross.

The name is ``bridge-CC-NN`` (this country, the neighbour): never a node id
(node ids are ``cc-...``), so no office certificate can be mistaken for a bridge
or a bridge for an office, and the name says which CA must have issued it.

Layout (the key 0600, created exclusively, never overwritten)::

    DIR/bridges/NN/tls.key    P-256 key of this country's bridge to NN
    DIR/bridges/NN/tls.crt    its certificate, from this country's CA
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.errors import PkiExistsError, PkiInputError, PkiMissingError
from certs.files import read_bytes, write_new
from certs.folder import own_country
from certs.x509 import new_tls_key, pem_cert, pem_key
from schemas.ids import is_country

__all__ = ["bridge_files", "bridge_name", "issue_bridge"]


def bridge_name(dialer: str, neighbour: str) -> str:
    """The certificate name (and MQTT user) of ``dialer``'s bridge to ``neighbour``."""
    return f"bridge-{dialer}-{neighbour}"


def bridge_files(pki: Path, neighbour: str) -> tuple[Path, Path]:
    """``(key, certificate)`` of this PKI's bridge to ``neighbour``."""
    folder = pki / "bridges" / neighbour
    return folder / "tls.key", folder / "tls.crt"


def issue_bridge(pki: Path, neighbour: str, now: datetime, *, days: int = 730) -> Path:
    """Issue this country's bridge certificate to ``neighbour``; returns its folder.

    Raises ``PkiInputError`` for a bad or own country code, ``PkiMissingError``
    when ``neighbour``'s root is not imported (its broker could not be checked
    by the bridge), ``PkiExistsError`` when the bridge is already issued.
    """
    country = own_country(pki)
    if not is_country(neighbour) or neighbour == country:
        raise PkiInputError(
            f"bridge to {neighbour!r}: give a neighbour's two-letter country code, "
            f"not this PKI's own ({country})"
        )
    if not (pki / "roots" / f"{neighbour}.crt").exists():
        raise PkiMissingError(
            f"{pki}/roots/{neighbour}.crt is missing: import {neighbour}'s root first "
            f"(blo-certs import-root --dir {pki} {neighbour.upper()}-PKI-FOLDER), so the "
            "bridge can check its broker"
        )
    key_path, cert_path = bridge_files(pki, neighbour)
    if key_path.exists() or cert_path.exists():
        raise PkiExistsError(
            f"{key_path.parent} already holds a bridge certificate to {neighbour}; "
            "move that folder aside to issue a new one"
        )
    hint = "run blo-certs init first"
    ca_key = serialization.load_pem_private_key(
        read_bytes(pki / "root" / "ca.key", hint), password=None
    )
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise PkiMissingError(f"{pki}/root/ca.key is not this PKI's P-256 CA key")
    ca_cert = x509.load_pem_x509_certificate(read_bytes(pki / "root" / "ca.crt", hint))
    key = new_tls_key()
    name = bridge_name(country, neighbour)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country.upper()),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "blo-alert"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        # A client certificate only: the bridge dials, it never serves.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_new(key_path, pem_key(key), secret=True)
    write_new(cert_path, pem_cert(cert))
    return key_path.parent
