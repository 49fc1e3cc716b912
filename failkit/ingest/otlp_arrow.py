"""OTLP JSON lines parsed by pyarrow's JSON reader, the fast path of :mod:`failkit.ingest.otlp`.

pyarrow reads a block of request lines with an explicit schema of the fields the mapping uses
(:data:`REQUEST_SCHEMA`), in the calling thread, into a nested table (:func:`parse_requests`).
:func:`flat_spans` unnests it into one row per span with Arrow kernels; DuckDB writes each
attribute as its JSON text (``sql/otlp_arrow_pairs.sql`` with ``sql/otlp_arrow_values.sql``),
vectorized, laid out so that each span's attributes object is a view of that text, not a copy;
no JSON is parsed again and no lambda runs per span. ``sql/otlp_spans.sql`` maps the rows.
The schema is strict where the mapping needs it: a block pyarrow refuses, or that does not
come out as exactly one request per line, is left to the careful DuckDB path, which
quarantines bad lines with their reason. pyarrow refuses, among others, int64 written as JSON
numbers (the JS exporter), enum names, attribute arrays holding arrays or kvlists, and invalid
UTF-8 or JSON.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from importlib import resources

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from failkit.ingest.base import RUN_ID_KEYS
from failkit.ingest.lines import SCAN_BYTES

Bytes = bytes | bytearray | memoryview
"""A block of request lines."""
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

_PARSE = pj.ParseOptions(explicit_schema=REQUEST_SCHEMA, unexpected_field_behavior="ignore")
_MAX_PARSE_BLOCK = (1 << 31) - 1  # pyarrow's limit


def parse_requests(data: Bytes, first_line: int) -> pa.Table | None:
    """Whole request lines as a table ``(line_no, line)``, ``line`` the parsed request.

    None when pyarrow refuses the block or it holds a blank line or a line that is not exactly
    one request with a ``resourceSpans`` list: the caller then reads it the careful way.
    """
    text = np.frombuffer(data, dtype=np.uint8)
    starts = _line_starts(text)
    lines = len(starts) + 1
    # every line starts a request: no blank lines, so that rows and lines pair up
    if text[0] != ord("{") or not (text[starts] == ord("{")).all() or not _is_utf8(data):
        return None
    # one block, parsed in the calling thread: the callers are threads already, and a table of
    # one chunk needs no copy to become one array
    options = pj.ReadOptions(block_size=min(len(data) + 1, _MAX_PARSE_BLOCK), use_threads=False)
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=options, parse_options=_PARSE)
    except pa.ArrowInvalid:
        return None
    requests = table.column("resourceSpans")
    if table.num_rows != lines or requests.null_count:
        return None
    parsed = table.to_struct_array()
    numbers = pa.array(np.arange(first_line, first_line + lines, dtype=np.int64))
    offsets = np.cumsum([0, *(len(c) for c in parsed.chunks)])
    line_no = pa.chunked_array([numbers[a:b] for a, b in itertools.pairwise(offsets)], pa.int64())
    return pa.Table.from_arrays([line_no, parsed], names=["line_no", "line"])


def _line_starts(text: np.ndarray) -> np.ndarray:
    """Where every line but the first starts, found a slice of :data:`SCAN_BYTES` at a time."""
    text = text[:-1]
    return np.concatenate(
        [
            np.flatnonzero(text[at : at + SCAN_BYTES] == 10) + at + 1
            for at in range(0, len(text), SCAN_BYTES)
        ]
        or [np.empty(0, np.int64)]
    )


def _is_utf8(data: Bytes) -> bool:
    """True when the bytes are valid UTF-8 (which pyarrow's JSON reader does not check)."""
    offsets = pa.py_buffer(np.array([0, len(data)], np.int64))
    text = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        text.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


MAPPED_KEYS = (
    "failkit.span.kind", "gen_ai.operation.name", "openinference.span.kind",
    "langfuse.observation.type", "gen_ai.response.model", "gen_ai.request.model",
    "llm.model_name", "langfuse.observation.model.name", "gen_ai.provider.name",
    "gen_ai.system", "llm.provider", "llm.system", "gen_ai.tool.name", "tool.name",
    "gen_ai.tool.call.id", "tool.id", "langfuse.observation.metadata.tool_call_id",
    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.input.messages",
    "gen_ai.output.messages", "input.value", "output.value", "langfuse.observation.input",
    "langfuse.observation.output", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.prompt",
    "llm.token_count.completion", "langfuse.observation.usage_details", "llm.cost.total",
    "langfuse.observation.cost_details", "failkit.cost_usd", "failkit.confidence", "error.type",
    "langfuse.observation.level", "langfuse.observation.status_message", *RUN_ID_KEYS,
)  # fmt: skip
"""The attributes ``sql/otlp_spans.sql`` reads (column ``a``: each a VARCHAR)."""

EXCEPTION_KEYS = ("exception.type", "exception.message")
"""The attributes of a span's exception event ``sql/otlp_spans.sql`` reads (column ``exc``)."""

_SPAN_FIELDS = [f.name for f in _SPAN if f.name not in ("attributes", "events")]
_SCALAR_FIELDS = [name for name, _ in _SCALAR[:5]]
_KEY_SET = pa.array(MAPPED_KEYS)
_EXCEPTION_KEY_SET = pa.array(EXCEPTION_KEYS)
_OI_KIND = MAPPED_KEYS.index("openinference.span.kind")
_OI_MESSAGES = pa.struct([("input", _TEXT), ("output", _TEXT)])
_PAIRS_SQL = resources.files("failkit.sql").joinpath("otlp_arrow_pairs.sql").read_text()
_BATCH_ROWS = 1 << 16  # rows per record batch DuckDB scans (its threads take batches)
_ONE_CHUNK = 1 << 30  # rows per record batch of a query's result
_INLINE = 12  # the longest text a string view holds itself
_VIEW = np.dtype((np.void, 16))  # a string view


def flat_spans(con: duckdb.DuckDBPyConnection, requests: pa.Table) -> pa.Table:
    """The spans of :func:`parse_requests`' table as the rows of ``fk_otlp_flat``.

    Columns as ``sql/otlp_spans.sql`` describes them. Needs the macros of
    ``sql/otlp_arrow_values.sql`` and ``sql/otlp_macros.sql`` on ``con``.
    """
    line = _array(requests.column("line"))
    res, res_line, r = _unnest(pc.struct_field(line, "resourceSpans"))
    scopes, scope_res, c = _unnest(pc.struct_field(res, "scopeSpans"))
    spans, span_scope, k = _unnest(pc.struct_field(scopes, "spans"))
    n = len(spans)
    kvs = pc.struct_field(spans, "attributes")
    events, event_span, _ = _unnest(pc.struct_field(spans, "events"))
    # the pairs of the resources (resource.* keys) and of the events
    res_items, item_res, _ = _unnest(
        pc.struct_field(pc.struct_field(res, "resource"), "attributes")
    )
    event_items, item_event, _ = _unnest(pc.struct_field(events, "attributes"))
    res_key = pc.binary_join_element_wise("resource.", pc.struct_field(res_items, "key"), "")
    pairs = _pairs(
        con, [res_key, pc.struct_field(event_items, "key")], [res_items, event_items]
    ).column("pair")
    res_object = _join(pairs.slice(0, len(res_items)), item_res, len(res))
    event_objects = _query(
        con,
        "SELECT fk_otlp_event(name, time, pairs) FROM fk_otlp_events",
        "fk_otlp_events",
        pa.table(
            {
                "name": pc.struct_field(events, "name"),
                "time": pc.struct_field(events, "timeUnixNano"),
                "pairs": _join(pairs.slice(len(res_items)), item_event, len(events)),
            }
        ),
    ).column(0)
    # each span's object: its own pairs, then those of its resource and scope, otel.span.kind
    items, item_span, _ = _unnest(kvs)
    key = pc.struct_field(items, "key")
    if key.null_count:  # a KeyValue without a key is no attribute
        keyed = key.is_valid()
        items, item_span = items.filter(keyed), item_span[keyed.to_numpy(zero_copy_only=False)]
        key = pc.struct_field(items, "key")
    want = pc.index_in(key, _KEY_SET)
    scope_pairs = res_object.take(scope_res)
    context, span_context = _span_context(con, spans, scope_pairs, scopes, span_scope)
    attributes, texts = _span_objects(con, items, key, want, item_span, context, span_context)
    typed = _first_per_span(
        MAPPED_KEYS, pc.struct_field(pc.struct_field(items, "value"), "stringValue"), texts,
        want, item_span, n,
    )  # fmt: skip
    span = pa.StructArray.from_arrays(
        [pc.struct_field(spans, name) for name in _SPAN_FIELDS],
        names=_SPAN_FIELDS,
        mask=spans.is_null(),
    )
    span_events = _join(event_objects, event_span, n)
    flat = pa.table(
        {
            "line_no": _array(requests.column("line_no")).take(res_line[scope_res[span_scope]]),
            "r": r[scope_res[span_scope]],
            "c": c[span_scope],
            "k": k,
            "s": span,
            "attributes": _json(attributes),
            "a": typed,
            "oi": _oi_messages(con, kvs, typed),
            "exc": _exception(events, event_span, event_items, item_event, n),
            "events": _json(pc.binary_join_element_wise("[", span_events, "]", "")),
        }
    )
    return _batched(flat)


def _pairs(
    con: duckdb.DuckDBPyConnection,
    keys: list[pa.Array],
    items: list[pa.Array],
    want: pa.Array | None = None,
    opens: pa.Array | None = None,
    closes: pa.Array | None = None,
) -> pa.Table:
    """``sql/otlp_arrow_pairs.sql`` over KeyValues (``items``, in parts), their keys
    ``keys`` and the columns ``want``, ``open`` and ``close`` (NULL when not given)."""
    values = [pc.struct_field(part, "value") for part in items]
    n = sum(len(part) for part in items)
    table = pa.table(
        {
            "key": pa.chunked_array(keys, _TEXT),
            "want": want if want is not None else pa.nulls(n, pa.bool_()),
            "open": opens if opens is not None else pa.nulls(n, pa.bool_()),
            "close": closes if closes is not None else pa.nulls(n, _TEXT),
            "nested": pa.chunked_array([_nested_json(con, part) for part in values], _TEXT),
            **{
                field: pa.chunked_array([pc.struct_field(part, field) for part in values])
                for field in _SCALAR_FIELDS
            },
        }
    )
    return _query(con, _PAIRS_SQL, "fk_otlp_kvs", table)


def _span_context(
    con: duckdb.DuckDBPyConnection,
    spans: pa.Array,
    resource_pairs: pa.Array,
    scopes: pa.Array,
    span_scope: np.ndarray,
) -> tuple[pa.Array, np.ndarray]:
    """The pairs a span's object gets after its own, joined (``""`` for none): those of its
    resource (``resource_pairs``, one per scope) and scope, and its kind's. Returns each
    distinct text and which one each span gets."""
    kinds = pc.struct_field(spans, "kind")
    kind_values = pc.unique(kinds)
    per_scope = max(len(kind_values), 1)
    kind = pc.index_in(kinds, kind_values).to_numpy(zero_copy_only=False)
    distinct, of_span = np.unique(span_scope * per_scope + kind, return_inverse=True)
    scope = distinct // per_scope
    texts = _query(
        con,
        "SELECT concat_ws(',', fk_otlp_scope_context(pairs, scope), fk_otlp_kind_pair(kind)) "
        "FROM fk_otlp_contexts",
        "fk_otlp_contexts",
        pa.table(
            {
                "pairs": resource_pairs.take(scope),
                "scope": pc.struct_field(scopes, "scope").take(scope),
                "kind": kind_values.take(distinct % per_scope),
            }
        ),
    ).column(0)
    return _array(texts), of_span


def _span_objects(
    con: duckdb.DuckDBPyConnection,
    items: pa.Array,
    key: pa.Array,
    want: pa.Array,
    item_span: np.ndarray,
    context: pa.Array,
    span_context: np.ndarray,
) -> tuple[pa.Array, pa.ChunkedArray]:
    """Each span's attributes object as JSON text, and the ``text`` of its KeyValues
    (``items``, each with a key; ``want``: see :func:`_pairs`).

    The pairs query writes a span's pairs as the pieces of its object, in order: ``{`` before
    the first, ``,`` before the others, the rest of the object after the last (``,`` and its
    ``context``, ``}``). The objects are then views of the query's text, without a copy; the
    spans without a KeyValue get ``{context}``.
    """
    n = len(span_context)
    counts = np.bincount(item_span, minlength=n)
    has = counts > 0
    starts = (np.cumsum(counts) - counts)[has]
    opens = np.zeros(len(items), bool)
    opens[starts] = True
    closes = np.full(len(items), -1, np.int32)
    closes[np.cumsum(counts)[has] - 1] = span_context[has]
    ends = pc.if_else(
        pc.equal(context, ""), "}", pc.binary_join_element_wise(",", context, "}", "")
    )
    pairs = _pairs(
        con, [key], [items], want.is_valid(), pa.array(opens),
        pa.DictionaryArray.from_arrays(pa.array(closes, mask=closes < 0), ends),
    )  # fmt: skip
    pair = _array(pairs.column("pair"))
    _, offsets, text = pair.buffers()
    bounds = np.frombuffer(offsets, np.int32, len(pair) + 1, pair.offset * 4)
    objects = pa.Array.from_buffers(
        _TEXT, int(has.sum()), [None, pa.py_buffer(bounds[np.append(starts, len(pair))]), text]
    )
    if not has.all():
        bare = pc.binary_join_element_wise("{", context.take(span_context[~has]), "}", "")
        at = np.empty(n, np.int64)
        at[has], at[~has] = np.arange(len(objects)), len(objects) + np.arange(len(bare))
        objects = pa.concat_arrays([objects, bare]).take(at)
    return objects, pairs.column("text")


def _oi_messages(con: duckdb.DuckDBPyConnection, kvs: pa.Array, typed: pa.StructArray) -> pa.Array:
    """Each span's OpenInference messages (``fk_oi_messages``), from a query over the spans
    with ``openinference.span.kind`` only (none: no query, whose planning costs more than
    mapping the block's spans)."""
    oi = np.flatnonzero(typed.field(_OI_KIND).is_valid().to_numpy(zero_copy_only=False))
    if not len(oi):
        return pa.nulls(len(kvs), _OI_MESSAGES)
    messages = _query(
        con, "SELECT fk_oi_messages(kvs, a) FROM fk_otlp_oi", "fk_otlp_oi",
        pa.table({"kvs": kvs.take(oi), "a": _take_struct(typed, oi)}),
    ).column(0)  # fmt: skip
    return _spread(messages, oi, len(kvs))


def _take_struct(values: pa.StructArray, rows: np.ndarray) -> pa.StructArray:
    """``values.take(rows)`` for a struct of texts, string views among them."""
    fields = [values.field(i) for i in range(values.type.num_fields)]
    return pa.StructArray.from_arrays(
        [_Views(f).take(rows) if f.type == pa.string_view() else f.take(rows) for f in fields],
        names=[f.name for f in values.type],
    )


def _nested_json(con: duckdb.DuckDBPyConnection, values: pa.Array) -> pa.Array:
    """JSON text of the array and kvlist values (NULL for others), as fk_otlp_slow gives it:
    their elements' JSON from one flat query, joined here (no lambda per value)."""
    array, kvlist = (pc.struct_field(values, f) for f in ("arrayValue", "kvlistValue"))
    nested = np.flatnonzero(pc.or_(array.is_valid(), kvlist.is_valid()).to_numpy(False))
    if not len(nested):
        return pa.nulls(len(values), _TEXT)
    array, kvlist = array.take(nested), kvlist.take(nested)
    elements, element_of, _ = _unnest(pc.struct_field(array, "values"))
    entries, entry_of, _ = _unnest(pc.struct_field(kvlist, "values"))
    texts = _query(
        con,
        "SELECT CASE WHEN is_kv THEN to_json(key) || ':' ELSE '' END || fk_otlp_element(value) "
        "FROM fk_otlp_elements",
        "fk_otlp_elements",
        pa.table(
            {
                "key": pa.chunked_array(
                    [pa.nulls(len(elements), _TEXT), pc.struct_field(entries, "key")]
                ),
                "value": pa.chunked_array([elements, pc.struct_field(entries, "value")]),
                "is_kv": pa.array(np.arange(len(elements) + len(entries)) >= len(elements)),
            }
        ),
    ).column(0)
    arrays = _join(texts.slice(0, len(elements)), element_of, len(nested))
    kvlists = _join(texts.slice(len(elements)), entry_of, len(nested))
    text = pc.if_else(
        array.is_valid(),
        pc.binary_join_element_wise("[", pc.fill_null(arrays, ""), "]", ""),
        pc.binary_join_element_wise("{", pc.fill_null(kvlists, ""), "}", ""),
    )
    return _spread(text, nested, len(values))


def _spread(values: pa.Array | pa.ChunkedArray, rows: np.ndarray, n: int) -> pa.Array:
    """An array of ``n`` with ``values[j]`` at ``rows[j]``, NULL elsewhere."""
    at = np.full(n, -1)
    at[rows] = np.arange(len(rows))
    return _array(values).take(pa.array(at, mask=at < 0))


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The values as one array (a chunked array of one chunk as it is: combining copies)."""
    if isinstance(values, pa.Array):
        return values
    return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()


def _json(text: pa.Array) -> pa.Array:
    """Text failkit built as JSON, typed so that DuckDB reads it as JSON without parsing it."""
    return pa.ExtensionArray.from_storage(pa.json_(), text)


def _batched(table: pa.Table) -> pa.Table:
    """The table in record batches that DuckDB's threads scan in parallel."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=_BATCH_ROWS), table.schema)


def _unnest(lists: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """The elements of a list array, the index of each one's list, and its 1-based place."""
    values = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy()
    counts = np.bincount(parent, minlength=len(lists))
    first = np.cumsum(counts) - counts
    return values, parent, np.arange(1, len(values) + 1) - first[parent]


def _query(con: duckdb.DuckDBPyConnection, sql: str, name: str, table: pa.Table) -> pa.Table:
    """A query over an Arrow table registered as ``name``, in DuckDB's threads, rows in order,
    as one chunk (arrays are used as they are, not copied into one)."""
    con.register(name, _batched(table))
    try:
        return con.sql(sql).to_arrow_table(_ONE_CHUNK)
    finally:
        con.unregister(name)


def _join(texts: pa.Array | pa.ChunkedArray, owner: np.ndarray, n: int) -> pa.Array:
    """For each of ``n`` owners, its non-null texts joined with commas, NULL if it has none:
    ``texts[j]`` belongs to ``owner[j]``, owners in order."""
    values = _array(texts)
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    if not valid.all():
        values, owner = values.filter(valid), owner[valid]
    counts = np.bincount(owner, minlength=n)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32())
    return pc.binary_join(
        pa.ListArray.from_arrays(offsets, values, mask=pa.array(counts == 0)), ","
    )


def _first_per_span(
    names: Sequence[str],
    strings: pa.Array,
    others: pa.ChunkedArray | None,
    key_ix: pa.Array,
    span: np.ndarray,
    n: int,
) -> pa.StructArray:
    """The struct of the keys ``names``: each key's first value in each of ``n`` spans as
    text (``strings``, else ``others``), a string view of it; ``key_ix`` is a KeyValue's
    place in ``names`` (NULL for the KeyValues to skip), ``span`` its span's (in order)."""
    rows = np.flatnonzero(key_ix.is_valid().to_numpy(zero_copy_only=False))
    keys = pc.fill_null(key_ix, 0).to_numpy()[rows]
    texts = _Views(strings, None if others is None else _array(others))
    columns = [pa.nulls(n, _TEXT)] * len(names)
    for key in np.unique(keys):  # a loop over the keys present, not over spans
        mine = rows[keys == key]
        owner = span[mine]
        at = np.flatnonzero(np.diff(owner, prepend=-1))
        first = np.full(n, -1)
        first[owner[at]] = mine[at]
        columns[key] = texts.take(first)
    return pa.StructArray.from_arrays(columns, names=list(names))


class _Views:
    """Texts as Arrow string views into the arrays that hold them: taking some of them
    copies 16 bytes per text, not the text (pyarrow's ``take`` copies, and has no kernel for
    views)."""

    def __init__(self, first: pa.Array, second: pa.Array | None = None) -> None:
        """The values of ``first``, where NULL those of ``second``."""
        self.views, self.valid, self.buffers = self._of(first)
        if second is not None and second.null_count < len(second):
            views, valid, buffers = self._of(second)
            fields = views.view(np.int32).reshape(-1, 4)  # length, prefix, buffer, offset
            fields[fields[:, 0] > _INLINE, 2] += len(self.buffers)
            use = valid & ~self.valid
            self.views[use] = views[use]
            self.valid, self.buffers = self.valid | use, self.buffers + buffers

    @staticmethod
    def _of(texts: pa.Array) -> tuple[np.ndarray, np.ndarray, list[pa.Buffer]]:
        """(the views, as 16-byte items; which are valid; the data buffers they point into)."""
        views = texts.cast(pa.string_view())  # the data stay where they are
        items = np.frombuffer(views.buffers()[1], _VIEW)[views.offset : views.offset + len(views)]
        valid = views.is_valid().to_numpy(zero_copy_only=False)
        return items.copy(), valid, views.buffers()[2:]

    def take(self, rows: np.ndarray) -> pa.Array:
        """The texts at ``rows`` (-1: NULL) as a string view array."""
        at = np.maximum(rows, 0)
        valid = self.valid[at] & (rows >= 0)
        views = self.views[at]
        views.view(np.int64)[np.repeat(~valid, 2)] = 0
        return pa.Array.from_buffers(
            pa.string_view(),
            len(rows),
            [pa.array(valid).buffers()[1], pa.py_buffer(views), *self.buffers],
        )


def _exception(
    events: pa.Array, event_span: np.ndarray, items: pa.Array, item_event: np.ndarray, n: int
) -> pa.StructArray:
    """For each of ``n`` spans, the string values of :data:`EXCEPTION_KEYS` in its first event
    named ``exception`` (as ``fk_otlp_exception``); ``items`` are the events' KeyValues."""
    named = pc.equal(pc.struct_field(events, "name"), "exception")
    exceptions = np.flatnonzero(pc.fill_null(named, False).to_numpy(zero_copy_only=False))
    first = np.zeros(len(events), bool)  # each span's first exception event
    first[exceptions[np.flatnonzero(np.diff(event_span[exceptions], prepend=-1))]] = True
    key_ix = pc.index_in(pc.struct_field(items, "key"), _EXCEPTION_KEY_SET)
    key_ix = pc.if_else(pa.array(first[item_event]), key_ix, pa.scalar(None, key_ix.type))
    strings = pc.struct_field(pc.struct_field(items, "value"), "stringValue")
    return _first_per_span(EXCEPTION_KEYS, strings, None, key_ix, event_span[item_event], n)
