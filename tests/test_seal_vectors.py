"""The sealed-bulletin vector of docs/wire.md section 7 (docs/vectors/sealed.json).

HPKE draws a fresh ephemeral key and the content key is random, so a writer cannot
reproduce the bytes; the vector is for readers: it must verify, its context and
``info`` must be rebuilt byte for byte, and the recipient's key must open it to
the body given. ``python tests/test_seal_vectors.py --write`` makes a new one
(only for a deliberate format change).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas import Bulletin, Scope, Signer, open_envelope, seal
from schemas.seal import (
    Opener,
    RecipientKey,
    SealedBody,
    _commit,
    _unwrap,
    seal_info,
    seal_key_id,
)

VECTOR = Path(__file__).resolve().parents[1] / "docs" / "vectors" / "sealed.json"
SIGN_SEED = bytes(range(32))  # public: signs vectors, never messages
SEAL_SEED = bytes(range(32, 64))  # the recipient's X25519 private key, public too
BODY: dict[str, Any] = {
    "category": "drug_trafficking",
    "text": {
        "en": {"headline": "White van crossed at Bavet 21:10", "body": "Check at Moc Bai."},
        "km": {"headline": "រថយន្តវ៉ានពណ៌សឆ្លងកាត់បាវិត"},
    },
}


def _write() -> None:
    signer = Signer("kh-blo-bavet", Ed25519PrivateKey.from_private_bytes(SIGN_SEED))
    key = X25519PrivateKey.from_private_bytes(SEAL_SEED)
    public = key.public_key().public_bytes_raw()
    recipient = RecipientKey("vn-blo-mocbai", seal_key_id(public), public)
    issued = datetime.fromisoformat("2026-06-20T21:40:00+07:00")
    expires = datetime.fromisoformat("2026-06-27T21:40:00+07:00")
    wire = seal(
        signer,
        Bulletin.model_validate_json(json.dumps(BODY)),
        seq=3,
        scope=Scope.parse("bulletin:vn-blo-mocbai"),
        issued=issued,
        expires=expires,
        msg_id=bytes.fromhex("5e1ed0b0" * 4),
        epoch=2**62 + 12345,
        seal_for=[recipient],
    )
    sealed = open_envelope(wire)
    body = sealed.decode_body()
    assert isinstance(body, SealedBody)
    context = sealed.seal_context()
    info = seal_info(context, [(r.node, r.key_id) for r in body.recipients])
    cek = _unwrap(body.recipients[0].wrap, key, info)
    assert cek is not None
    vector = {
        "name": "bulletin-sealed",
        "sign_seed_hex": SIGN_SEED.hex(),
        "sign_public_key_hex": signer.public_key.hex(),
        "recipient": "vn-blo-mocbai",
        "seal_private_key_hex": SEAL_SEED.hex(),
        "seal_public_key_hex": public.hex(),
        "seal_key_id_hex": recipient.key_id.hex(),
        "body": BODY,
        "context_hex": context.hex(),
        "info_hex": info.hex(),
        "content_key_hex": cek.hex(),
        "commit_hex": body.commit.hex(),
        "inner_coding": None,
        "wire_hex": wire.hex(),
    }
    opened = Opener.from_keys("vn-blo-mocbai", [key]).open(body, context)
    vector["inner_coding"] = getattr(opened, "coding", None)
    VECTOR.write_text(json.dumps([vector], ensure_ascii=False, indent=1) + "\n")


def test_the_sealed_vector_verifies_and_opens() -> None:
    (v,) = json.loads(VECTOR.read_text("utf-8"))
    wire = bytes.fromhex(v["wire_hex"])
    sealed = open_envelope(wire)
    assert sealed.is_sealed
    assert sealed.verify(
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(v["sign_public_key_hex"]))
    )
    body = sealed.decode_body()
    assert isinstance(body, SealedBody)
    assert body.nodes == [v["recipient"]]
    assert body.recipients[0].key_id.hex() == v["seal_key_id_hex"]
    # The context and info are rebuilt from the parsed header, byte for byte.
    assert sealed.seal_context().hex() == v["context_hex"]
    info = seal_info(sealed.seal_context(), [(r.node, r.key_id) for r in body.recipients])
    assert info.hex() == v["info_hex"]
    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(v["seal_private_key_hex"]))
    cek = _unwrap(body.recipients[0].wrap, key, info)
    assert cek is not None
    assert cek.hex() == v["content_key_hex"]
    assert _commit(cek).hex() == v["commit_hex"] == body.commit.hex()
    opened = sealed.open_body(Opener.from_keys(v["recipient"], [key]))
    assert opened == Bulletin.model_validate_json(json.dumps(v["body"]))
    # Without the key, nobody reads it: not the archive, not another office.
    assert sealed.open_body(Opener.from_keys("kh-archive", [])) != opened


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        _write()
        print(f"wrote {VECTOR}")
