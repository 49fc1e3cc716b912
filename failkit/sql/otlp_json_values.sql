-- Attribute values of OTLP JSON parsed by DuckDB (failkit/ingest/otlp.py): each KeyValue's
-- value stays compact JSON text ({"stringValue":"x"}). The macros otlp_macros.sql expects of a
-- value set: fk_otlp_parse, fk_otlp_items, fk_otlp_slow, fk_otlp_str, fk_otlp_first.
-- failkit/ingest/otlp.py adds fk_otlp_parse(line), the request with its explicit type.

-- Scalars are cut out of that text without parsing; only arrays, kvlists, bytes and odd
-- integers are parsed.

-- Where a scalar starts in a value's text; NULL for arrays, kvlists, bytes, empty values.
CREATE OR REPLACE TEMP MACRO fk_otlp_at(v) AS CASE
    WHEN starts_with(v, '{"stringValue":') THEN 16
    WHEN starts_with(v, '{"intValue":"') THEN 14
    WHEN starts_with(v, '{"intValue":') THEN 13
    WHEN starts_with(v, '{"doubleValue":') THEN 16
    WHEN starts_with(v, '{"boolValue":') THEN 14 END;

-- Each KeyValue as {k: JSON key text (`prefix` before the key), v: value text, f: the value's
-- JSON cut out of v (an int64 without its quotes), NULL when v needs parsing (not a scalar,
-- or an integer not written as a plain decimal)}.
CREATE OR REPLACE TEMP MACRO fk_otlp_items(kvs, prefix) AS list_transform(
    list_transform(kvs, lambda kv: {
        'k': to_json(prefix || kv.key), 'v': kv.value,
        'c': substr(kv.value, fk_otlp_at(kv.value), length(kv.value) - fk_otlp_at(kv.value)
                    - starts_with(kv.value, '{"intValue":"')::INTEGER),
        'i': starts_with(kv.value, '{"intValue":')}),
    lambda x: {'k': x.k, 'v': x.v, 'f': CASE
        WHEN x.i AND try_cast(x.c AS HUGEINT)::VARCHAR IS DISTINCT FROM x.c THEN NULL
        ELSE x.c END});

-- JSON text of a value inside an array or kvlist: scalars as JSON, arrays and kvlists kept
-- as OTLP JSON.
CREATE OR REPLACE TEMP MACRO fk_otlp_element(e) AS coalesce(
    try_cast(e->>'$.intValue' AS HUGEINT)::VARCHAR,
    CASE WHEN starts_with(e, '{"arrayValue":') OR starts_with(e, '{"kvlistValue":') THEN e END,
    json_extract(e, '$.*')[1]::VARCHAR, 'null');

-- JSON text of a value that needs parsing: arrays as JSON arrays and kvlists as JSON objects
-- of their scalars' JSON (values nested deeper stay OTLP JSON; without "values", empty),
-- bytes as their base64 string, integers exactly (never through a double, pitfall 2; text
-- that is no integer as a string).
CREATE OR REPLACE TEMP MACRO fk_otlp_slow(v) AS CASE
    WHEN starts_with(v, '{"arrayValue":') THEN '[' || coalesce(array_to_string(list_transform(
        json_transform(v, '{"arrayValue": {"values": ["JSON"]}}').arrayValue."values",
        lambda e: fk_otlp_element(e)), ','), '') || ']'
    WHEN starts_with(v, '{"kvlistValue":') THEN '{' || coalesce(array_to_string(list_transform(
        json_transform(v, '{"kvlistValue": {"values": [{"key": "VARCHAR", "value": "JSON"}]}}')
            .kvlistValue."values",
        lambda e: to_json(e.key) || ':' || fk_otlp_element(e.value)), ','), '') || '}'
    WHEN starts_with(v, '{"bytesValue":') THEN substr(v, 15, length(v) - 15)
    WHEN starts_with(v, '{"intValue":') THEN coalesce(
        try_cast(v->>'$.intValue' AS HUGEINT)::VARCHAR, to_json(v->>'$.intValue'))
    ELSE 'null' END;

-- The string value of an attribute value; NULL for other kinds.
CREATE OR REPLACE TEMP MACRO fk_otlp_str(v) AS v->>'$.stringValue';

-- JSON text of an attribute value's first field (a string's JSON, a number, OTLP JSON of an
-- array).
CREATE OR REPLACE TEMP MACRO fk_otlp_first(v) AS coalesce(json_extract(v, '$.*')[1], v)::VARCHAR;
