-- Run-level ids carried by span attributes, read from `ids`: the attributes of
-- failkit.ingest.base.RUN_ID_KEYS as a struct, which the store defines as the macro
-- fk_span_ids(attributes) (an adapter that reads them itself hands the struct over).

-- Per run of the spans in the table named `tbl` (with `ids` as fk_span_ids gives them): the
-- smallest session / user / task id, and the md5 of the earliest input with its start (the
-- task fingerprint when nothing else names the task). Results over parts of a run's spans
-- combine (min of the mins, arg_min of the earliest inputs): the store takes them from each
-- chunk it loads, so that rebuild_traces.sql does not read the attributes again.
CREATE OR REPLACE TEMP MACRO fk_run_ids_of(tbl) AS TABLE
SELECT
    trace_id,
    min(coalesce(ids."session.id", ids."gen_ai.conversation.id")) AS session_id,
    min(coalesce(ids."user.id", ids."enduser.id")) AS user_id,
    min(ids."failkit.task_id") AS task_id,
    md5(arg_min(input, start_time) FILTER (WHERE input IS NOT NULL)) AS first_input_md5,
    min(start_time) FILTER (WHERE input IS NOT NULL) AS first_input_at
FROM query_table(tbl)
GROUP BY trace_id;

-- The spans with the ids their attributes name.
CREATE OR REPLACE TEMP VIEW fk_spans_ids AS SELECT *, fk_span_ids(attributes) AS ids FROM spans;
