"""Wire size of the reference alert: blo-alert against JSON and CAP 1.2 XML.

    python bench/size.py [--json FILE] [--alert FILE]

Every format carries every field of the alert document. The signed formats
carry the same signature (Ed25519) and the same envelope facts (message id,
sequence number, key id). The table also breaks the blo-alert body down step
by step (positional msgpack, script-aware text, DEFLATE, shipped dictionary)
so each choice in docs/design.md is backed by a measurement, and repeats the
figures on a held-out alert the dictionary was not written from.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import msgpack
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from rich.console import Console
from rich.table import Table

from interchange.cap import cap_element as cap_xml
from schemas import Signer, draft_from_document, pack, seal
from schemas.codec import EXT_TEXT
from schemas.compression import dictionary
from schemas.textcode import decode_text

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "fixtures" / "reference-alert.json"
HELDOUT = HERE / "fixtures" / "heldout-alert.json"
DSIG = "http://www.w3.org/2000/09/xmldsig#"


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text("utf-8"))
    doc.pop("_about", None)
    return doc


def deflate(data: bytes, zdict: bytes | None = None) -> bytes:
    if zdict:
        engine = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=zdict)
    else:
        engine = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return engine.compress(data) + engine.flush()


def _utf8_only(value: Any) -> Any:
    """The codec's structure with script-coded text turned back into UTF-8 strings."""
    if isinstance(value, msgpack.ExtType) and value.code == EXT_TEXT:
        return decode_text(value.data)
    if isinstance(value, list):
        return [_utf8_only(v) for v in value]
    if isinstance(value, dict):
        return {k: _utf8_only(v) for k, v in value.items()}
    return value


# -- CAP 1.2 -------------------------------------------------------------------


def _self_signed(key: Ed25519PrivateKey, node: str) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=730))
        .sign(key, None)
    )
    return cert.public_bytes(serialization.Encoding.DER)


def cap_signed(root: ET.Element, key: Ed25519PrivateKey, cert_der: bytes) -> bytes:
    """An enveloped XML-DSig signature (Ed25519, SHA-256, the signer's X.509 certificate)."""
    ET.register_namespace("ds", DSIG)
    canonical = ET.canonicalize(ET.tostring(root, encoding="unicode")).encode()
    digest = base64.b64encode(hashlib.sha256(canonical).digest()).decode()

    def ds(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{DSIG}}}{tag}", attrs)
        el.text = text
        return el

    signature = ET.SubElement(root, f"{{{DSIG}}}Signature")
    info = ds(signature, "SignedInfo")
    ds(info, "CanonicalizationMethod", Algorithm="http://www.w3.org/2006/12/xml-c14n11")
    ds(info, "SignatureMethod", Algorithm="http://www.w3.org/2021/04/xmldsig-more#eddsa-ed25519")
    ref = ds(info, "Reference", URI="")
    transforms = ds(ref, "Transforms")
    ds(transforms, "Transform", Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature")
    ds(ref, "DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
    ds(ref, "DigestValue", digest)
    signed_info = ET.canonicalize(ET.tostring(info, encoding="unicode")).encode()
    ds(signature, "SignatureValue", base64.b64encode(key.sign(signed_info)).decode())
    key_info = ds(signature, "KeyInfo")
    data = ds(key_info, "X509Data")
    ds(data, "X509Certificate", base64.b64encode(cert_der).decode())
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


# -- measurement ----------------------------------------------------------------


def measure(doc: dict[str, Any]) -> dict[str, int]:
    """Byte counts of every format and of each step of the blo-alert body."""
    draft = draft_from_document(doc)
    key = Ed25519PrivateKey.generate()
    signer = Signer(draft.sender, key)
    msg_id = os.urandom(16)
    seq = 1234
    wire = seal(
        signer,
        draft.body,
        seq=seq,
        scope=draft.scope,
        issued=draft.issued,
        expires=draft.expires,
        msg_id=msg_id,
        # An outbox draws a random 63-bit epoch: measure the usual 9-byte one.
        epoch=2**62 + 12345,
    )
    body = pack(draft.body)
    plain = msgpack.unpackb(body, raw=False, strict_map_key=False)
    utf8_body = msgpack.packb(_utf8_only(plain), use_bin_type=True)

    signed_json = {
        **doc,
        "id": msg_id.hex(),
        "seq": seq,
        "key_id": signer.key_id.hex(),
    }
    payload = json.dumps(signed_json, ensure_ascii=False, separators=(",", ":")).encode()
    signed_json["sig"] = base64.b64encode(key.sign(payload)).decode()
    json_signed = json.dumps(signed_json, ensure_ascii=False, separators=(",", ":")).encode()

    xml_root = cap_xml(doc, msg_id.hex())
    xml = ET.tostring(xml_root, encoding="utf-8", xml_declaration=True)
    xml_signed = cap_signed(cap_xml(doc, msg_id.hex()), key, _self_signed(key, draft.sender))
    return {
        "blo_signed": len(wire),
        "json_signed": len(json_signed),
        "cap_xml": len(xml),
        "cap_xml_deflated": len(deflate(xml)),
        "cap_xml_signed": len(xml_signed),
        "body_msgpack_utf8": len(utf8_body),
        "body_msgpack_scripted": len(body),
        "body_deflate": len(deflate(body)),
        "body_deflate_dictionary": len(deflate(body, dictionary(1))),
        "body_utf8_deflate_dictionary": len(deflate(utf8_body, dictionary(1))),
        "envelope_overhead": len(wire) - min(len(body), len(deflate(body, dictionary(1)))),
    }


#: A counterpart bulletin of the usual size: a headline and a few lines, English and Khmer.
BULLETIN_DOC: dict[str, Any] = {
    "kind": "bulletin",
    "sender": "kh-blo-bavet",
    "scope": "bulletin:vn-blo-mocbai",
    "sent": "2026-06-20T21:40:00+07:00",
    "expires": "2026-06-27T21:40:00+07:00",
    "category": "drug_trafficking",
    "text": {
        "en": {
            "headline": "White van, plates 51D-482.17, crossed at Bavet 21:10 toward Moc Bai",
            "body": "Driver and one passenger. Check at the Moc Bai gate and report back.",
        },
        "km": {"headline": "រថយន្តវ៉ានពណ៌ស ឆ្លងកាត់បាវិត ម៉ោង ២១:១០ ទៅម៉ុកបៃ"},
    },
}


def measure_bulletin() -> dict[str, int]:
    """The same bulletin signed in clear and signed after sealing for its one counterpart
    (X25519 key of its own, HPKE-wrapped content key; schemas/seal.py)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from schemas.seal import RecipientKey, seal_key_id

    draft = draft_from_document(BULLETIN_DOC)
    signer = Signer(draft.sender, Ed25519PrivateKey.generate())
    public = X25519PrivateKey.generate().public_key().public_bytes_raw()
    recipient = RecipientKey("vn-blo-mocbai", seal_key_id(public), public)
    args: dict[str, Any] = {
        "seq": 1234,
        "scope": draft.scope,
        "issued": draft.issued,
        "expires": draft.expires,
        "epoch": 2**62 + 12345,
    }
    plain = seal(signer, draft.body, **args)
    sealed = seal(signer, draft.body, **args, seal_for=[recipient])
    return {"bulletin_plain": len(plain), "bulletin_sealed": len(sealed)}


ROWS = [
    ("blo_signed", "blo-alert signed envelope"),
    ("json_signed", "JSON + base64 Ed25519 sig"),
    ("cap_xml", "CAP 1.2 XML"),
    ("cap_xml_deflated", "CAP 1.2 XML, DEFLATE"),
    ("cap_xml_signed", "CAP 1.2 XML + XML-DSig"),
    ("body_msgpack_utf8", " body: msgpack, UTF-8"),
    ("body_msgpack_scripted", " body: + script text"),
    ("body_deflate", " body: + DEFLATE"),
    ("body_utf8_deflate_dictionary", " body: UTF-8 + DEFLATE/dict"),
    ("body_deflate_dictionary", " body: + DEFLATE/dict"),
    ("envelope_overhead", " header + signature"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--alert", type=Path, default=REFERENCE, help="the reference alert")
    args = parser.parse_args(argv)
    reference = measure(load(args.alert))
    heldout = measure(load(HELDOUT))
    table = Table(title="Wire size in bytes (goal: blo-alert signed <= 640)", title_justify="left")
    table.add_column("format")
    table.add_column("reference", justify="right")
    table.add_column("held-out", justify="right")
    for key, label in ROWS:
        table.add_row(label, f"{reference[key]:,}", f"{heldout[key]:,}")
    Console().print(table)
    bulletin = measure_bulletin()
    Console().print(
        f"bulletin to one counterpart: {bulletin['bulletin_plain']:,} bytes signed, "
        f"{bulletin['bulletin_sealed']:,} sealed and signed"
    )
    if args.json:
        keys = ("blo_signed", "json_signed", "cap_xml", "cap_xml_deflated", "cap_xml_signed")
        out = {
            "reference_alert": {k: reference[k] for k in keys},
            "reference_alert_breakdown": {k: v for k, v in reference.items() if k not in keys},
            "heldout_alert": heldout,
            "bulletin": bulletin,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0 if reference["blo_signed"] <= 640 else 1


if __name__ == "__main__":
    sys.exit(main())
