-- Recompute the traces rows of the runs in temp table `affected(trace_id)` from spans,
-- keeping run metadata already known and taking new metadata from stage_traces.
-- Ids from span attributes come from temp table fk_run_ids (macro fk_run_ids_of of
-- run_ids.sql), which the store fills from the spans of each chunk it loads; otherwise they
-- are read here from the runs' spans. Only the spans that are new can add an id: an older
-- span's id is already in old_traces, which takes precedence.
CREATE TEMP TABLE IF NOT EXISTS fk_run_ids AS
SELECT * FROM fk_run_ids_of('fk_spans_ids') WHERE trace_id IN (SELECT trace_id FROM affected);

CREATE OR REPLACE TEMP TABLE old_traces AS
SELECT t.* FROM traces t SEMI JOIN affected a ON t.trace_id = a.trace_id;

DELETE FROM traces WHERE trace_id IN (SELECT trace_id FROM affected);

INSERT INTO traces
-- One streaming pass over the runs' spans for the aggregates (narrow columns only), and two
-- for the root spans (reading them twice costs less than materializing them once).
WITH sp AS NOT MATERIALIZED (
    SELECT s.trace_id, s.span_id, s.parent_id, s.name, s.start_time
    FROM spans s SEMI JOIN affected a ON s.trace_id = a.trace_id
),
roots AS (
    SELECT c.trace_id, arg_min(c.name, c.start_time) AS name
    FROM sp c ANTI JOIN sp p ON p.trace_id = c.trace_id AND p.span_id = c.parent_id
    GROUP BY c.trace_id
),
agg AS (
    SELECT
        trace_id,
        any_value(source) AS source,
        min(start_time) AS start_time,
        max(end_time) AS end_time,
        count(*) AS n_spans,
        count(*) FILTER (WHERE kind = 'llm') AS n_llm,
        count(*) FILTER (WHERE kind = 'tool') AS n_tool,
        sum(tokens_in) FILTER (WHERE kind = 'llm') AS tokens_in,
        sum(tokens_out) FILTER (WHERE kind = 'llm') AS tokens_out,
        sum(cost_usd) FILTER (WHERE kind NOT IN ('agent', 'chain')) AS cost_usd,
        CASE WHEN bool_or(status = 'error') THEN 'error'
             WHEN bool_or(status = 'ok') THEN 'ok' ELSE 'unset' END AS status
    FROM spans s SEMI JOIN affected af ON s.trace_id = af.trace_id
    GROUP BY trace_id
),
ids AS (
    SELECT trace_id, min(session_id) AS session_id, min(user_id) AS user_id,
        min(task_id) AS task_id, arg_min(first_input_md5, first_input_at) AS first_input_md5
    FROM fk_run_ids GROUP BY trace_id
),
meta AS (
    SELECT trace_id,
        arg_max(name, rowid) FILTER (WHERE name IS NOT NULL) AS name,
        arg_max(task_id, rowid) FILTER (WHERE task_id IS NOT NULL) AS task_id,
        arg_max(session_id, rowid) FILTER (WHERE session_id IS NOT NULL) AS session_id,
        arg_max(user_id, rowid) FILTER (WHERE user_id IS NOT NULL) AS user_id
    FROM stage_traces GROUP BY trace_id
),
verdict AS (
    SELECT trace_id, arg_max(
        CASE
            WHEN lower(trim(value)) IN ('success', 'pass', 'passed', 'true', 'correct', 'yes', 'ok', 'c')
                THEN 'success'
            WHEN lower(trim(value)) IN ('failure', 'fail', 'failed', 'false', 'incorrect', 'no',
                                        'error', 'i', 'wrong')
                THEN 'failure'
            WHEN score IS NOT NULL OR try_cast(value AS DOUBLE) IS NOT NULL
                THEN CASE WHEN coalesce(score, try_cast(value AS DOUBLE)) >= 0.5
                          THEN 'success' ELSE 'failure' END
            ELSE 'unknown'
        END, rowid) AS outcome
    FROM labels
    WHERE name = 'outcome' AND trace_id IN (SELECT trace_id FROM affected)
    GROUP BY trace_id
)
SELECT
    agg.trace_id,
    coalesce(o.source, agg.source),
    coalesce(m.name, o.name, r.name),
    coalesce(m.task_id, o.task_id, i.task_id, 'fp_' || substr(i.first_input_md5, 1, 12)),
    coalesce(m.session_id, o.session_id, i.session_id),
    coalesce(m.user_id, o.user_id, i.user_id),
    agg.start_time,
    agg.end_time,
    epoch_us(agg.end_time - agg.start_time) / 1e6,
    agg.n_spans, agg.n_llm, agg.n_tool, agg.tokens_in, agg.tokens_out, agg.cost_usd,
    agg.status,
    coalesce(v.outcome, 'unknown')
FROM agg
LEFT JOIN old_traces o USING (trace_id)
LEFT JOIN ids i USING (trace_id)
LEFT JOIN meta m USING (trace_id)
LEFT JOIN roots r USING (trace_id)
LEFT JOIN verdict v USING (trace_id);
