-- Staged rows that cannot be loaded, with the first reason that applies.
-- Runs inside the load's transaction; reads fk_staged_spans (the staged spans numbered by rid)
-- / stage_labels / stage_traces and the already-loaded spans. Writes stage_rejects(tbl, rid,
-- reason).
CREATE OR REPLACE TEMP TABLE stage_rejects AS
WITH firsts AS (
    -- the first occurrence of each id staged more than once
    SELECT trace_id, span_id, min(rid) AS first_rid
    FROM fk_staged_spans GROUP BY trace_id, span_id HAVING count(*) > 1
),
-- spans already stored with an id staged now: by an earlier file, or by an earlier flush of
-- this load (getvariable('fk_ingest_id')) when the load is committed in chunks
known AS (
    SELECT p.trace_id, p.span_id, bool_or(p.ingest_id = getvariable('fk_ingest_id')) AS this_load
    FROM spans p SEMI JOIN fk_staged_spans n ON p.trace_id = n.trace_id AND p.span_id = n.span_id
    GROUP BY p.trace_id, p.span_id
)
SELECT 'stage_spans' AS tbl, rid, CASE
    WHEN s.trace_id IS NULL OR s.trace_id = ''
        THEN 'missing trace_id: every span needs the id of the run it belongs to'
    WHEN s.span_id IS NULL OR s.span_id = ''
        THEN 'missing span_id: every span needs an id unique within its run'
    WHEN kind NOT IN ('agent', 'llm', 'tool', 'chain', 'retriever', 'embedding', 'guardrail',
                      'evaluator', 'human', 'other')
        THEN 'unknown kind ' || kind || ': use one of agent, llm, tool, chain, retriever, '
             || 'embedding, guardrail, evaluator, human, other'
    WHEN status NOT IN ('ok', 'error', 'unset')
        THEN 'unknown status ' || status || ': use one of ok, error, unset'
    WHEN end_time < start_time
        THEN 'end_time ' || end_time::VARCHAR || ' is before start_time ' || start_time::VARCHAR
             || ': fix the clock or swap the fields'
    WHEN f.first_rid < s.rid OR k.this_load
        THEN 'duplicate span: span_id ' || s.span_id || ' appears more than once in trace '
             || s.trace_id || ' in this file; the first occurrence was loaded'
    WHEN k.trace_id IS NOT NULL
        THEN 'duplicate span: span_id ' || s.span_id || ' of trace ' || s.trace_id
             || ' was already loaded by an earlier file'
END AS reason
FROM fk_staged_spans s
LEFT JOIN known k ON k.trace_id = s.trace_id AND k.span_id = s.span_id
LEFT JOIN firsts f ON f.trace_id = s.trace_id AND f.span_id = s.span_id
WHERE reason IS NOT NULL
UNION ALL
SELECT 'stage_labels', rowid, CASE
    WHEN trace_id IS NULL OR trace_id = '' THEN 'label without trace_id: say which run it judges'
    WHEN name IS NULL OR name = '' THEN 'label without name: say what it judges (e.g. outcome)'
END AS reason
FROM stage_labels
WHERE reason IS NOT NULL
UNION ALL
SELECT 'stage_traces', rowid, 'run metadata without trace_id' AS reason
FROM stage_traces
WHERE trace_id IS NULL OR trace_id = '';
