-- Attribute values of OTLP JSON lines parsed by pyarrow (failkit/ingest/otlp_arrow.py): each
-- KeyValue's value is a struct of typed fields (stringValue, intValue as text, doubleValue,
-- boolValue, bytesValue, arrayValue and kvlistValue of scalars). The same macro set as
-- otlp_json_values.sql, giving the same JSON texts.

-- The request is parsed already.
CREATE OR REPLACE TEMP MACRO fk_otlp_parse(line) AS line;

-- JSON text of a scalar value; NULL for arrays, kvlists, bytes, empty values and integers not
-- written as plain decimals.
CREATE OR REPLACE TEMP MACRO fk_otlp_fast(v) AS CASE
    WHEN v.stringValue IS NOT NULL THEN to_json(v.stringValue)
    WHEN v.intValue IS NOT NULL THEN
        CASE WHEN try_cast(v.intValue AS HUGEINT)::VARCHAR = v.intValue THEN v.intValue END
    WHEN v.doubleValue IS NOT NULL THEN to_json(v.doubleValue)
    WHEN v.boolValue IS NOT NULL THEN to_json(v.boolValue) END;

-- Each KeyValue as {k: JSON key text (`prefix` before the key), v: the value, f: its JSON
-- when fk_otlp_fast gives it}.
CREATE OR REPLACE TEMP MACRO fk_otlp_items(kvs, prefix) AS list_transform(kvs, lambda kv: {
    'k': to_json(prefix || kv.key), 'v': kv.value, 'f': fk_otlp_fast(kv.value)});

-- JSON text of a scalar inside an array or kvlist.
CREATE OR REPLACE TEMP MACRO fk_otlp_element(e) AS coalesce(
    try_cast(e.intValue AS HUGEINT)::VARCHAR, to_json(e.stringValue), to_json(e.intValue),
    to_json(e.doubleValue), to_json(e.boolValue), to_json(e.bytesValue), 'null');

-- JSON text of a value fk_otlp_fast leaves: arrays as JSON arrays, kvlists as JSON objects
-- (without "values": empty), the others as fk_otlp_scalar_slow gives them.
CREATE OR REPLACE TEMP MACRO fk_otlp_slow(v) AS CASE
    WHEN v.arrayValue IS NOT NULL THEN '[' || coalesce(array_to_string(list_transform(
        v.arrayValue."values", lambda e: fk_otlp_element(e)), ','), '') || ']'
    WHEN v.kvlistValue IS NOT NULL THEN '{' || coalesce(array_to_string(list_transform(
        v.kvlistValue."values", lambda e: to_json(e.key) || ':' || fk_otlp_element(e.value)),
        ','), '') || '}'
    ELSE fk_otlp_scalar_slow(v) END;

-- JSON text of a scalar value fk_otlp_fast leaves: bytes as their base64 string, integers
-- exactly (text that is no integer as a string), an empty value as null.
CREATE OR REPLACE TEMP MACRO fk_otlp_scalar_slow(v) AS CASE
    WHEN v.bytesValue IS NOT NULL THEN to_json(v.bytesValue)
    WHEN v.intValue IS NOT NULL THEN
        coalesce(try_cast(v.intValue AS HUGEINT)::VARCHAR, to_json(v.intValue))
    ELSE 'null' END;

-- The string value of an attribute value; NULL for other kinds.
CREATE OR REPLACE TEMP MACRO fk_otlp_str(v) AS v.stringValue;

-- JSON text of an attribute value's first field (a string's JSON, an integer's text as a
-- string, as in otlp_json_values.sql).
CREATE OR REPLACE TEMP MACRO fk_otlp_first(v) AS coalesce(
    to_json(v.stringValue), to_json(v.intValue), to_json(v.doubleValue), to_json(v.boolValue),
    to_json(v.bytesValue), fk_otlp_slow(v));
