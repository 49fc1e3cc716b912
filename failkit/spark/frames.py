"""Column types shared by Spark and DuckDB, and the Arrow conversions at their border.

Spark has no unsigned integers: ``intent_id`` (a UBIGINT hash in DuckDB) travels through
Spark as the signed BIGINT with the same bits and is cast back when collected.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa

from failkit.chains import STEP_COLUMNS
from failkit.schema import SPAN_COLUMNS, TABLES

_SPARK = {
    "VARCHAR": "string",
    "JSON": "string",
    "TIMESTAMP": "timestamp_ntz",
    "DOUBLE": "double",
    "BIGINT": "bigint",
    "UBIGINT": "bigint",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "INTEGER": "int",
}
_ARROW = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "DOUBLE": pa.float64(),
    "BIGINT": pa.int64(),
    "UBIGINT": pa.int64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "INTEGER": pa.int32(),
}
_SPAN_TYPES = {c.name: c.sql_type for c in SPAN_COLUMNS}
_STEP_ONLY = {
    "step": "BIGINT", "depth": "BIGINT", "stage": "VARCHAR", "attempt": "BIGINT",
    "is_first_failure": "BOOLEAN", "after_failure": "BOOLEAN", "cause_span_id": "VARCHAR",
    "rule": "VARCHAR", "transient": "BOOLEAN", "recovered": "BOOLEAN", "propagated": "BOOLEAN",
    "intent_id": "UBIGINT", "side_effect": "VARCHAR", "duplicate_side_effect": "BOOLEAN",
    "heuristic": "VARCHAR", "root_reason": "VARCHAR",
}  # fmt: skip
STEP_TYPES: dict[str, str] = {c: _STEP_ONLY.get(c) or _SPAN_TYPES[c] for c in STEP_COLUMNS}
"""DuckDB type of each column of :func:`failkit.steps`."""

TABLE_TYPES: dict[str, dict[str, str]] = {
    table: {c.name: c.sql_type for c in columns} for table, columns in TABLES.items()
}
"""DuckDB type of each column of each store table."""


def ddl(types: dict[str, str]) -> str:
    """A Spark DDL schema (``a string, b bigint``) for columns of DuckDB types."""
    return ", ".join(f"`{name}` {_SPARK[t]}" for name, t in types.items())


def arrow_schema(types: dict[str, str]) -> pa.Schema:
    """The Arrow schema Spark expects back for columns of DuckDB types."""
    return pa.schema([(name, _ARROW[t]) for name, t in types.items()])


def to_arrow(frame: pd.DataFrame, types: dict[str, str]) -> pa.Table:
    """A pandas frame of failkit as the Arrow table Spark takes (unsigned ids bit-cast)."""
    table = pa.Table.from_pandas(frame[list(types)], preserve_index=False)
    columns = [table[name].cast(_ARROW[t], safe=t != "UBIGINT") for name, t in types.items()]
    return pa.Table.from_arrays(columns, schema=arrow_schema(types))


def batches(frame: pd.DataFrame, types: dict[str, str]) -> Iterable[pa.RecordBatch]:
    """:func:`to_arrow` as record batches (what ``mapInArrow`` functions yield)."""
    return to_arrow(frame, types).to_batches()


_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.uint64(): pd.UInt64Dtype()}


def to_pandas(table: pa.Table, types: dict[str, str]) -> pd.DataFrame:
    """An Arrow table from Spark as the pandas frame the DuckDB path gives.

    Integers that can be missing are nullable; unsigned ids get their type back; integer
    columns without missing values in the DuckDB frames (``step``, counts) are set by the
    caller.
    """
    columns = [
        table[name].cast(pa.uint64(), safe=False) if t == "UBIGINT" else table[name]
        for name, t in types.items()
    ]
    fixed = pa.Table.from_arrays(columns, names=list(types))
    return fixed.to_pandas(types_mapper=_NULLABLE.get)


def steps_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Steps from Spark with the dtypes of :func:`failkit.steps`."""
    frame = to_pandas(table, STEP_TYPES)
    return frame.astype({"step": "int64", "depth": "int64", "attempt": "int64"})


def step_columns_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Some columns of the steps from Spark, with the dtypes of :func:`failkit.steps`."""
    frame = to_pandas(table, {c: STEP_TYPES[c] for c in table.column_names})
    ints = [c for c in ("step", "depth", "attempt") if c in frame.columns]
    return frame.astype(dict.fromkeys(ints, "int64"))


def from_batches(parts: Iterable[pa.RecordBatch]) -> pa.Table | None:
    """The record batches of one Spark partition as a table (None when it has none)."""
    listed = list(parts)
    return pa.Table.from_batches(listed) if listed else None


def to_ipc(table: pa.Table) -> bytes:
    """An Arrow table as Arrow IPC stream bytes (how tasks send tables in a binary column)."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def from_ipc(payload: bytes) -> pa.Table:
    """The table of :func:`to_ipc` bytes."""
    return pa.ipc.open_stream(payload).read_all()
