-- Decision chains: spans -> ordered steps with stages, attempts and the first failure.
-- Named statements, run in order by failkit.chains.steps on a private connection, from:
--   fk_source (spans columns) · fk_runs(trace_id, outcome) · fk_flags(trace_id, span_id, name)
-- and, made by the Python side: fk_tools(tool_name) (non-idempotent tools), fk_rules (the
-- stage table) and fk_feat (the rule matched per feature set; see chains._match_rules).
-- Heavy window work runs on narrow tables keyed by `rid` (the rowid of fk_sp).

-- name: input
CREATE OR REPLACE TEMP VIEW fk_in AS
SELECT trace_id, span_id, parent_id, name, coalesce(kind, 'other') AS kind, start_time,
    coalesce(end_time, start_time + to_microseconds(CAST(duration_s * 1e6 AS BIGINT)))
        AS end_time,
    coalesce(duration_s, epoch_us(end_time - start_time) / 1e6) AS duration_s,
    coalesce(status, 'unset') AS status, error_type, error_message, model, tool_name,
    tool_call_id, tokens_in, tokens_out, cost_usd, confidence, output,
    -- one intent: the same tool with near-same arguments (top-level keys sorted, whitespace
    -- dropped, case folded), or the same LLM request (model and input)
    CASE WHEN kind = 'tool' THEN hash('tool', coalesce(tool_name, name, ''), CASE
             WHEN tool_args IS NULL THEN ''
             WHEN json_valid(tool_args::VARCHAR) AND json_type(tool_args::JSON) = 'OBJECT'
             THEN list_transform(list_sort(json_keys(tool_args::JSON)), lambda k:
                 k || '=' || regexp_replace(lower(json_extract(tool_args::JSON,
                     '$."' || replace(k, '"', '\"') || '"')::VARCHAR), '\s+', '', 'g'))::VARCHAR
             ELSE regexp_replace(lower(tool_args::VARCHAR), '\s+', '', 'g') END)
         WHEN kind = 'llm' AND input IS NOT NULL THEN hash('llm', coalesce(model, ''), input)
    END AS intent_id
FROM fk_source;

-- name: parents
CREATE OR REPLACE TEMP TABLE fk_sp AS
SELECT s.* EXCLUDE (output),
    s.kind = 'tool' AND coalesce(s.tool_name, s.name) IN (SELECT tool_name FROM fk_tools)
        AS non_idempotent,
    hash(s.kind, s.tool_name, s.name, s.status, s.error_type, s.error_message) AS feat_key
FROM fk_in s;

-- name: links
-- The parent of each span as a row id; a parent id that matches no span of the run makes
-- the span a root (pitfall 5).
CREATE OR REPLACE TEMP TABLE fk_link AS
SELECT c.rowid AS rid, p.rowid AS parent_rid,
    CASE WHEN c.parent_id IS NULL THEN 'no_parent'
         WHEN p.rowid IS NULL THEN 'missing_parent' END AS root_reason
FROM fk_sp c
LEFT JOIN fk_sp p ON p.trace_id = c.trace_id AND p.span_id = c.parent_id;

-- name: tree
-- Depth by walking down from the roots; each span has one parent, so each is reached once.
-- Spans on a parent cycle (and below one) are never reached: see `cycles`.
CREATE OR REPLACE TEMP TABLE fk_tree AS
WITH RECURSIVE t(rid, parent_rid, root_reason, depth) AS (
    SELECT rid, parent_rid, root_reason, 0 FROM fk_link WHERE parent_rid IS NULL
    UNION ALL
    SELECT c.rid, c.parent_rid, c.root_reason, t.depth + 1
    FROM t JOIN fk_link c ON c.parent_rid = t.rid
)
SELECT * FROM t;

-- name: cycles
-- Unreached spans: walk up with the path so far; a walk that comes back to where it started
-- found a cycle. Each cycle is cut at its earliest span, which becomes a root.
CREATE OR REPLACE TEMP TABLE fk_cut AS
WITH RECURSIVE u AS (
    SELECT l.rid, l.parent_rid, s.start_time, s.span_id
    FROM fk_link l JOIN fk_sp s ON s.rowid = l.rid
    ANTI JOIN fk_tree t ON t.rid = l.rid
),
walk(origin, cur, path) AS (
    SELECT rid, parent_rid, [rid] FROM u
    UNION ALL
    SELECT w.origin, u.parent_rid, list_append(w.path, w.cur)
    FROM walk w JOIN u ON u.rid = w.cur
    WHERE NOT list_contains(w.path, w.cur)
)
SELECT first(u.rid ORDER BY u.start_time NULLS LAST, u.span_id) AS rid
FROM walk w JOIN u ON u.rid = w.origin
WHERE w.cur = w.origin
GROUP BY list_sort(w.path);

-- name: cut
UPDATE fk_link SET parent_rid = NULL, root_reason = 'parent_cycle'
WHERE rid IN (SELECT rid FROM fk_cut);

-- name: ordered
-- Steps by start time, parents before children on ties (smaller depth first). LLM roles:
-- tool_call when the next working step is a tool, final for the last LLM step, else plan;
-- repeats of one LLM request share the role of the last repeat.
CREATE OR REPLACE TEMP TABLE fk_st AS
WITH o AS (
    SELECT s.rowid AS rid, s.trace_id, s.span_id, s.kind, s.intent_id, s.feat_key,
        s.non_idempotent, t.depth, s.status = 'error' AS failed, t.parent_rid, t.root_reason,
        row_number() OVER w AS step,
        last_value(CASE WHEN s.kind = 'llm' THEN s.span_id END IGNORE NULLS)
            OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_llm_id,
        first_value(CASE WHEN s.kind IN ('llm', 'tool', 'retriever', 'human') THEN s.kind END
            IGNORE NULLS) OVER (w ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_kind,
        last_value(CASE WHEN s.kind = 'llm' THEN s.span_id END IGNORE NULLS)
            OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS last_llm_id
    FROM fk_sp s JOIN fk_tree t ON t.rid = s.rowid
    WINDOW w AS (PARTITION BY s.trace_id ORDER BY s.start_time NULLS LAST, t.depth, s.span_id)
),
r AS (
    SELECT * EXCLUDE (next_kind, last_llm_id),
        CASE WHEN kind <> 'llm' THEN NULL
             WHEN next_kind = 'tool' THEN 'tool_call'
             WHEN span_id = last_llm_id THEN 'final'
             ELSE 'plan' END AS role0
    FROM o
),
a AS (
    SELECT * EXCLUDE (role0),
        CASE WHEN intent_id IS NULL THEN 1 ELSE row_number() OVER i END AS attempt,
        CASE WHEN kind = 'llm' AND intent_id IS NOT NULL
             THEN last_value(role0) OVER (i ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
             ELSE role0 END AS role
    FROM r
    WINDOW i AS (PARTITION BY trace_id, intent_id ORDER BY step)
)
SELECT * EXCLUDE (feat_key), hash(feat_key, role) AS feat FROM a;

-- name: features
-- One row per distinct (kind, role, name, status, error) with the texts the rules match.
CREATE OR REPLACE TEMP TABLE fk_feat_text AS
WITH reps AS (SELECT feat, min(rid) AS rid FROM fk_st GROUP BY feat)
SELECT reps.feat, sp.kind,
    coalesce(st.role, '') AS role_text,
    coalesce(sp.tool_name, '') || ' ' || coalesce(sp.name, '') AS name_text,
    CASE WHEN st.failed THEN coalesce(sp.error_type, '') || ': ' || coalesce(sp.error_message, '')
         ELSE '' END AS error_text
FROM reps JOIN fk_st st ON st.rid = reps.rid JOIN fk_sp sp ON sp.rowid = reps.rid;

-- name: staged
-- Stage, rule and side effect of every step (fk_feat holds the matched rules per feature).
CREATE OR REPLACE TEMP TABLE fk_st2 AS
SELECT s.* EXCLUDE (feat, non_idempotent),
    coalesce(fr.stage, rr.stage) AS stage,
    coalesce(fr.id, rr.id) AS rule,
    s.failed AND coalesce(fr.transient, false) AS transient,
    CASE WHEN s.failed THEN coalesce(fr.blame, 'self') END AS blame,
    CASE WHEN s.non_idempotent THEN CASE WHEN NOT s.failed THEN 'done'
                                         WHEN fr.may_have_acted THEN 'maybe'
                                         ELSE 'none' END END AS side_effect
FROM fk_st s
JOIN fk_feat f USING (feat)
LEFT JOIN fk_rules fr ON fr.priority = f.fail_rule
LEFT JOIN fk_rules rr ON rr.priority = f.role_rule;

-- name: failures
-- Failed steps: the step blamed (cause), whether a later step got past the failure
-- (recovered), and whether it only repeats an unrecovered error of a descendant (propagated).
-- Recovered: a bad call (blamed on its caller) when a later step of the same kind was a valid
-- call; a tool failing on its own when the same tool later worked; anything else when a later
-- step of the same kind worked.
CREATE OR REPLACE TEMP TABLE fk_fail AS
WITH RECURSIVE f AS MATERIALIZED (
    SELECT s.*, sp.tool_call_id, coalesce(sp.tool_name, sp.name, '') AS target
    FROM fk_st2 s JOIN fk_sp sp ON sp.rowid = s.rid
    WHERE s.failed
),
runs AS MATERIALIZED (  -- the steps of runs with a failure
    SELECT s.*, coalesce(sp.tool_name, sp.name, '') AS target
    FROM fk_st2 s SEMI JOIN f USING (trace_id) JOIN fk_sp sp ON sp.rowid = s.rid
),
linked AS (  -- the LLM step whose output holds the failed call's tool_call_id
    SELECT f.rid, max_by(l.span_id, l.step) AS llm_id
    FROM f
    JOIN runs l ON l.trace_id = f.trace_id AND l.kind = 'llm' AND l.step < f.step
    JOIN fk_in o ON o.trace_id = l.trace_id AND o.span_id = l.span_id
    WHERE f.blame = 'caller' AND f.tool_call_id IS NOT NULL
      AND contains(o.output, f.tool_call_id)
    GROUP BY f.rid
),
down(top_rid, rid) AS (  -- descendants of failed steps blamed on their caller
    SELECT rid, rid FROM f WHERE blame = 'caller'
    UNION ALL
    SELECT d.top_rid, c.rid FROM down d JOIN runs c ON c.parent_rid = d.rid
),
inner_llm AS (  -- the last LLM step inside a failed step (a code agent's step span)
    SELECT d.top_rid AS rid, max_by(c.span_id, c.step) AS llm_id
    FROM down d JOIN runs c ON c.rid = d.rid
    WHERE c.kind = 'llm'
    GROUP BY d.top_rid
),
last_ok AS (  -- per run and kind: last successful step, last step that was a valid call
    SELECT trace_id, kind,
        max(step) FILTER (WHERE NOT failed) AS last_ok,
        max(step) FILTER (WHERE NOT failed OR blame <> 'caller') AS last_valid
    FROM runs GROUP BY ALL
),
ok_target AS (
    SELECT trace_id, kind, target, max(step) AS last_ok
    FROM runs WHERE NOT failed GROUP BY ALL
),
judged AS MATERIALIZED (
    SELECT f.rid, f.trace_id, f.span_id, f.step, f.parent_rid,
        CASE WHEN f.blame = 'caller'
             THEN coalesce(linked.llm_id, inner_llm.llm_id, f.prev_llm_id, f.span_id)
             ELSE f.span_id END AS cause_span_id,
        CASE WHEN f.blame = 'caller' THEN coalesce(ok.last_valid, 0) > f.step
             WHEN f.kind IN ('tool', 'retriever', 'embedding') THEN coalesce(ot.last_ok, 0) > f.step
             ELSE coalesce(ok.last_ok, 0) > f.step END AS recovered
    FROM f
    LEFT JOIN linked USING (rid)
    LEFT JOIN inner_llm USING (rid)
    LEFT JOIN last_ok ok ON ok.trace_id = f.trace_id AND ok.kind = f.kind
    LEFT JOIN ok_target ot ON ot.trace_id = f.trace_id AND ot.kind = f.kind
         AND ot.target = f.target
),
anc(rid) AS (  -- every ancestor of every unrecovered failed step
    SELECT parent_rid FROM judged WHERE NOT recovered AND parent_rid IS NOT NULL
    UNION ALL
    SELECT p.parent_rid FROM anc a JOIN runs p ON p.rid = a.rid WHERE p.parent_rid IS NOT NULL
)
SELECT j.rid, j.trace_id, j.step, j.cause_span_id, j.recovered,
    j.rid IN (SELECT rid FROM anc) AS propagated
FROM judged j;

-- name: first
-- Failed runs (outcome failure, or an unrecovered error when the outcome is unknown) and the
-- step where each one's first failure surfaced: the earliest unrecovered error that is not
-- a propagated copy; for silent failures, a labelled step, the least confident step, the last
-- LLM step, the first (recovered) error or the last step (`heuristic` says which).
CREATE OR REPLACE TEMP TABLE fk_first AS
WITH runs AS (
    SELECT t.trace_id, coalesce(r.outcome, 'unknown') AS outcome
    FROM (SELECT DISTINCT trace_id FROM fk_st2) t LEFT JOIN fk_runs r USING (trace_id)
),
err AS (
    SELECT trace_id, min(step) AS step FROM fk_fail
    WHERE NOT recovered AND NOT propagated GROUP BY trace_id
),
failed_runs AS (
    SELECT r.trace_id, e.step AS err_step
    FROM runs r LEFT JOIN err e USING (trace_id)
    WHERE r.outcome = 'failure' OR (r.outcome NOT IN ('success', 'failure') AND e.step IS NOT NULL)
),
silent_steps AS (
    SELECT s.rid, s.trace_id, s.span_id, s.step, s.kind, s.failed, sp.confidence
    FROM fk_st2 s
    SEMI JOIN failed_runs r ON r.trace_id = s.trace_id AND r.err_step IS NULL
    JOIN fk_sp sp ON sp.rowid = s.rid
),
flagged AS (
    SELECT s.trace_id, min(s.step) AS step, arg_min(l.name, s.step) AS name
    FROM fk_flags l JOIN silent_steps s ON s.trace_id = l.trace_id AND s.span_id = l.span_id
    GROUP BY s.trace_id
),
fallback AS (
    SELECT trace_id,
        arg_min(step, (confidence, step)) FILTER (WHERE confidence IS NOT NULL) AS conf_step,
        max(step) FILTER (WHERE kind = 'llm') AS llm_step,
        min(step) FILTER (WHERE failed) AS error_step,
        max(step) AS last_step
    FROM silent_steps GROUP BY trace_id
)
SELECT r.trace_id,
    coalesce(r.err_step, fl.step, fb.conf_step, fb.llm_step, fb.error_step, fb.last_step)
        AS step,
    CASE WHEN r.err_step IS NOT NULL THEN NULL
         WHEN fl.step IS NOT NULL THEN 'label:' || fl.name
         WHEN fb.conf_step IS NOT NULL THEN 'least_confident_step'
         WHEN fb.llm_step IS NOT NULL THEN 'last_llm_step'
         WHEN fb.error_step IS NOT NULL THEN 'recovered_error'
         ELSE 'last_step' END AS heuristic
FROM failed_runs r
LEFT JOIN flagged fl USING (trace_id)
LEFT JOIN fallback fb USING (trace_id);

-- name: duplicates
-- Non-idempotent calls that may have acted after an earlier call of the same intent did.
CREATE OR REPLACE TEMP TABLE fk_dup AS
SELECT rid FROM (
    SELECT rid, count(*) OVER (PARTITION BY trace_id, intent_id ORDER BY step
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
    FROM fk_st2 WHERE side_effect IN ('done', 'maybe')
) WHERE before > 0;

-- name: steps
SELECT sp.trace_id, s.step, sp.span_id, sp.parent_id, s.depth, sp.kind, s.stage, sp.name,
    sp.tool_name, sp.model, sp.status, sp.error_type, sp.error_message, sp.start_time,
    sp.duration_s, sp.tokens_in, sp.tokens_out, sp.cost_usd, s.attempt,
    coalesce(s.step = ff.step, false) AS is_first_failure,
    coalesce(s.step > ff.step, false) AS after_failure,
    CASE WHEN s.failed THEN f.cause_span_id WHEN s.step = ff.step THEN sp.span_id END
        AS cause_span_id,
    s.rule, s.transient,
    coalesce(f.recovered, false) AS recovered,
    coalesce(f.propagated, false) AS propagated,
    s.intent_id, s.side_effect,
    d.rid IS NOT NULL AS duplicate_side_effect,
    CASE WHEN s.step = ff.step THEN ff.heuristic END AS heuristic,
    s.root_reason
FROM fk_st2 s
JOIN fk_sp sp ON sp.rowid = s.rid
LEFT JOIN fk_fail f ON f.rid = s.rid
LEFT JOIN fk_dup d ON d.rid = s.rid
LEFT JOIN fk_first ff ON ff.trace_id = s.trace_id
ORDER BY sp.trace_id, s.step;
