"""OpenTelemetry traces (OTLP): OTel GenAI, OpenInference, Langfuse, pydantic-ai, smolagents, ….

One mapping, several encodings. Every encoding becomes OTLP JSON request objects, one per
"line", parsed once with an explicit type for the ``resourceSpans`` tree, then unnested into
one row per span with its attributes as one JSON object text (``fk_otlp_flat``), which one SQL
maps onto the span columns (``sql/otlp_macros.sql``, ``sql/otlp_spans.sql``):

- JSON lines (the Collector's and the Python file exporter's output, the big one): read in
  blocks of whole lines, never a Python loop per line or span. Threads read the blocks and,
  each on a DuckDB connection of its own, parse them with pyarrow's JSON reader, unnest them
  with Arrow kernels (:mod:`failkit.ingest.otlp_arrow`) and map them into span rows in Arrow,
  a few blocks ahead of the one the store takes (:meth:`Staging.add_spans`); a block pyarrow
  refuses (int64 as JSON numbers, enum names, nested arrays, bad lines) is parsed and
  unnested by DuckDB with :data:`REQUEST_TYPE` instead (``sql/otlp_json_values.sql``,
  ``sql/otlp_json_flat.sql``), which quarantines bad lines with their reason
  (``sql/otlp_bad.sql``);
- one or several pretty-printed JSON documents (an OTLP/HTTP request body, protobuf's
  ``json_format`` output with base64 ids and enum names, the console exporter's span objects):
  split in Python, see :mod:`failkit.ingest.otlp_docs`, parsed by DuckDB;
- a binary protobuf ``ExportTraceServiceRequest``.

A line that is not valid UTF-8 or not valid JSON is quarantined with its line number and the
rest loads; spans without ids or ending before they start are quarantined by the store.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing
from importlib import resources
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

import duckdb
import numpy as np
import pyarrow as pa

from failkit.ingest.base import RUN_ID_KEYS, Staging, duckdb_settings, read_head
from failkit.ingest.lines import count_newlines
from failkit.ingest.otlp_arrow import MAPPED_KEYS, Bytes, flat_spans, parse_requests
from failkit.ingest.otlp_docs import document_lines, is_protobuf_request, protobuf_lines

Encoding = Literal["jsonl", "document", "protobuf"]
_T = TypeVar("_T")

BLOCK_BYTES = 32 << 20
"""Bytes of JSON lines staged by one query (memory grows with it, planning cost falls)."""
PREPARING_THREADS = 2
"""Threads reading, parsing and mapping blocks, each with one DuckDB thread (on two cores,
more DuckDB threads per connection cost more CPU than they save)."""
BLOCKS_AHEAD = PREPARING_THREADS + 1
"""Blocks prepared ahead of the one being staged, so that the threads keep preparing while
the store commits a chunk (memory grows with it)."""
BATCH_BYTES = 1 << 20
"""Bytes per Arrow record batch handed to DuckDB (its threads take batches)."""

# An ExportTraceServiceRequest has one field; a console exporter span prints name, context.
_REQUEST = re.compile(rb'\{\s*"resource(Spans|_spans)"\s*:')
_CONSOLE = re.compile(rb'\{\s*"name"\s*:.*?"context"\s*:\s*\{\s*"trace_id"\s*:\s*"0x', re.S)
_LINES = "fk_otlp_lines"
_FLAT = "fk_otlp_flat"
LINES_SCHEMA = pa.schema([("line_no", pa.int64()), ("line", pa.large_binary())])

# The explicit DuckDB type of a request line (never inferred: pitfall 3). Attribute values
# stay compact JSON text (see sql/otlp_macros.sql); scalars are text, so int64 as a JSON
# string (Python, Collector) or number (JS) reads the same (pitfall 2); ids and enums stay
# text: hex or base64, 3 or "SPAN_KIND_CLIENT" (pitfall 1).
_ATTRIBUTES = [{"key": "VARCHAR", "value": "JSON"}]
_SPAN = {
    **dict.fromkeys(("traceId", "spanId", "parentSpanId", "name", "kind"), "VARCHAR"),
    **dict.fromkeys(("startTimeUnixNano", "endTimeUnixNano"), "VARCHAR"),
    "status": {"code": "VARCHAR", "message": "VARCHAR"},
    "attributes": _ATTRIBUTES,
    "events": [{"timeUnixNano": "VARCHAR", "name": "VARCHAR", "attributes": _ATTRIBUTES}],
}
REQUEST_TYPE = {
    "resourceSpans": [
        {
            "resource": {"attributes": _ATTRIBUTES},
            "scopeSpans": [{"scope": {"name": "VARCHAR", "version": "VARCHAR"}, "spans": [_SPAN]}],
        }
    ]
}


def _sql(name: str) -> str:
    """The text of a file in ``failkit/sql``."""
    return resources.files("failkit.sql").joinpath(name).read_text()


def sniff_encoding(head: bytes) -> Encoding | None:
    """Which OTLP encoding a file's first bytes show, or None when it is not OTLP."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not text.startswith(b"{"):
        return "protobuf" if is_protobuf_request(head) else None
    request = _REQUEST.match(text)
    if request is None and not _CONSOLE.match(text):
        return None
    # JSON lines: the first line is a whole object, or longer than the head
    first, newline, _ = text.partition(b"\n")
    one_line = not newline or first.rstrip().endswith(b"}")
    return "jsonl" if request and request[1] == b"Spans" and one_line else "document"


class OtlpAdapter:
    """OTLP traces in JSON lines, JSON documents, protobuf or console-exporter output."""

    name: ClassVar[str] = "otlp"
    description: ClassVar[str] = (
        "OpenTelemetry OTLP traces (GenAI, OpenInference, Langfuse, …): JSON lines, an "
        "OTLP/HTTP JSON body, protobuf (binary or json_format), console exporter output"
    )

    def sniff(self, head: bytes, path: Path) -> bool:
        """True for OTLP in any of the encodings."""
        return sniff_encoding(head) is not None

    def load(self, stage: Staging) -> None:
        """Stage the spans of the file; unreadable lines go to quarantine.

        Raises:
            FormatError: a binary protobuf file that does not decode.
        """
        encoding = sniff_encoding(read_head(stage.path)) or "jsonl"
        con = stage.con
        con.execute(
            "SET VARIABLE fk_otlp_unit = ?", ["request " if encoding == "protobuf" else "line "]
        )
        values = _Values(con)
        with _load_settings(con, pipelined=encoding == "jsonl"):
            if encoding == "jsonl":
                # the reading thread stops before the file closes
                with stage.open() as f, closing(_mapped_blocks(f)) as blocks:
                    for first_line, data, rows, last in blocks:
                        if rows is None:
                            values.use("json")
                            _stage_lines(stage, _split_lines(data, first_line))
                        else:
                            stage.add_spans(rows)
                        # the store commits big stagings in chunks; the last block's rows
                        # go with the final one (one commit fewer in the load's serial tail)
                        if not last:
                            stage.flush()
            else:
                with stage.open() as f:
                    content = f.read()
                values.use("json")
                if encoding == "protobuf":
                    _stage_lines(stage, protobuf_lines(content, stage.path))
                else:
                    _stage_lines(stage, document_lines(stage, content))
        con.execute("DROP TABLE IF EXISTS temp.fk_otlp_bad")


def _load_settings(
    con: duckdb.DuckDBPyConnection, *, pipelined: bool
) -> AbstractContextManager[None]:
    """DuckDB settings for the load, restored after it.

    No automatic checkpoint after a chunk's commit: the store checkpoints after each chunk
    itself (1M spans without this setting: 17.2-17.4 s, with it 16.7-17.0 s). Rows
    staged in the order of the file, which the store's duplicate check relies on (the first
    occurrence is loaded). JSON columns of the span rows in Arrow typed as JSON, which DuckDB
    then reads without parsing them again.

    ``pipelined`` (threads map the blocks, see :func:`_mapped_blocks`): one DuckDB thread
    for the store while they keep the cores busy. A chunk's insert then fills each row group
    in one thread and DuckDB writes it once; with two threads, each fills part of it and
    DuckDB copies the parts together (1M spans: 15 % fewer page faults, 1-2.5 CPU-s less).
    """
    settings = {
        "checkpoint_threshold": "'1000TB'",
        "preserve_insertion_order": "true",
        "arrow_lossless_conversion": "true",
        **({"threads": "1"} if pipelined else {}),
    }
    return duckdb_settings(con, settings)


class _Values:
    """Which macro set reads attribute values: DuckDB-parsed JSON text or pyarrow structs."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.current: str | None = None

    def use(self, kind: Literal["json", "arrow"]) -> None:
        """Define the macros of ``sql/otlp_{kind}_values.sql``, then those using them."""
        if kind == self.current:
            return
        self.con.execute(_sql(f"otlp_{kind}_values.sql"))
        if kind == "json":  # the types are constants, not input
            self.con.execute(
                "CREATE OR REPLACE TEMP MACRO fk_otlp_parse(line) AS "
                f"json_transform(decode(line), '{json.dumps(REQUEST_TYPE)}')"
            )
            typed = json.dumps(dict.fromkeys(MAPPED_KEYS, "VARCHAR"))
            self.con.execute(
                f"CREATE OR REPLACE TEMP MACRO fk_otlp_typed(o) AS json_transform(o, '{typed}')"
            )
        self.con.execute(_sql("otlp_macros.sql"))
        ids = ", ".join(f"{json.dumps(key)} := a.{json.dumps(key)}" for key in RUN_ID_KEYS)
        self.con.execute(f"CREATE OR REPLACE TEMP MACRO fk_otlp_ids(a) AS struct_pack({ids})")
        self.current = kind


def _stage_lines(stage: Staging, lines: pa.Table) -> None:
    """Stage a table of request lines ``(line_no, line)`` of JSON text: bad lines, then spans."""
    con = stage.con
    con.register(_LINES, lines)
    try:
        con.execute(_sql("otlp_bad.sql"))
        con.execute(_sql("otlp_json_flat.sql"))
        stage.add_spans(con.sql(_sql("otlp_spans.sql")).to_arrow_table())
    finally:
        con.execute(f"DROP VIEW IF EXISTS {_FLAT}")
        con.unregister(_LINES)


def _mapped_blocks(
    f: io.BufferedIOBase,
) -> Generator[tuple[int, memoryview, pa.Table | None, bool]]:
    """:func:`line_blocks` with each block's span rows (:func:`map_block`), or None where
    pyarrow refuses the block, and whether it is the last block.

    Threads read, parse and map the next blocks, each with a DuckDB connection of its own,
    while the caller stages the current one and the store commits, so that every core stays
    busy.
    """
    # a block is read while the caller stages one and BLOCKS_AHEAD wait, and the one after it
    # (to know the last): two spare buffers
    blocks = _with_last(line_blocks(f, BLOCK_BYTES, ring=BLOCKS_AHEAD + 3))
    reading = threading.Lock()
    local = threading.local()
    cons: list[duckdb.DuckDBPyConnection] = []

    def prepare() -> tuple[int, memoryview, pa.Table | None, bool] | None:
        with reading:
            item = next(blocks, None)
        if item is None:
            return None
        (first_line, data), last = item
        if not hasattr(local, "con"):
            local.con = duckdb.connect()
            _map_settings(local.con)
            cons.append(local.con)
        return first_line, data, map_block(local.con, data, first_line), last

    try:
        with ThreadPoolExecutor(max_workers=PREPARING_THREADS) as pool:
            ahead = deque(pool.submit(prepare) for _ in range(BLOCKS_AHEAD))
            while (prepared := ahead.popleft().result()) is not None:
                ahead.append(pool.submit(prepare))
                yield prepared
    finally:
        for con in cons:
            con.close()


def _with_last(items: Iterator[_T]) -> Iterator[tuple[_T, bool]]:
    """Each item with whether it is the last (the next one is read first)."""
    held: list[_T] = []
    for item in items:
        if held:
            yield held.pop(), False
        held.append(item)
    if held:
        yield held.pop(), True


def _map_settings(con: duckdb.DuckDBPyConnection) -> None:
    """Make a connection of its own ready for :func:`map_block`."""
    _Values(con).use("arrow")
    con.execute("SET VARIABLE fk_otlp_unit = 'line '")
    # results in the order of their input (flat_spans needs it), JSON columns as JSON
    con.execute("SET threads = 1")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET arrow_lossless_conversion = true")


_BUILT = ("attributes", "events")
"""Columns of the span rows that :func:`flat_spans` builds whole."""
_MAP_BUILT = f"SELECT * EXCLUDE ({', '.join(_BUILT)}) FROM ({_sql('otlp_spans.sql')})"


def map_block(con: duckdb.DuckDBPyConnection, data: Bytes, first_line: int) -> pa.Table | None:
    """The span rows (for :meth:`Staging.add_spans`) of a block of request lines parsed by
    pyarrow, or None where pyarrow refuses it. ``con`` is set up by :func:`_map_settings`."""
    requests = parse_requests(data, first_line)
    if requests is None:
        return None
    flat = flat_spans(con, requests)
    con.register(_FLAT, flat)
    try:
        rows = con.sql(_MAP_BUILT).to_arrow_table()
    finally:
        con.unregister(_FLAT)
    # the JSON columns built in Arrow join as they are (one thread: rows in flat's order)
    for name in _BUILT:
        rows = rows.append_column(name, flat.column(name))
    return rows


def line_blocks(
    f: io.BufferedIOBase, block_bytes: int = BLOCK_BYTES, *, ring: int = 0
) -> Iterator[tuple[int, memoryview]]:
    """The bytes of a stream in blocks of about ``block_bytes`` of whole lines, each read
    straight into a buffer (a line longer than a block makes its block longer).

    Yields ``(number of the block's first line, bytes)``. With ``ring``, the blocks are read
    into that many buffers in turn (no new memory per block): a block's bytes then hold only
    until ``ring - 1`` more blocks are read.
    """
    first_line, carry = 1, b""
    buffers: list[bytearray] = []  # the ring, oldest first
    slack = block_bytes // 8  # room for the part line a block carries into the next
    longer = False  # the last read ended inside a line: read on into the same buffer
    while True:
        size = len(carry) + block_bytes
        if ring and (longer or len(buffers) == ring):
            if not longer:
                buffers.append(buffers.pop(0))
            if len(buffers[-1]) < size:
                buffers[-1] = bytearray(size + slack)
            data = buffers[-1]
        else:
            data = bytearray(size + slack if ring else size)
            if ring:
                buffers.append(data)
        data[: len(carry)] = carry
        filled = len(carry)
        with memoryview(data) as view:
            while filled < size and (n := f.readinto(view[filled:size])):
                filled += n
        eof = filled < size
        end = filled if eof else data.rfind(b"\n", 0, filled) + 1
        longer = not end and not eof
        if longer:  # no whole line yet: read on into a bigger buffer
            carry = bytes(data[:filled])
            continue
        carry = bytes(data[end:filled])
        if end:
            yield first_line, memoryview(data)[:end]
            first_line += count_newlines(data, end) + (data[end - 1] != 10)
        if eof:
            return


def _split_lines(data: Bytes, first_line: int) -> pa.Table:
    """Whole lines as a table ``(line_no, line)`` in record batches, without copying."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
    if data[-1:] != b"\n":
        ends = np.append(ends, len(data))
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    lines = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    line_no = pa.array(np.arange(first_line, first_line + len(ends), dtype=np.int64))
    table = pa.Table.from_arrays([line_no, lines], schema=LINES_SCHEMA)
    per_batch = max(1, len(ends) * BATCH_BYTES // len(data))
    return pa.Table.from_batches(table.to_batches(max_chunksize=per_batch))
