"""The body codec, the text coding and the compression: round trips and hostile bytes."""

from __future__ import annotations

import zlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from netsim import reference_alert
from strategies import alerts, any_body, bulletins, incidents, receipts, text

from schemas import (
    Alert,
    DecodeError,
    EncodeError,
    Item,
    Position,
    Receipt,
    ReceiptStatus,
    Unit,
    UnsupportedError,
    WireModel,
    pack,
    unpack_model,
)
from schemas.codec import MAX_DEPTH, unpack_strict
from schemas.compression import BodyCoding, compress, decompress
from schemas.textcode import decode_text, encode_text

LIMIT = 256 * 1024


@given(any_body)
def test_every_kind_round_trips(body: WireModel) -> None:
    assert unpack_model(type(body), pack(body), max_len=LIMIT) == body


@given(st.one_of(alerts, incidents, bulletins, receipts))
def test_compression_round_trips(body: WireModel) -> None:
    plain = pack(body)
    coding, coded = compress(plain)
    assert len(coded) <= len(plain)
    assert decompress(coding, coded, max_len=LIMIT) == plain


@given(text(0, 300))
def test_text_coding_round_trips(value: str) -> None:
    coded = encode_text(value)
    if coded is not None:
        assert len(coded) < len(value.encode("utf-8"))
        assert decode_text(coded) == value


def test_khmer_costs_one_byte_a_character() -> None:
    headline = "រឹបអូសមេតំហ្វេតាមីន នៅព្រំដែន"
    coded = encode_text(headline)
    assert coded is not None
    assert len(coded) == len(headline) + 1
    assert len(headline.encode()) > 2.5 * len(headline)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x09abc", b"\x01\x1b", b"\x01\x1b\xe1\x9e", b"\x01\x1b\xff", b"\x01\x1b\xed\xa0\x80"],
)
def test_malformed_coded_text_refused(payload: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        decode_text(payload)


def _receipt_fields() -> list[object]:
    return [b"\x01" * 16, 0, [1_780_000_000, 28]]


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ([b"\x01" * 16, 0, [1_780_000_000.0, 28]], "malformed time"),  # float for int
        (["\x01" * 16, 0, [1_780_000_000, 28]], "expected bytes, got str"),  # str for bytes
        ([b"\x01" * 16, True, [1_780_000_000, 28]], "ReceiptStatus"),  # bool for enum int
        ([b"\x01" * 16, 7, [1_780_000_000, 28]], "ReceiptStatus"),  # no such member
        ([b"\x01" * 16, 0, [1_780_000_000, 28], 5], "needs 3 to 3"),  # too many fields
        ([b"\x01" * 16, 0], "needs 3 to 3"),  # missing a required one
        ([b"\x01" * 15, 0, [1_780_000_000, 28]], "of"),  # wrong length id
        ({"of": b"\x01" * 16}, "Receipt array"),
    ],
)
def test_type_confusion_refused(fields: object, complaint: str) -> None:
    with pytest.raises(DecodeError, match=complaint):
        unpack_model(Receipt, msgpack.packb(fields, use_bin_type=True), max_len=LIMIT)


def test_int_for_float_refused() -> None:
    good = msgpack.unpackb(pack(Item(substance="heroin", quantity=2.0, unit=Unit.KG)))
    good[2] = 2  # quantity as an int
    with pytest.raises(DecodeError, match="quantity: expected float, got int"):
        unpack_model(Item, msgpack.packb(good), max_len=LIMIT)
    position = msgpack.unpackb(pack(Position(lat=11.0, lon=106.0)))
    position[0] = 11
    with pytest.raises(DecodeError, match="lat"):
        unpack_model(Position, msgpack.packb(position), max_len=LIMIT)


def test_str_for_bytes_and_bytes_for_str_refused() -> None:
    good = msgpack.unpackb(pack(Item(substance="heroin", quantity=2.0, unit=Unit.KG)), raw=False)
    good[0] = b"heroin"
    with pytest.raises(DecodeError, match="substance: expected text, got bytes"):
        unpack_model(Item, msgpack.packb(good, use_bin_type=True), max_len=LIMIT)


def test_duplicate_map_keys_refused() -> None:
    # A map {0: "a", 0: "b"}: msgpack permits it, the codec does not.
    data = b"\x82\x00\xa1a\x00\xa1b"
    with pytest.raises(DecodeError, match="repeats a key"):
        unpack_strict(data, max_len=LIMIT)


def test_trailing_bytes_refused() -> None:
    data = pack(Receipt(of=b"\x01" * 16, status=ReceiptStatus.READ, at=reference_alert()[2]))
    with pytest.raises(DecodeError, match="trailing bytes"):
        unpack_model(Receipt, data + b"\x00", max_len=LIMIT)


@pytest.mark.parametrize(
    "bomb",
    [
        b"\xdd\xff\xff\xff\xff",  # array32 declaring 4 billion elements
        b"\xdf\xff\xff\xff\xff",  # map32 likewise
        b"\xdb\xff\xff\xff\xff",  # str32 of 4 GiB
        b"\xc6\xff\xff\xff\xff",  # bin32 of 4 GiB
        b"\xc9\xff\xff\xff\xff\x01",  # ext32 of 4 GiB
        b"\x91" * 100_000 + b"\xc0",  # 100,000 nested arrays
        b"\x91" * (MAX_DEPTH + 1) + b"\xc0",  # just past the depth limit
        b"\x81\x00" * 50 + b"\xc0",  # nested maps
    ],
)
def test_msgpack_bombs_refused(bomb: bytes) -> None:
    with pytest.raises(DecodeError):
        unpack_strict(bomb, max_len=LIMIT)


def test_size_limit_refused_before_parsing() -> None:
    with pytest.raises(DecodeError, match="over the limit"):
        unpack_strict(b"\xc0" * 1001, max_len=1000)


def test_decompression_bomb_refused() -> None:
    engine = zlib.compressobj(
        9,
        zlib.DEFLATED,
        -15,
        zdict=__import__("schemas.compression", fromlist=["dictionary"]).dictionary(1),
    )
    bomb = engine.compress(b"\x00" * 50_000_000) + engine.flush()
    assert len(bomb) < 100_000
    with pytest.raises(DecodeError, match="inflates past the limit"):
        decompress(BodyCoding.DEFLATE_V1, bomb, max_len=LIMIT)


def test_corrupt_and_truncated_deflate_refused() -> None:
    plain = pack(reference_alert()[0])
    coding, coded = compress(plain)
    assert coding is BodyCoding.DEFLATE_V1
    with pytest.raises(DecodeError, match="truncated"):
        decompress(coding, coded[: len(coded) // 2], max_len=LIMIT)
    with pytest.raises(DecodeError, match="trailing"):
        decompress(coding, coded + b"junk", max_len=LIMIT)
    with pytest.raises(UnsupportedError, match="upgrade"):
        decompress(9, coded, max_len=LIMIT)


def test_unencodable_value_is_an_encode_error() -> None:
    alert = reference_alert()[0]
    assert isinstance(alert, Alert)
    bad = alert.model_copy(update={"references": ("not bytes",)})
    with pytest.raises(EncodeError):
        pack(bad)


def test_trailing_defaults_are_left_off() -> None:
    minimal = Position(lat=1.0, lon=2.0)
    assert msgpack.unpackb(pack(minimal)) == [1.0, 2.0]


def test_enum_codes_are_pinned() -> None:
    # Wire codes are positions: reordering an enum would silently change meaning.
    from schemas import Category, Crime, Lang, Severity

    assert [m.value for m in Lang] == ["en", "km", "lo", "th", "vi", "my", "zh"]
    assert list(Severity).index(Severity.SEVERE) == 1
    assert list(Category).index(Category.DRUG_SEIZURE) == 0
    assert list(Crime).index(Crime.OTHER) == 6
