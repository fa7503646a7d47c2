"""Feast's stored ``Value`` protos, decoded without protobuf for the common scalars.

A stored value is one serialized ``Value`` message: a tag byte then the payload (``double_val``
= ``0x29`` + 8 bytes little-endian, ``int64_val`` = ``0x20`` + varint, ...); the empty string is
an unset value (null). Anything else (lists, bytes, timestamps) is parsed by Feast's own proto,
imported only on that path.
"""

from __future__ import annotations

import struct
from typing import Any

from featurekit.online_store.keys import read_varint

# proto tag bytes of Value's oneof fields
TAG_BYTES, TAG_STRING, TAG_INT32, TAG_INT64, TAG_DOUBLE, TAG_FLOAT, TAG_BOOL = 0x0A, 0x12, 0x18, 0x20, 0x29, 0x35, 0x38

_DOUBLE = struct.Struct("<d").unpack_from
_FLOAT = struct.Struct("<f").unpack_from


def decode(raw: bytes, value_class: Any = None) -> Any:
    """A stored Feast ``Value`` as a Python value: the common scalar encodings read directly,
    anything else parsed by protobuf (``value_class``: Feast's ``Value``, imported when None)."""
    if not raw:
        return None
    tag = raw[0]
    if tag == TAG_DOUBLE and len(raw) == 9:
        return _DOUBLE(raw, 1)[0]
    if tag in (TAG_INT64, TAG_INT32):
        value, end = read_varint(raw, 1)
        if end == len(raw):
            if value >= 1 << 63:
                value -= 1 << 64
            return value
    elif tag == TAG_STRING:
        length, start = read_varint(raw, 1)
        if start + length == len(raw):
            return raw[start:].decode("utf8")
    elif tag == TAG_BOOL and len(raw) == 2:
        return bool(raw[1])
    elif tag == TAG_FLOAT and len(raw) == 5:
        return _FLOAT(raw, 1)[0]
    if value_class is None:
        from feast.protos.feast.types.Value_pb2 import Value as value_class
    proto = value_class()
    proto.ParseFromString(raw)
    return python_value(proto)


def python_value(proto: Any) -> Any:
    """A Feast ``Value`` proto as a plain Python value (None when unset)."""
    which = proto.WhichOneof("val")
    if which is None or which == "null_val":
        return None
    value = getattr(proto, which)
    if which.endswith("_list_val"):
        return list(value.val)
    return value
