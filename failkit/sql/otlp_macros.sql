-- Macros that read OTLP JSON (ExportTraceServiceRequest) into failkit's span columns.
-- Created once per load (temp), used by otlp_bad.sql and otlp_spans.sql, after one of the value
-- macro sets (see below).

-- A hex id as lowercase text; base64 ids (protobuf's json_format) become hex (pitfall 1).
-- trim (of spaces) only where an end is one: it costs more than the rest together.
CREATE OR REPLACE TEMP MACRO fk_otlp_id(x) AS nullif(CASE
    WHEN ends_with(x, '=') AND length(x) IN (12, 24) THEN lower(hex(try(from_base64(x))))
    WHEN x[1] = ' ' OR x[-1] = ' ' THEN lower(trim(x))
    ELSE lower(x) END, '');

-- True for text of whitespace only (a blank line, not a record).
CREATE OR REPLACE TEMP MACRO fk_otlp_blank(text) AS
    trim(text, ' ' || chr(9) || chr(10) || chr(13)) = '';

-- Unix nanoseconds (decimal text or number) as BIGINT; 0 means unknown.
CREATE OR REPLACE TEMP MACRO fk_otlp_ns(x) AS nullif(try_cast(x AS BIGINT), 0);

-- Unix nanoseconds as a TIMESTAMP, rounded to the microsecond.
CREATE OR REPLACE TEMP MACRO fk_otlp_ts(ns) AS make_timestamp((ns + 500) // 1000);

-- ISO 8601 text of unix nanoseconds.
CREATE OR REPLACE TEMP MACRO fk_otlp_iso(ns) AS
    strftime(fk_otlp_ts(ns), '%Y-%m-%dT%H:%M:%S.%fZ');

-- Attribute lists become "key":value texts, joined into flat JSON objects (keys with dots
-- stay top-level keys). How a value becomes JSON text depends on how the request was parsed:
-- otlp_json_values.sql (DuckDB, values as JSON text) or otlp_arrow_values.sql (pyarrow, values
-- as typed structs) define, for a KeyValue list `kvs` and a value `v`:
-- fk_otlp_items(kvs, prefix): list of {k: JSON key text, v: value, f: the value's JSON when it
--   is a scalar, NULL when it needs fk_otlp_slow(v)}; fk_otlp_slow(v): JSON of any value;
-- fk_otlp_str(v): a string value; fk_otlp_first(v): JSON text of a value's first field.

-- The inside of the flat JSON object of a KeyValue list, keys in its order; NULL if empty.
CREATE OR REPLACE TEMP MACRO fk_otlp_object(kvs, prefix) AS nullif(array_to_string(
    list_transform(fk_otlp_items(kvs, prefix),
                   lambda x: x.k || ':' || coalesce(x.f, fk_otlp_slow(x.v))),
    ','), '');

-- The "otel.span.kind":name pair of an OTLP span kind (3 or "SPAN_KIND_CLIENT"); NULL for
-- an unset or unknown kind.
CREATE OR REPLACE TEMP MACRO fk_otlp_kind_pair(kind) AS '"otel.span.kind":' || to_json(
    CASE upper(kind::VARCHAR)
        WHEN '1' THEN 'internal' WHEN 'SPAN_KIND_INTERNAL' THEN 'internal'
        WHEN '2' THEN 'server' WHEN 'SPAN_KIND_SERVER' THEN 'server'
        WHEN '3' THEN 'client' WHEN 'SPAN_KIND_CLIENT' THEN 'client'
        WHEN '4' THEN 'producer' WHEN 'SPAN_KIND_PRODUCER' THEN 'producer'
        WHEN '5' THEN 'consumer' WHEN 'SPAN_KIND_CONSUMER' THEN 'consumer' END);

-- The resource.* and otel.scope.* "key":value texts a span of this resource and scope gets,
-- given the inside of the resource's object with the resource.* keys (or NULL); NULL if none.
CREATE OR REPLACE TEMP MACRO fk_otlp_scope_context(resource_pairs, scope) AS nullif(concat_ws(
    ',', resource_pairs, '"otel.scope.name":' || to_json(scope.name),
    '"otel.scope.version":' || to_json(scope.version)), '');

-- The same given the resource's KeyValue list.
CREATE OR REPLACE TEMP MACRO fk_otlp_context(resource_kvs, scope) AS
    fk_otlp_scope_context(fk_otlp_object(resource_kvs, 'resource.'), scope);

-- A span event as the JSON object {"name", "time", "attributes": {...}} given the inside of
-- its attributes object (`pairs`, NULL if none).
CREATE OR REPLACE TEMP MACRO fk_otlp_event(name, time_unix_nano, pairs) AS
    '{"name":' || coalesce(to_json(name), 'null')
    || ',"time":' || coalesce(to_json(fk_otlp_iso(fk_otlp_ns(time_unix_nano))), 'null')
    || ',"attributes":{' || coalesce(pairs, '') || '}}';

-- Span events as a JSON list of fk_otlp_event objects; NULL when there are none.
CREATE OR REPLACE TEMP MACRO fk_otlp_events(events) AS CASE WHEN len(events) > 0 THEN
    '[' || array_to_string(list_transform(events, lambda e: fk_otlp_event(
        e.name, e.timeUnixNano, fk_otlp_object(e.attributes, ''))), ',') || ']' END;

-- The string value of the first attribute named `name` in a KeyValue list.
CREATE OR REPLACE TEMP MACRO fk_otlp_get(kvs, name) AS
    fk_otlp_str(list_filter(kvs, lambda kv: kv.key = name)[1].value);

-- The string values of exception.type and exception.message among the attributes of the first
-- span event named exception (failkit/ingest/otlp_arrow.py EXCEPTION_KEYS), as a struct.
CREATE OR REPLACE TEMP MACRO fk_otlp_exception_of(kvs) AS {
    'exception.type': fk_otlp_get(kvs, 'exception.type'),
    'exception.message': fk_otlp_get(kvs, 'exception.message')};
CREATE OR REPLACE TEMP MACRO fk_otlp_exception(events) AS fk_otlp_exception_of(
    CASE WHEN len(events) > 0
         THEN list_filter(events, lambda e: e.name = 'exception')[1].attributes END);

-- OpenInference flattened messages (llm.input_messages.{i}.message.*): (index, field, value).
CREATE OR REPLACE TEMP MACRO fk_oi_items(kvs, prefix) AS list_transform(
    list_filter(kvs, lambda kv: starts_with(kv.key, prefix)),
    lambda kv: {
        'i': try_cast(split_part(substr(kv.key, length(prefix) + 1), '.', 1) AS INTEGER),
        'f': regexp_replace(substr(kv.key, length(prefix) + 1), '^[0-9]+\.(message\.)?', ''),
        'v': fk_otlp_first(kv.value)});

-- Those items as a JSON list of message objects ordered by the numeric index, so .10 comes
-- after .9 (pitfall 10); NULL when there are none.
CREATE OR REPLACE TEMP MACRO fk_oi_join(items) AS CASE WHEN len(items) > 0 THEN
    '[' || array_to_string(list_transform(
        list_sort(list_distinct(list_transform(items, lambda x: x.i))),
        lambda i: '{' || array_to_string(list_transform(list_filter(items, lambda x: x.i = i),
                                                        lambda x: to_json(x.f) || ':' || x.v),
                                         ',') || '}'),
        ',') || ']' END;

-- A span's OpenInference messages {input, output}, each a fk_oi_join list, where the span
-- has openinference.span.kind and no input.value / output.value; NULL for other spans.
-- `kvs`: its KeyValue list; `a`: the struct of the attributes the mapping reads.
CREATE OR REPLACE TEMP MACRO fk_oi_messages(kvs, a) AS CASE
    WHEN a."openinference.span.kind" IS NOT NULL THEN {
        'input': CASE WHEN a."input.value" IS NULL
                      THEN fk_oi_join(fk_oi_items(kvs, 'llm.input_messages.')) END,
        'output': CASE WHEN a."output.value" IS NULL
                       THEN fk_oi_join(fk_oi_items(kvs, 'llm.output_messages.')) END} END;

-- Text that holds JSON as it is, any other text as a JSON string (pitfall 11).
CREATE OR REPLACE TEMP MACRO fk_json_text(x) AS
    CASE WHEN json_valid(x) THEN x ELSE to_json(x) END;

-- smolagents' tool input {"args": [], "kwargs": {...}}: the kwargs; NULL for other inputs.
CREATE OR REPLACE TEMP MACRO fk_smolagents_kwargs(x) AS CASE
    WHEN json_valid(x) AND json_type(x) = 'OBJECT' AND json_exists(x, '$.kwargs')
        AND json_exists(x, '$.args') THEN (x->'$.kwargs')::VARCHAR END;

-- The first of `keys` present in a JSON object text (Langfuse usage/cost details), as text.
CREATE OR REPLACE TEMP MACRO fk_usage(details, keys) AS CASE WHEN json_valid(details) THEN
    list_filter(list_transform(keys, lambda k: details->>k), lambda x: x IS NOT NULL)[1] END;
