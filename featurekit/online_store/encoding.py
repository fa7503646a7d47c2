"""Feast ``Value`` encodings of whole Arrow columns, for featurekit's writers.

The same bytes Feast's ``python_values_to_proto_values`` + ``SerializeToString`` produce, built
per column: null-free fixed-width columns (double, float, bool, int64 of one varint width) for
all rows at once with numpy, the others value by value. A null (or NaN, as Feast turns NaN into
an empty ``Value``) is the empty string Feast stores for an empty proto; types not listed here
go through Feast's own converter, column by column (the only path that imports Feast).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from featurekit.online_store.keys import varint
from featurekit.online_store.values import TAG_BOOL, TAG_DOUBLE, TAG_FLOAT, TAG_INT32, TAG_INT64, TAG_STRING


def fixed(column: Any, kind: str) -> np.ndarray | None:
    """(n, width) uint8 array of the proto encoding of a null-free fixed-width column, else None."""
    import pyarrow as pa

    if column.null_count:
        return None
    n = len(column)
    if kind == "DOUBLE":
        values = column.to_numpy(zero_copy_only=False).astype("<f8")
        if np.isnan(values).any():
            return None
        out = np.empty((n, 9), np.uint8)
        out[:, 0] = TAG_DOUBLE
        out[:, 1:] = values.view(np.uint8).reshape(n, 8)
        return out
    if kind == "FLOAT":
        values = column.to_numpy(zero_copy_only=False).astype("<f4")
        if np.isnan(values).any():
            return None
        out = np.empty((n, 5), np.uint8)
        out[:, 0] = TAG_FLOAT
        out[:, 1:] = values.view(np.uint8).reshape(n, 4)
        return out
    if kind == "BOOL":
        out = np.empty((n, 2), np.uint8)
        out[:, 0] = TAG_BOOL
        out[:, 1] = column.to_numpy(zero_copy_only=False).astype(np.uint8)
        return out
    if kind == "INT64" and pa.types.is_integer(column.type) and n:
        values = column.to_numpy(zero_copy_only=False).astype(np.int64)
        low, high = int(values.min()), int(values.max())
        # fixed width only when every value's varint has the same length
        k = max(1, (high.bit_length() + 6) // 7)
        if low < 0 or max(1, (low.bit_length() + 6) // 7) != k:
            return None
        out = np.empty((n, k + 1), np.uint8)
        out[:, 0] = TAG_INT64
        rest = values.astype(np.uint64)
        for i in range(k):
            out[:, i + 1] = (rest & np.uint64(0x7F)).astype(np.uint8) | (0x80 if i < k - 1 else 0)
            rest = rest >> np.uint64(7)
        return out
    return None


def variable(column: Any, kind: str) -> list[bytes]:
    """The proto encoding of each value of a column, as Feast would serialize it."""
    values = column.to_pylist()
    if kind == "STRING":
        out = []
        for v in values:
            if v is None:
                out.append(b"")
            else:
                raw = v.encode("utf8")
                out.append(bytes([TAG_STRING]) + varint(len(raw)) + raw)
        return out
    if kind == "INT64" and all(v is None or isinstance(v, int) for v in values):
        return [b"" if v is None else bytes([TAG_INT64]) + varint(v) for v in values]
    if kind == "DOUBLE":
        return [b"" if v is None or v != v else struct.pack("<Bd", TAG_DOUBLE, v) for v in values]
    if kind == "BOOL":
        return [b"" if v is None else bytes([TAG_BOOL, int(v)]) for v in values]
    if kind == "INT32" and all(v is None or isinstance(v, int) for v in values):
        return [b"" if v is None else bytes([TAG_INT32]) + varint(v) for v in values]
    if kind == "FLOAT":
        return [b"" if v is None or v != v else struct.pack("<Bf", TAG_FLOAT, v) for v in values]
    # anything else (arrays, bytes, timestamps): Feast's own converter, imported only here
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    protos = python_values_to_proto_values(column.to_numpy(zero_copy_only=False), ValueType[kind])
    return [p.SerializeToString() for p in protos]


def encoded_columns(batch: Any, features: list[tuple[str, str]]) -> list[list[bytes]]:
    """Per feature, the Feast ``Value`` proto bytes of every row (b"" for null, as Feast)."""
    out = []
    for name, kind in features:
        column = batch.column(name)
        block = fixed(column, kind)
        if block is None:
            out.append(variable(column, kind))
        else:
            raw, width = block.tobytes(), block.shape[1]
            out.append([raw[i:i + width] for i in range(0, len(raw), width)])
    return out
