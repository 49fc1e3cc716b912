-- Run-level ids carried by span attributes, per run of the spans in the table named `tbl`:
-- the smallest session / user / task id, and the md5 of the earliest input with its start
-- (the task fingerprint when nothing else names the task). Results over parts of a run's
-- spans combine (min of the mins, arg_min of the earliest inputs): the store takes them from
-- each chunk it loads, so that rebuild_traces.sql does not read the attributes again.
CREATE OR REPLACE TEMP MACRO fk_run_ids_of(tbl) AS TABLE
SELECT
    trace_id,
    min(coalesce(a."session.id", a."gen_ai.conversation.id")) AS session_id,
    min(coalesce(a."user.id", a."enduser.id")) AS user_id,
    min(a."failkit.task_id") AS task_id,
    md5(arg_min(input, start_time) FILTER (WHERE input IS NOT NULL)) AS first_input_md5,
    min(start_time) FILTER (WHERE input IS NOT NULL) AS first_input_at
FROM (
    SELECT trace_id, input, start_time, json_transform(attributes, '{"session.id": "VARCHAR",
        "gen_ai.conversation.id": "VARCHAR", "user.id": "VARCHAR", "enduser.id": "VARCHAR",
        "failkit.task_id": "VARCHAR"}') AS a
    FROM query_table(tbl)
)
GROUP BY trace_id;
