-- Lines of fk_otlp_lines(line_no BIGINT, line BLOB) that otlp_spans.sql skips, kept in
-- fk_otlp_bad: blank lines (not records) and lines that are not OTLP requests, which are
-- quarantined with the reason.

CREATE OR REPLACE TEMP TABLE fk_otlp_bad AS
SELECT line_no, problem, CASE WHEN problem IS NOT NULL THEN left(text, 2000) END AS raw
FROM (
    SELECT line_no, coalesce(text, line::VARCHAR) AS text, CASE
        WHEN text IS NULL THEN 'line is not valid UTF-8 text: re-export the file as UTF-8'
        WHEN fk_otlp_blank(text) THEN NULL
        WHEN NOT json_valid(text) THEN 'line is not valid JSON (cut short, a missing quote or '
            || 'brace, or not JSON at all): fix or drop the line'
        ELSE 'line holds no "resourceSpans" list: each line must be one OTLP '
            || 'ExportTraceServiceRequest object'
        END AS problem
    FROM (SELECT line_no, line, try(decode(line)) AS text FROM fk_otlp_lines)
    WHERE text IS NULL OR try(json_type(text, '$.resourceSpans')) IS DISTINCT FROM 'ARRAY'
);

INSERT INTO stage_quarantine
SELECT getvariable('fk_otlp_unit') || line_no, problem, raw
FROM fk_otlp_bad WHERE problem IS NOT NULL;
