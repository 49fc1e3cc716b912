"""OTLP JSON lines parsed by pyarrow's JSON reader, the fast path of :mod:`failkit.ingest.otlp`.

pyarrow reads a block of request lines with an explicit schema of the fields the mapping uses
(:data:`REQUEST_SCHEMA`), in several threads, into the nested table that DuckDB's SQL then
unnests without parsing any JSON again (``sql/otlp_arrow_values.sql``). The schema is strict
where the mapping needs it: a block pyarrow refuses, or that does not come out as exactly one
request per line, is left to the careful DuckDB path, which quarantines bad lines with their
reason. pyarrow refuses, among others, int64 written as JSON numbers (the JS exporter), enum
names, attribute arrays holding arrays or kvlists, invalid UTF-8 or JSON, and lines longer
than its block.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

_TEXT = pa.string()
_SCALAR = [
    ("stringValue", _TEXT),
    ("intValue", _TEXT),
    ("doubleValue", pa.float64()),
    ("boolValue", pa.bool_()),
    ("bytesValue", _TEXT),
    # declared as text only so that a nested array or kvlist makes pyarrow refuse the block
    ("arrayValue", _TEXT),
    ("kvlistValue", _TEXT),
]
_VALUE = pa.struct(
    [
        *_SCALAR[:5],
        ("arrayValue", pa.struct([("values", pa.list_(pa.struct(_SCALAR)))])),
        (
            "kvlistValue",
            pa.struct(
                [("values", pa.list_(pa.struct([("key", _TEXT), ("value", pa.struct(_SCALAR))])))]
            ),
        ),
    ]
)
_ATTRIBUTES = pa.list_(pa.struct([("key", _TEXT), ("value", _VALUE)]))
_SPAN = pa.struct(
    [
        *[(name, _TEXT) for name in ("traceId", "spanId", "parentSpanId", "name")],
        ("kind", pa.int64()),
        ("startTimeUnixNano", _TEXT),
        ("endTimeUnixNano", _TEXT),
        ("status", pa.struct([("code", pa.int64()), ("message", _TEXT)])),
        ("attributes", _ATTRIBUTES),
        (
            "events",
            pa.list_(
                pa.struct([("timeUnixNano", _TEXT), ("name", _TEXT), ("attributes", _ATTRIBUTES)])
            ),
        ),
    ]
)
_SCOPE_SPANS = pa.struct(
    [("scope", pa.struct([("name", _TEXT), ("version", _TEXT)])), ("spans", pa.list_(_SPAN))]
)
REQUEST_SCHEMA = pa.schema(
    [
        (
            "resourceSpans",
            pa.list_(
                pa.struct(
                    [
                        ("resource", pa.struct([("attributes", _ATTRIBUTES)])),
                        ("scopeSpans", pa.list_(_SCOPE_SPANS)),
                    ]
                )
            ),
        )
    ]
)
"""The fields of an ExportTraceServiceRequest line the mapping reads (others are skipped)."""

_SHORTEST_REQUEST = len(b'{"resourceSpans":[]}')
_PARSE = pj.ParseOptions(explicit_schema=REQUEST_SCHEMA, unexpected_field_behavior="ignore")
_MIN_PARSE_BLOCK = 1 << 20


def parse_requests(data: bytes, first_line: int) -> pa.Table | None:
    """Whole request lines as a table ``(line_no, line)``, ``line`` the parsed request.

    None when pyarrow refuses the block or it holds a blank line or a line that is not exactly
    one request with a ``resourceSpans`` list: the caller then reads it the careful way.
    """
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    lengths = np.diff(ends, prepend=-1) - 1
    if not len(ends) or lengths.min() < _SHORTEST_REQUEST:
        return None
    try:  # pyarrow does not check UTF-8
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # several blocks per thread, each holding many lines
    block = max(_MIN_PARSE_BLOCK, len(data) // (2 * (os.cpu_count() or 1)) + 1)
    options = pj.ReadOptions(block_size=block)
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=options, parse_options=_PARSE)
    except pa.ArrowInvalid:
        return None
    requests = table.column("resourceSpans")
    if table.num_rows != len(ends) or requests.null_count:
        return None
    lines = table.to_struct_array()
    numbers = pa.array(np.arange(first_line, first_line + len(ends), dtype=np.int64))
    offsets = np.cumsum([0, *(len(c) for c in lines.chunks)])
    line_no = pa.chunked_array([numbers[a:b] for a, b in itertools.pairwise(offsets)], pa.int64())
    return pa.Table.from_arrays([line_no, lines], names=["line_no", "line"])
