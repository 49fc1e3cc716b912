-- The spans of OTLP request lines fk_otlp_lines(line_no BIGINT, line BLOB) read by DuckDB
-- (otlp_json_values.sql), skipping the blank and bad lines in fk_otlp_bad (otlp_bad.sql), as
-- the view fk_otlp_flat that otlp_spans.sql maps. failkit/ingest/otlp_arrow.py builds the same
-- columns from requests parsed by pyarrow.

CREATE OR REPLACE TEMP VIEW fk_otlp_flat AS
WITH requests AS (
    SELECT line_no, fk_otlp_parse(line) AS j
    FROM fk_otlp_lines ANTI JOIN fk_otlp_bad USING (line_no)
),
resources AS (
    SELECT line_no, generate_subscripts(j.resourceSpans, 1) AS r,
        unnest(list_transform(j.resourceSpans, lambda x: x.resource.attributes)) AS resource,
        unnest(list_transform(j.resourceSpans, lambda x: x.scopeSpans)) AS scope_spans
    FROM requests
),
scopes AS (
    SELECT line_no, r, resource, generate_subscripts(scope_spans, 1) AS c,
        unnest(scope_spans) AS ss
    FROM resources
),
flat AS (
    SELECT line_no, r, c, fk_otlp_context(resource, ss.scope) AS context,
           generate_subscripts(ss.spans, 1) AS k, unnest(ss.spans) AS s
    FROM scopes
),
objs AS (
    SELECT line_no, r, c, k, s,
        '{' || concat_ws(',', fk_otlp_object(s.attributes, ''), context,
                         fk_otlp_kind_pair(s.kind)) || '}' AS attributes
    FROM flat
),
typed AS (
    SELECT line_no, r, c, k, s, attributes, fk_otlp_typed(attributes) AS a FROM objs
)
SELECT line_no, r, c, k, s, attributes, a, fk_oi_messages(s.attributes, a) AS oi,
    fk_otlp_exception(s.events) AS exc, fk_otlp_events(s.events) AS events
FROM typed;
