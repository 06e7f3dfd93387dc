"""docs/vectors/*.json checked against the code both ways (docs/wire.md).

Encoding each valid vector's inputs with its fixed seed, message id, epoch and
times gives exactly its bytes; decoding them gives its inputs back; decoding each
malformed vector is refused at the named stage with the named error.

Regenerate (only when the wire format deliberately changes)::

    python tests/test_wire_vectors.py --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas import (
    Crime,
    DecodeError,
    Incident,
    Kind,
    Position,
    Receipt,
    ReceiptStatus,
    Scope,
    Signer,
    UnsupportedError,
    draft_from_document,
    open_envelope,
    pack,
    seal,
)
from schemas.compression import dictionary
from schemas.envelope import BODY_TYPES
from schemas.textcode import encode_text

HERE = Path(__file__).resolve().parent
VECTORS = HERE.parent / "docs" / "vectors"
FILES = ("valid", "malformed", "text", "dictionary_v1")
REFERENCE = HERE.parent / "bench" / "fixtures" / "reference-alert.json"
SEED = bytes(range(32))  # 00 01 02 ... 1f: a published key, for vectors only
EPOCH = 2**62 + 12345
ICT = timezone(timedelta(hours=7))
ISSUED = datetime(2026, 6, 20, 9, 12, tzinfo=ICT)
ERRORS = {"DecodeError": DecodeError, "UnsupportedError": UnsupportedError}


def _signer(sender: str) -> Signer:
    return Signer(sender, Ed25519PrivateKey.from_private_bytes(SEED))


def _bodies() -> list[tuple[str, str, Any, Scope, int]]:
    doc = json.loads(REFERENCE.read_text("utf-8"))
    doc.pop("_about")
    doc["scope"] = "country:kh"  # an HQ alerts its own country
    draft = draft_from_document(doc)
    incident = Incident(
        crime=Crime.DRUG_TRAFFICKING,
        occurred=datetime(2026, 6, 20, 5, 40, tzinfo=ICT),
        position=Position(lat=11.0812, lon=106.1798, accuracy_m=15),
        place="Bavet",
    )
    receipt = Receipt(of=bytes(range(16)), status=ReceiptStatus.READ, at=ISSUED)
    return [
        ("alert-reference", "kh-nacd", draft.body, draft.scope, 7),
        ("incident-small", "kh-blo-bavet", incident, Scope.country("kh"), 1),
        ("receipt", "kh-blo-bavet", receipt, Scope.node("kh-nacd"), 2),
    ]


def _msg_id(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()[:16]


def valid_vectors() -> list[dict[str, Any]]:
    """The valid vectors, built deterministically from fixed inputs."""
    out = []
    for name, sender, body, scope, seq in _bodies():
        signer = _signer(sender)
        expires = ISSUED + timedelta(days=7)
        wire = seal(
            signer,
            body,
            seq=seq,
            scope=scope,
            issued=ISSUED,
            expires=expires,
            msg_id=_msg_id(name),
            epoch=EPOCH,
        )
        sealed = open_envelope(wire)
        out.append(
            {
                "name": name,
                "seed_hex": SEED.hex(),
                "public_key_hex": signer.public_key.hex(),
                "key_id_hex": signer.key_id.hex(),
                "kind": sealed.header.kind.label,
                "sender": sender,
                "epoch": EPOCH,
                "seq": seq,
                "issued": ISSUED.isoformat(),
                "expires": expires.isoformat(),
                "msg_id_hex": _msg_id(name).hex(),
                "scope": str(scope),
                "body": body.model_dump(mode="json", exclude_defaults=True),
                "body_msgpack_hex": pack(body).hex(),
                "coding": sealed.header.coding,
                "body_coded_hex": sealed.body.hex(),
                "signed_hex": sealed.signed.hex(),
                "signature_hex": sealed.signature.hex(),
                "wire_hex": wire.hex(),
            }
        )
    return out


def _resigned(fields: list[Any]) -> str:
    """A header array packed and signed with the vector key, so only the named fault
    is wrong (a reader checking the signature first still reaches it)."""
    signed = msgpack.packb(fields, use_bin_type=True)
    return (signed + _signer("x").private_key.sign(signed)).hex()


def _bad_window(vector: dict[str, Any]) -> str:
    """The incident vector with its place coded in text window 9, which does not exist."""
    fields = list(msgpack.unpackb(bytes.fromhex(vector["signed_hex"]), raw=False))
    body = msgpack.unpackb(bytes.fromhex(vector["body_msgpack_hex"]), raw=False)
    body[3] = msgpack.ExtType(1, b"\x09abc")
    fields[11], fields[12] = 0, msgpack.packb(body, use_bin_type=True)
    return _resigned(fields)


def malformed_vectors(base: dict[str, Any], incident: dict[str, Any]) -> list[dict[str, Any]]:
    """Malformed envelopes derived from the receipt vector (and one from the incident's),
    each with the stage that refuses it and its error."""
    fields = list(msgpack.unpackb(bytes.fromhex(base["signed_hex"]), raw=False, use_list=True))
    wire = bytes.fromhex(base["wire_hex"])

    def with_(index: int, value: Any, coding: int | None = None) -> str:
        copy = list(fields)
        copy[index] = value
        if coding is not None:
            copy[11] = coding
        return _resigned(copy)

    cases: list[tuple[str, str, str, str, str]] = [
        ("too-short", wire[:64].hex(), "open", "DecodeError", "too short"),
        ("not-an-array", _resigned(7), "open", "DecodeError", "not an envelope"),  # type: ignore[arg-type]
        ("version-newer", with_(0, 3), "open", "UnsupportedError", "newer than this reader"),
        ("version-older", with_(0, 1), "open", "UnsupportedError", "no longer read"),
        ("twelve-fields", _resigned(fields[:12]), "open", "DecodeError", "expected 13"),
        ("unknown-kind", with_(1, 99), "open", "DecodeError", "unknown message kind"),
        ("bad-sender", with_(2, "KH NACD"), "open", "DecodeError", "malformed sender"),
        ("short-key-id", with_(3, b"\x00" * 7), "open", "DecodeError", "key id must be 8"),
        ("epoch-zero", with_(4, 0), "open", "DecodeError", "epoch 0 is out of range"),
        ("seq-zero", with_(5, 0), "open", "DecodeError", "sequence number 0"),
        ("tz-out-of-range", with_(7, 61), "open", "DecodeError", "UTC offset 61"),
        ("expires-first", with_(8, fields[6] - 1), "open", "DecodeError", "expires before"),
        ("bad-scope", with_(10, "planet:earth"), "open", "DecodeError", "header.scope"),
        ("seq-as-str", with_(5, "1"), "open", "DecodeError", "expected int"),
        (
            "trailing-byte",
            (bytes.fromhex(base["signed_hex"]) + b"\xc0" + wire[-64:]).hex(),
            "open",
            "DecodeError",
            "trailing bytes",
        ),
        ("bad-signature", (wire[:-1] + bytes([wire[-1] ^ 1])).hex(), "verify", "", ""),
        ("unknown-coding", with_(11, 7), "body", "UnsupportedError", "unknown body coding 7"),
        ("bad-deflate", with_(11, 1), "body", "DecodeError", "not valid DEFLATE"),
        (
            "receipt-field-missing",
            with_(12, msgpack.packb([bytes(range(16))], use_bin_type=True), coding=0),
            "body",
            "DecodeError",
            "Receipt needs 3",
        ),
        ("unknown-text-window", _bad_window(incident), "body", "DecodeError", "text window 9"),
    ]
    return [
        {"name": n, "wire_hex": h, "stage": stage, "error": err, "message_contains": text}
        for n, h, stage, err, text in cases
    ]


def text_vectors() -> list[dict[str, Any]]:
    """schemas/textcode.py: texts and their coded bytes (None: sent as plain UTF-8)."""
    texts = ["Bavet", "រឹបអូស ១.៩ គីឡូក្រាម", "ยาบ้า 2 ล้านเม็ด", "ຢາບ້າ", "Poipet → Bavet"]
    return [
        {"text": t, "coded_hex": None if (c := encode_text(t)) is None else c.hex()} for t in texts
    ]


def all_vectors() -> dict[str, Any]:
    valid = valid_vectors()
    zdict = dictionary(1)
    return {
        "valid": valid,
        "malformed": malformed_vectors(valid[2], valid[1]),
        "text": text_vectors(),
        "dictionary_v1": {"length": len(zdict), "sha256_hex": hashlib.sha256(zdict).hexdigest()},
    }


def _load(name: str) -> Any:
    path = VECTORS / f"{name}.json"
    # (Empty only while --write creates them: a test of a missing file then fails.)
    return json.loads(path.read_text("utf-8")) if path.exists() else []


@pytest.mark.parametrize("name", FILES)
def test_the_code_gives_the_kept_vectors(name: str) -> None:
    """Encoding: the code's bytes for the fixed inputs are the kept bytes."""
    assert all_vectors()[name] == _load(name)


@pytest.mark.parametrize("vector", _load("valid"), ids=lambda v: v["name"])
def test_each_valid_vector_decodes_to_its_inputs(vector: dict[str, Any]) -> None:
    sealed = open_envelope(bytes.fromhex(vector["wire_hex"]))
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["seed_hex"])).public_key()
    assert sealed.verify(key)
    header = sealed.header
    assert header.kind.label == vector["kind"]
    assert (header.sender, header.epoch, header.seq) == (
        vector["sender"],
        vector["epoch"],
        vector["seq"],
    )
    assert header.issued.isoformat() == vector["issued"]
    assert header.msg_id.hex() == vector["msg_id_hex"]
    assert header.key_id.hex() == vector["key_id_hex"]
    assert str(header.scope) == vector["scope"]
    body = sealed.decode_body()
    assert body.model_dump(mode="json", exclude_defaults=True) == vector["body"]
    assert BODY_TYPES[header.kind] is type(body)
    assert pack(body).hex() == vector["body_msgpack_hex"]


@pytest.mark.parametrize("vector", _load("malformed"), ids=lambda v: v["name"])
def test_each_malformed_vector_is_refused_as_named(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["wire_hex"])
    key = _signer("x").private_key.public_key()
    if vector["stage"] == "open":
        with pytest.raises(ERRORS[vector["error"]], match=vector["message_contains"]):
            open_envelope(data)
        return
    sealed = open_envelope(data)
    if vector["stage"] == "verify":
        assert not sealed.verify(key)
        return
    assert sealed.verify(key)
    with pytest.raises(ERRORS[vector["error"]], match=vector["message_contains"]):
        sealed.decode_body()


def test_kinds_in_the_vectors_are_the_codes_in_the_spec() -> None:
    kept = json.loads((VECTORS / "kinds.json").read_text("utf-8"))
    assert kept == {k.label: int(k) for k in Kind}


if __name__ == "__main__" and "--write" in sys.argv:
    VECTORS.mkdir(parents=True, exist_ok=True)
    for key, value in all_vectors().items():
        (VECTORS / f"{key}.json").write_text(json.dumps(value, ensure_ascii=False, indent=1) + "\n")
    (VECTORS / "kinds.json").write_text(
        json.dumps({k.label: int(k) for k in Kind}, indent=1) + "\n"
    )
    print(f"wrote {VECTORS}", file=sys.stderr)
