-- The attributes of spans parsed by pyarrow, one row per KeyValue of fk_otlp_kvs(key, want,
-- open, close, nested, and the value's scalar fields stringValue, intValue, doubleValue,
-- boolValue, bytesValue) in order (`nested` is the JSON text of an array or kvlist value):
-- pair, its "key":value JSON text, after '{' where `open` is true and ',' where it is false,
-- and before `close` (failkit/ingest/otlp_arrow.py lays a span's pairs out as its object's
-- text this way); and where `want` is true (a key the mapping reads) and the value is no
-- string, the value as json_transform gives it to a VARCHAR from that JSON (the strings are
-- taken as they are, in Arrow).
SELECT CASE WHEN key IS NOT NULL THEN concat(
        CASE open WHEN true THEN '{' WHEN false THEN ',' END, to_json(key), ':', value_json, close
    ) END AS pair,
    CASE WHEN want AND v.stringValue IS NULL THEN nullif(value_json, 'null') END AS text
FROM (
    SELECT key, want, open, close, v,
        coalesce(fk_otlp_fast(v), nested, fk_otlp_scalar_slow(v))::VARCHAR AS value_json
    FROM (
        SELECT key, want, open, close, nested, {'stringValue': stringValue,
            'intValue': intValue, 'doubleValue': doubleValue, 'boolValue': boolValue,
            'bytesValue': bytesValue} AS v
        FROM fk_otlp_kvs
    )
);
