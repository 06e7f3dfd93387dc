"""No error of msgpack, pydantic, zlib or cryptography escapes untranslated."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from netsim import Net, reference_alert, reference_document

import certs
import schemas
from schemas import BloError, Rejected, draft_from_document, open_envelope

TOPIC = "blo/all"


@pytest.fixture(scope="module")
def wire(net: Net) -> bytes:
    body, scope, issued, expires = reference_alert()
    return net.send("th-unodc-rbm", body, scope, issued=issued, expires=expires)


def _open_and_decode(data: bytes) -> None:
    # Ours is fine; anything else propagates and fails the test.
    with contextlib.suppress(BloError):
        open_envelope(data).decode_body()


@given(st.binary(max_size=800))
def test_random_bytes(data: bytes) -> None:
    _open_and_decode(data)


@given(st.data())
def test_mutated_envelopes(net: Net, wire: bytes, data: st.DataObject) -> None:
    mutated = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["set", "insert", "delete"]))
        at = data.draw(st.integers(0, len(mutated) - 1))
        if op == "set":
            mutated[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            mutated.insert(at, data.draw(st.integers(0, 255)))
        elif len(mutated) > 1:
            del mutated[at]
    _open_and_decode(bytes(mutated))
    # The receiver never raises: a bad message is a result, not an exception.
    result = net.receiver().receive(TOPIC, bytes(mutated), net.now)
    assert isinstance(result, Rejected) or bytes(mutated) == wire


@given(st.data())
def test_body_decoder_on_garbage_signed_validly(net: Net, data: st.DataObject) -> None:
    # Well-signed envelopes whose body is garbage: decode happens after verification.
    import msgpack

    from schemas.envelope import SIGNATURE_SIZE

    body, scope, issued, expires = reference_alert()
    good = net.send("th-unodc-rbm", body, scope, issued=issued, expires=expires)
    fields = list(msgpack.unpackb(good[:-SIGNATURE_SIZE], raw=False))
    fields[10] = data.draw(st.sampled_from([0, 1]))
    fields[11] = data.draw(st.binary(max_size=300))
    signed = msgpack.packb(fields, use_bin_type=True)
    wire = signed + net.signers["th-unodc-rbm"].private_key.sign(signed)
    result = net.receiver().receive(TOPIC, wire, net.now)
    assert isinstance(result, Rejected)
    assert result.reason.value in ("malformed", "unsupported")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"severity": "apocalyptic"}, "severity"),
        ({"incident": {"crime": "drug_trafficking"}}, "incident.occurred"),
        ({"sent": "yesterday"}, ""),
        ({"kind": "memo"}, "kind"),
        ({"scope": "everywhere"}, "scope"),
        ({"text": {"xx": {"headline": "x"}}}, "text"),
    ],
)
def test_bad_documents_are_decode_errors(change: dict[str, object], where: str) -> None:
    doc = {**reference_document(), **change}
    with pytest.raises(schemas.DecodeError) as info:
        draft_from_document(doc)
    assert where in str(info.value)


def test_every_public_error_derives_from_the_one_base() -> None:
    for module in (schemas, certs):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, Exception):
                assert issubclass(obj, BloError), name


@pytest.mark.parametrize("module", [schemas, certs])
def test_public_api_is_exported(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        assert getattr(module, name) is not None
