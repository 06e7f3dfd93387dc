"""X.509 for the broker connection: a P-256 CA, client and server certificates.

TLS certificates use ECDSA P-256, not Ed25519: cryptography's X.509 path
verifier (and many TLS stacks) refuse Ed25519 chains. Message signatures stay
Ed25519; the TLS identity only gets a node onto the broker.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["issue_client", "issue_server", "new_ca", "new_tls_key", "pem_cert", "pem_key"]


def new_tls_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 PEM of a private key (unencrypted: the file is 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_cert(cert: x509.Certificate) -> bytes:
    """PEM of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common: str, country: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country.upper()),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "blo-alert"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def new_ca(
    country: str, key: ec.EllipticCurvePrivateKey, now: datetime, days: int
) -> x509.Certificate:
    """A self-signed CA certificate for ``country``'s root."""
    name = _name(f"blo-alert root {country}", country)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    sans: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    now: datetime,
    days: int,
) -> x509.Certificate:
    not_after = min(now + timedelta(days=days), ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def issue_client(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    node: str,
    key: ec.EllipticCurvePrivateKey,
    now: datetime,
    days: int,
) -> x509.Certificate:
    """A TLS client certificate with CN and SAN (DNS name) equal to the node id."""
    return _leaf(
        ca_key,
        ca_cert,
        _name(node, node[:2]),
        key.public_key(),
        [x509.DNSName(node)],
        ExtendedKeyUsageOID.CLIENT_AUTH,
        now,
        days,
    )


def issue_server(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    name: str,
    hosts: list[str],
    key: ec.EllipticCurvePrivateKey,
    now: datetime,
    days: int,
) -> x509.Certificate:
    """A TLS server certificate for the broker, valid for ``hosts`` (names or IPs)."""
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    country = ca_cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value
    return _leaf(
        ca_key,
        ca_cert,
        _name(name, str(country)),
        key.public_key(),
        sans,
        ExtendedKeyUsageOID.SERVER_AUTH,
        now,
        days,
    )
