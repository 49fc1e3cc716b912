-- The spans of fk_otlp_flat as span rows (failkit.ingest.base.SPAN_ROW_SCHEMA), one per
-- span. fk_otlp_flat has: line_no, r, c, k (its request line, resource, scope and place in
-- the scope), s (the span: ids, name, kind, times, status), attributes (its attributes,
-- those of its resource and scope, and otel.span.kind, as one flat JSON object), a (the
-- attributes the mapping reads, as text: a struct of failkit.ingest.otlp_arrow.MAPPED_KEYS),
-- oi (its OpenInference messages, as fk_oi_messages gives them), exc (its exception event's
-- type and message, as fk_otlp_exception gives them) and events (as fk_otlp_events gives
-- them). otlp_json_flat.sql defines it for requests parsed by DuckDB,
-- failkit/ingest/otlp_arrow.py builds it for those parsed by pyarrow. Needs otlp_macros.sql
-- after one of the value macro sets, fk_otlp_ids, and the variable fk_otlp_unit ('line ' or
-- 'request ') naming a line_no.

WITH mapped AS (
    SELECT *,
        lower(a."openinference.span.kind") AS oi_kind,
        lower(a."langfuse.observation.type") AS lf_type,
        fk_otlp_ns(s.startTimeUnixNano) AS start_ns,
        fk_otlp_ns(s.endTimeUnixNano) AS end_ns
    FROM fk_otlp_flat
)
SELECT
    fk_otlp_id(s.traceId) AS trace_id,
    fk_otlp_id(s.spanId) AS span_id,
    fk_otlp_id(s.parentSpanId) AS parent_id,
    s.name AS name,
    coalesce(
        lower(a."failkit.span.kind"),
        CASE lower(a."gen_ai.operation.name")
            WHEN 'invoke_agent' THEN 'agent' WHEN 'create_agent' THEN 'agent'
            WHEN 'chat' THEN 'llm' WHEN 'text_completion' THEN 'llm'
            WHEN 'generate_content' THEN 'llm'
            WHEN 'execute_tool' THEN 'tool' WHEN 'embeddings' THEN 'embedding'
            WHEN 'retrieval' THEN 'retriever' WHEN 'invoke_workflow' THEN 'chain' END,
        CASE WHEN oi_kind IN ('agent', 'llm', 'tool', 'chain', 'retriever', 'embedding',
                              'guardrail', 'evaluator') THEN oi_kind
             WHEN oi_kind = 'reranker' THEN 'retriever' WHEN oi_kind = 'prompt' THEN 'chain' END,
        CASE WHEN lf_type IN ('agent', 'tool', 'chain', 'retriever', 'embedding', 'evaluator',
                              'guardrail') THEN lf_type
             WHEN lf_type = 'generation' THEN 'llm' END,
        'other') AS kind,
    fk_otlp_ts(start_ns) AS start_time,
    fk_otlp_ts(end_ns) AS end_time,
    (end_ns - start_ns) / 1e9 AS duration_s,
    CASE
        WHEN upper(s.status.code::VARCHAR) IN ('2', 'STATUS_CODE_ERROR')
            OR upper(a."langfuse.observation.level") = 'ERROR' THEN 'error'
        WHEN upper(s.status.code::VARCHAR) IN ('1', 'STATUS_CODE_OK') THEN 'ok'
        ELSE 'unset' END AS status,
    coalesce(a."error.type", exc."exception.type") AS error_type,
    -- an empty status message falls back to the exception (pitfall 8); a LangChain message's
    -- traceback is left to the exception event, which keeps it
    coalesce(
        nullif(trim(split_part(s.status.message, 'Traceback (most recent call last):', 1)), ''),
        exc."exception.message",
        nullif(a."langfuse.observation.status_message", '')) AS error_message,
    coalesce(a."gen_ai.response.model", a."gen_ai.request.model", a."llm.model_name",
             a."langfuse.observation.model.name") AS model,
    coalesce(a."gen_ai.provider.name", a."gen_ai.system", a."llm.provider", a."llm.system")
        AS provider,
    coalesce(a."gen_ai.tool.name", a."tool.name", CASE WHEN lf_type = 'tool' THEN s.name END)
        AS tool_name,
    coalesce(a."gen_ai.tool.call.id", a."tool.id",
             CASE WHEN json_valid(a."langfuse.observation.metadata.tool_call_id")
                  THEN a."langfuse.observation.metadata.tool_call_id"->>'$'
                  ELSE a."langfuse.observation.metadata.tool_call_id" END) AS tool_call_id,
    fk_json_text(coalesce(
        a."gen_ai.tool.call.arguments",
        CASE WHEN oi_kind = 'tool' THEN coalesce(fk_smolagents_kwargs(a."input.value"),
                                                 a."input.value") END,
        CASE WHEN lf_type = 'tool' THEN a."langfuse.observation.input" END))::JSON AS tool_args,
    coalesce(a."gen_ai.input.messages", a."input.value", a."langfuse.observation.input",
             oi.input,
             a."gen_ai.tool.call.arguments") AS input,
    coalesce(a."gen_ai.output.messages", a."gen_ai.tool.call.result", a."output.value",
             a."langfuse.observation.output",
             oi.output) AS output,
    try_cast(coalesce(
        a."gen_ai.usage.input_tokens", a."gen_ai.usage.prompt_tokens", a."llm.token_count.prompt",
        fk_usage(a."langfuse.observation.usage_details", ['input', 'prompt_tokens', 'input_tokens'])
    ) AS BIGINT) AS tokens_in,
    try_cast(coalesce(
        a."gen_ai.usage.output_tokens", a."gen_ai.usage.completion_tokens",
        a."llm.token_count.completion",
        fk_usage(a."langfuse.observation.usage_details",
                 ['output', 'completion_tokens', 'output_tokens'])
    ) AS BIGINT) AS tokens_out,
    try_cast(coalesce(a."failkit.cost_usd", a."llm.cost.total",
                      fk_usage(a."langfuse.observation.cost_details", ['total'])) AS DOUBLE)
        AS cost_usd,
    try_cast(a."failkit.confidence" AS DOUBLE) AS confidence,
    attributes::JSON AS attributes,
    events::JSON AS events,
    CASE WHEN oi_kind IS NOT NULL THEN 'openinference'
         WHEN lf_type IS NOT NULL THEN 'langfuse'
         ELSE 'otlp' END AS source,
    fk_otlp_ids(a) AS ids,
    getvariable('fk_otlp_unit') || line_no
        || CASE WHEN r > 1 OR c > 1 THEN ' resource ' || r || ' scope ' || c ELSE '' END
        || ' span ' || k AS position
FROM mapped
