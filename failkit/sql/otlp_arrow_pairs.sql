-- The attributes of spans parsed by pyarrow, one row per KeyValue of fk_otlp_kvs(key, v,
-- nested, want) in order (failkit/ingest/otlp_arrow.py joins them per span, `nested` is the
-- JSON text of an array or kvlist value): pair, its "key":value JSON text;
-- slow, true when the value needed fk_otlp_slow (fk_otlp_inner puts those after the others);
-- and where `want` is true (a key the mapping reads), the value as json_transform gives it to
-- a VARCHAR from that JSON (a string as it is, anything else as JSON text).
SELECT to_json(key) || ':' || value_json AS pair, fast IS NULL AS slow,
    CASE WHEN want THEN coalesce(fk_otlp_str(v), nullif(value_json, 'null')) END AS text
FROM (
    SELECT key, v, want, fk_otlp_fast(v) AS fast, coalesce(fast, nested, fk_otlp_slow(v))::VARCHAR AS value_json
    FROM fk_otlp_kvs
);
