"""Langfuse observations as its public API returns them (not OTLP).

Accepts what people save from ``GET /api/public/observations`` (``{"data": [...], "meta"}``),
``GET /api/public/traces/{id}`` (a trace with ``observations[]`` and ``scores[]``), a list of
either, or JSON lines of observation, trace or score records.

An observation is a span: ``type`` GENERATION → llm; AGENT, TOOL, CHAIN, RETRIEVER,
EMBEDDING, EVALUATOR, GUARDRAIL as named; SPAN and EVENT → other. ``level`` ERROR makes it an
error with ``statusMessage`` as the message (WARNING is kept in the attributes only).
Traces give the run's name, session and user; scores become labels (span_id =
``observationId``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from failkit.ingest.base import Staging, loads_json
from failkit.ingest.records import (
    BAD_RECORD,
    Batch,
    Row,
    as_dict,
    as_list,
    json_lines,
    parse_time,
    split_exception,
    to_float,
    unreadable,
    usage_tokens,
)
from failkit.schema import Kind, Status

KINDS: dict[str, Kind] = {
    "GENERATION": Kind.LLM,
    "AGENT": Kind.AGENT,
    "TOOL": Kind.TOOL,
    "CHAIN": Kind.CHAIN,
    "RETRIEVER": Kind.RETRIEVER,
    "EMBEDDING": Kind.EMBEDDING,
    "EVALUATOR": Kind.EVALUATOR,
    "GUARDRAIL": Kind.GUARDRAIL,
}
_ATTRIBUTES = ("level", "type", "modelParameters", "metadata", "version", "environment",
               "promptId", "completionStartTime")  # fmt: skip


def observation_row(observation: Row) -> Row:
    """One span row (Python values) from an API observation.

    Raises:
        ValueError: a time is not ISO 8601.
    """
    kind = KINDS.get(str(observation.get("type") or "").upper(), Kind.OTHER)
    start, end = parse_time(observation.get("startTime")), parse_time(observation.get("endTime"))
    failed = str(observation.get("level") or "").upper() == "ERROR"
    error_type, message, _ = split_exception(observation.get("statusMessage"))
    metadata = as_dict(observation.get("metadata"))
    tokens_in, tokens_out = usage_tokens(
        observation.get("usageDetails") or observation.get("usage")
    )
    cost = observation.get("calculatedTotalCost")
    if cost is None:
        cost = as_dict(observation.get("costDetails")).get("total")
    return {
        "trace_id": observation.get("traceId"),
        "span_id": observation.get("id"),
        "parent_id": observation.get("parentObservationId"),
        "name": observation.get("name"),
        "kind": kind,
        "start_time": start,
        "end_time": end,
        "status": Status.ERROR if failed else Status.OK if end else Status.UNSET,
        "error_type": error_type if failed else None,
        "error_message": (message or "level ERROR") if failed else None,
        "model": observation.get("model"),
        "tool_name": observation.get("name") if kind == Kind.TOOL else None,
        "tool_call_id": metadata.get("tool_call_id"),
        "tool_args": observation.get("input") if kind == Kind.TOOL else None,
        "input": observation.get("input"),
        "output": observation.get("output"),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost_usd": to_float(cost),
        "attributes": {f"langfuse.{k}": observation[k] for k in _ATTRIBUTES if k in observation},
    }


def score_label(score: Row, trace_id: Any = None) -> Row:
    """A label from a Langfuse score (numeric, boolean or categorical)."""
    value = score.get("stringValue")
    if value is None and score.get("value") is not None:
        value = str(score["value"])
    return {
        "trace_id": score.get("traceId") or trace_id,
        "span_id": score.get("observationId"),
        "name": score.get("name"),
        "value": value,
        "score": to_float(score.get("value")),
        "source": f"langfuse {score.get('source') or ''}".strip().lower(),
        "comment": score.get("comment"),
    }


def _add_record(batch: Batch, position: str, record: Any) -> None:
    """Stage an observation, score or trace (with its nested observations and scores)."""
    if not isinstance(record, dict):
        batch.reject(position, "record is not a JSON object", record)
    elif "observations" in record or ("traceId" not in record and "sessionId" in record):
        batch.traces.append({
            "trace_id": record.get("id"),
            "name": record.get("name"),
            "session_id": record.get("sessionId"),
            "user_id": record.get("userId"),
            "position": position,
        })  # fmt: skip
        # the traces list endpoint gives observation and score ids, the trace endpoint objects
        for i, observation in enumerate(as_list(record.get("observations"))):
            if isinstance(observation, dict):
                _add_record(batch, f"{position}.observations[{i}]", observation)
        for i, score in enumerate(as_list(record.get("scores"))):
            if isinstance(score, dict):
                label = score_label(score, record.get("id"))
                batch.labels.append(label | {"position": f"{position}.scores[{i}]"})
    elif "startTime" in record and "type" in record:
        try:
            batch.spans.append(observation_row(record) | {"position": position})
        except BAD_RECORD as exc:
            batch.reject(position, unreadable("observation", exc), record)
    elif "dataType" in record or ("traceId" in record and "value" in record):
        batch.labels.append(score_label(record) | {"position": position})
    else:
        batch.reject(
            position,
            "not a Langfuse observation (startTime, type), trace (observations) or score (value)",
            record,
        )


def _records(stage: Staging, batch: Batch) -> list[tuple[str, Any]]:
    """(position, record) from a JSON document, or from JSON lines when it is not one."""
    with stage.open() as f:
        data = f.read()
    try:
        document = loads_json(data)
    except (ValueError, UnicodeDecodeError):
        return list(json_lines(stage, batch))
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        return [(f"data[{i}]", r) for i, r in enumerate(document["data"])]
    if isinstance(document, list):
        return [(f"[{i}]", r) for i, r in enumerate(document)]
    return [("document", document)]


class LangfuseApiAdapter:
    """Langfuse public-API export: observations (GENERATION/SPAN/EVENT…), traces, scores."""

    name: ClassVar[str] = "langfuse_api"
    description: ClassVar[str] = (
        "Langfuse public API export: observations / traces with observations[] / scores, "
        "as one JSON document or JSON lines"
    )

    def sniff(self, head: bytes, path: Path) -> bool:
        start = head.lstrip()[:1]
        return (
            start in (b"{", b"[")
            and b'"traceId"' in head
            and b'"resourceSpans"' not in head
            and (b'"parentObservationId"' in head or b'"observations"' in head)
        )

    def load(self, stage: Staging) -> None:
        batch = Batch(source=self.name)
        for position, record in _records(stage, batch):
            _add_record(batch, position, record)
        batch.flush(stage)
