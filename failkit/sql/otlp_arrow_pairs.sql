-- The attributes of spans parsed by pyarrow, one row per KeyValue of fk_otlp_kvs(key, want,
-- nested, and the value's scalar fields stringValue, intValue, doubleValue, boolValue,
-- bytesValue) in order (failkit/ingest/otlp_arrow.py joins them per span; `nested` is the JSON
-- text of an array or kvlist value): pair, its "key":value JSON text; slow, true when the
-- value needed fk_otlp_slow (fk_otlp_inner puts those after the others); and where `want` is
-- true (a key the mapping reads) and the value is no string, the value as json_transform
-- gives it to a VARCHAR from that JSON (the strings are taken as they are, in Arrow).
SELECT to_json(key) || ':' || value_json AS pair, fast IS NULL AS slow,
    CASE WHEN want AND v.stringValue IS NULL THEN nullif(value_json, 'null') END AS text
FROM (
    SELECT key, want, v, fk_otlp_fast(v) AS fast,
        coalesce(fast, nested, fk_otlp_scalar_slow(v))::VARCHAR AS value_json
    FROM (
        SELECT key, want, nested, {'stringValue': stringValue, 'intValue': intValue,
            'doubleValue': doubleValue, 'boolValue': boolValue, 'bytesValue': bytesValue} AS v
        FROM fk_otlp_kvs
    )
);
