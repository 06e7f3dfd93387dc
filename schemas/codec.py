"""The compact body codec: pydantic models as positional msgpack arrays.

A model is an array of its field values in declaration order, with trailing
fields that hold their default left off; so a new optional field appended to a
model costs old messages nothing and old readers see a shorter array. Values:

    enum member      its position in the enum (an int; enums are append-only)
    datetime         [unix seconds, UTC offset in quarter hours]
    str              a msgpack str, or ext 1 (script-coded text, see textcode.py)
    bytes            a msgpack bin
    dict[Lang, X]    a map from the language's code to X
    tuple[X, ...]    an array

Decoding is driven by the model's types, strictly: an int where a float is due,
a str where bytes are due, a duplicate map key, trailing bytes, an array longer
than the model, nesting deeper than ``MAX_DEPTH``: each is a ``DecodeError``
naming the field path. msgpack's and pydantic's own errors are translated here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from functools import cache
from typing import Any, TypeVar

import msgpack
from pydantic import AwareDatetime, BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from schemas.errors import DecodeError, EncodeError
from schemas.textcode import decode_text, encode_text

__all__ = ["EXT_TEXT", "MAX_DEPTH", "pack", "unpack_model", "unpack_strict"]

EXT_TEXT = 1
MAX_DEPTH = 12
_QUARTER = timedelta(minutes=15)

M = TypeVar("M", bound=BaseModel)
_Enc = Callable[[Any], Any]
_Dec = Callable[[Any, str], Any]


def _bad(expected: str, value: object, path: str) -> DecodeError:
    return DecodeError(f"expected {expected}, got {type(value).__name__}", path)


# -- leaf codecs -------------------------------------------------------------


def _enc_str(value: str) -> Any:
    if type(value) is not str:
        raise TypeError(f"expected str, got {type(value).__name__}")
    coded = encode_text(value)
    return value if coded is None else msgpack.ExtType(EXT_TEXT, coded)


def _dec_str(value: Any, path: str) -> str:
    if type(value) is str:
        return value
    if type(value) is msgpack.ExtType and value.code == EXT_TEXT:
        try:
            return decode_text(value.data)
        except ValueError as exc:
            raise DecodeError(str(exc), path) from None
    raise _bad("text", value, path)


def _exact(kind: type) -> tuple[_Enc, _Dec]:
    # Encoding checks too: a model built with model_construct or model_copy
    # skipped validation, and must not reach the wire with the wrong types.
    def enc(value: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    def dec(value: Any, path: str) -> Any:
        if type(value) is not kind:
            raise _bad(kind.__name__, value, path)
        return value

    return enc, dec


def _enc_time(value: datetime) -> list[int]:
    offset = value.utcoffset() or timedelta(0)
    return [int(value.timestamp()), offset // _QUARTER]


def _dec_time(value: Any, path: str) -> datetime:
    if type(value) is not tuple or len(value) != 2:
        raise _bad("[seconds, quarter hours]", value, path)
    seconds, quarters = value
    if type(seconds) is not int or type(quarters) is not int or not -60 <= quarters <= 60:
        raise DecodeError("malformed time", path)
    try:
        return datetime.fromtimestamp(seconds, UTC).astimezone(timezone(quarters * _QUARTER))
    except (OverflowError, OSError, ValueError):
        raise DecodeError(f"time {seconds} is out of range", path) from None


def _enum_codec(cls: type[Enum]) -> tuple[_Enc, _Dec]:
    members = list(cls)
    index = {m: i for i, m in enumerate(members)}

    def dec(value: Any, path: str) -> Enum:
        if type(value) is not int or not 0 <= value < len(members):
            raise DecodeError(f"not a {cls.__name__} code: {value!r}", path)
        return members[value]

    return index.__getitem__, dec


# -- composite codecs --------------------------------------------------------


def _model_codec(cls: type[BaseModel]) -> tuple[_Enc, _Dec]:
    fields = list(cls.model_fields.items())
    names = [name for name, _ in fields]
    codecs = [_codec(info.annotation) for _, info in fields]  # type: ignore[arg-type]
    defaults = [
        info.get_default(call_default_factory=True) if not info.is_required() else PydanticUndefined
        for _, info in fields
    ]
    required = max((i + 1 for i, (_, f) in enumerate(fields) if f.is_required()), default=0)
    decoders = [codec[1] for codec in codecs]
    validate = cls.__pydantic_validator__.validate_python

    def enc(model: BaseModel) -> list[Any]:
        values = [getattr(model, name) for name in names]
        end = len(values)
        while end > required and values[end - 1] == defaults[end - 1]:
            end -= 1
        return [codecs[i][0](values[i]) for i in range(end)]

    def dec(value: Any, path: str) -> BaseModel:
        if type(value) is not tuple:
            raise _bad(f"{cls.__name__} array", value, path)
        if not required <= len(value) <= len(names):
            raise DecodeError(
                f"{cls.__name__} needs {required} to {len(names)} fields, got {len(value)}", path
            )
        prefix = f"{path}." if path else ""
        data = {names[i]: decoders[i](item, prefix + names[i]) for i, item in enumerate(value)}
        try:
            # The validator itself: ``model_validate`` only wraps it (a call per model).
            return validate(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise DecodeError(first["msg"], f"{path}.{where}" if path else where) from None

    return enc, dec


def _optional_codec(inner: tuple[_Enc, _Dec]) -> tuple[_Enc, _Dec]:
    enc, dec = inner
    return (lambda v: None if v is None else enc(v)), (
        lambda v, path: None if v is None else dec(v, path)
    )


def _tuple_codec(inner: tuple[_Enc, _Dec]) -> tuple[_Enc, _Dec]:
    enc, dec = inner

    def dec_tuple(value: Any, path: str) -> tuple[Any, ...]:
        if type(value) is not tuple:
            raise _bad("array", value, path)
        return tuple(dec(item, f"{path}[{i}]") for i, item in enumerate(value))

    return (lambda v: [enc(item) for item in v]), dec_tuple


def _dict_codec(keys: tuple[_Enc, _Dec], values: tuple[_Enc, _Dec]) -> tuple[_Enc, _Dec]:
    kenc, kdec = keys
    venc, vdec = values

    def dec_dict(value: Any, path: str) -> dict[Any, Any]:
        if type(value) is not dict:
            raise _bad("map", value, path)
        out = {}
        for k, v in value.items():
            key = kdec(k, f"{path}{{key}}")
            out[key] = vdec(v, f"{path}[{getattr(key, 'value', key)}]")
        return out

    return (lambda d: {kenc(k): venc(v) for k, v in d.items()}), dec_dict


@cache
def _codec(tp: Any) -> tuple[_Enc, _Dec]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _codec(args[0])
    if origin in (types.UnionType, typing.Union):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"unsupported union {tp}")
        return _optional_codec(_codec(rest[0]))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple_codec(_codec(args[0]))
    if origin is dict:
        return _dict_codec(_codec(args[0]), _codec(args[1]))
    if isinstance(tp, type):
        if issubclass(tp, BaseModel):
            return _model_codec(tp)
        if issubclass(tp, Enum):
            return _enum_codec(tp)
        if tp is AwareDatetime or issubclass(tp, datetime):
            return _enc_time, _dec_time
        if tp is str:
            return _enc_str, _dec_str
        if tp in (bytes, int, float, bool):
            return _exact(tp)
    raise TypeError(f"the wire codec cannot carry {tp!r}")


# -- msgpack boundary ---------------------------------------------------------


def pack(model: BaseModel) -> bytes:
    """Encode a model as positional msgpack. Raises ``EncodeError``."""
    try:
        return msgpack.packb(_codec(type(model))[0](model), use_bin_type=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError, UnicodeError, AttributeError, KeyError) as exc:
        raise EncodeError(f"cannot encode {type(model).__name__}: {exc}") from None


def _pairs(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise DecodeError("a map repeats a key")
    return out


def _check_depth(obj: Any) -> None:
    """Refuse anything nested deeper than ``MAX_DEPTH`` (the top object is at depth 1).

    Level by level, and only containers go to the next level: the leaves (most
    of a message) are looked at once, not pushed and popped one by one.
    """
    level = [obj]
    depth = 1
    while level:
        below: list[Any] = []
        for node in level:
            kind = type(node)
            children = node if kind is tuple else node.values() if kind is dict else ()
            if children and depth >= MAX_DEPTH:
                raise DecodeError(f"nesting deeper than {MAX_DEPTH}")
            below += [c for c in children if type(c) is tuple or type(c) is dict]
        level = below
        depth += 1


def unpack_strict(data: bytes, *, max_len: int) -> Any:
    """Unpack exactly one msgpack object with hard limits. Raises ``DecodeError``.

    Arrays come back as tuples, maps as dicts (duplicate keys refused), str as
    str, bin as bytes, ext as ``msgpack.ExtType``. Trailing bytes are refused.
    """
    if len(data) > max_len:
        raise DecodeError(f"{len(data)} bytes is over the limit of {max_len}")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=False,
            object_pairs_hook=_pairs,
            max_str_len=max_len,
            max_bin_len=max_len,
            max_ext_len=max_len,
            max_array_len=min(max_len, 65_536),
            max_map_len=min(max_len, 4_096),
        )
    except DecodeError:
        raise
    except msgpack.ExtraData:
        raise DecodeError("trailing bytes after the message") from None
    except msgpack.StackError:
        raise DecodeError(f"nesting deeper than {MAX_DEPTH}") from None
    except (ValueError, TypeError, msgpack.UnpackException, UnicodeDecodeError) as exc:
        raise DecodeError(f"not valid msgpack ({exc or type(exc).__name__})") from None
    _check_depth(obj)
    return obj


def unpack_model(cls: type[M], data: bytes, *, max_len: int) -> M:
    """Decode positional msgpack into ``cls``, strictly. Raises ``DecodeError``."""
    model = _codec(cls)[1](unpack_strict(data, max_len=max_len), "")
    assert isinstance(model, cls)
    return model
