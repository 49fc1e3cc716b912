"""OpenAI Agents SDK traces: ``trace`` and ``trace.span`` records, one JSON object per line.

Each line is what a tracing processor gets from ``Trace.export()`` / ``Span.export()`` (a
line may also hold the exporter's ``{"data": [...]}`` batch). ``span_data.type`` gives the
kind; function spans carry the tool name, arguments and output; generation / response spans
the model and usage. The SDK does not record which tool call a function span executes, so
``tool_call_id`` is matched from the calls of the latest earlier generation in the same trace.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from failkit.ingest.base import Staging
from failkit.ingest.records import (
    BAD_RECORD,
    Batch,
    Row,
    as_dict,
    as_list,
    json_lines,
    parse_json_text,
    parse_time,
    unreadable,
    usage_tokens,
)
from failkit.schema import Kind, Status

KINDS: dict[str, Kind] = {
    "agent": Kind.AGENT,
    "generation": Kind.LLM,
    "response": Kind.LLM,
    "function": Kind.TOOL,
    "handoff": Kind.CHAIN,
    "guardrail": Kind.GUARDRAIL,
    "custom": Kind.OTHER,
}
_PAYLOAD = ("input", "output", "usage", "response")
_FIRST_LINE = re.compile(rb'"object"\s*:\s*"trace(?:\.span)?"')


def _name(data: dict[str, Any], kind_name: str) -> str:
    if kind_name in ("handoff", "generation", "response"):
        return kind_name
    return str(data.get("name") or data.get("server") or kind_name)


def _error(error: Any) -> tuple[str | None, str | None]:
    """(category, detail) of an SDK span error ``{message, data}``."""
    if not isinstance(error, dict):
        return (None, str(error)) if error else (None, None)
    data = error.get("data")
    detail = data.get("error") if isinstance(data, dict) else data
    message = error.get("message")
    if detail is None:
        return None, message
    return message, detail if isinstance(detail, str) else str(detail)


def span_row(record: Row) -> Row:
    """One span row (Python values) from a ``trace.span`` record.

    Raises:
        ValueError: a time is not ISO 8601.
    """
    data = as_dict(record.get("span_data"))
    kind_name = str(data.get("type") or "custom")
    kind = KINDS.get(kind_name, Kind.OTHER)
    start, end = parse_time(record.get("started_at")), parse_time(record.get("ended_at"))
    error_type, message = _error(record.get("error"))
    response = as_dict(data.get("response"))
    tokens_in, tokens_out = (
        usage_tokens(data.get("usage") or response.get("usage"))
        if kind == Kind.LLM
        else (None, None)
    )
    attributes = {f"span_data.{k}": v for k, v in data.items() if k not in _PAYLOAD}
    if isinstance(record.get("error"), dict):
        attributes["error.data"] = record["error"].get("data")
    return {
        "trace_id": record.get("trace_id"),
        "span_id": record.get("id"),
        "parent_id": record.get("parent_id"),
        "name": _name(data, kind_name),
        "kind": kind,
        "start_time": start,
        "end_time": end,
        "status": Status.ERROR if record.get("error") else Status.OK if end else Status.UNSET,
        "error_type": error_type,
        "error_message": message,
        "model": (data.get("model") or response.get("model")) if kind == Kind.LLM else None,
        "tool_name": data.get("name") if kind == Kind.TOOL else None,
        "tool_args": parse_json_text(data.get("input")) if kind == Kind.TOOL else None,
        "input": data.get("input"),
        "output": data.get("output"),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "attributes": attributes,
    }


def _calls(output: Any) -> list[tuple[Any, Any, Any]]:
    """(call id, function name, parsed arguments) of the tool calls in a generation's output."""
    found = []
    for message in as_list(output):
        for call in map(as_dict, as_list(as_dict(message).get("tool_calls"))):
            function = as_dict(call.get("function"))
            arguments = parse_json_text(function.get("arguments"))
            found.append((call.get("id"), function.get("name"), arguments))
    return found


def link_tool_calls(spans: list[tuple[Row, Row]]) -> None:
    """Give each function span the id of the call it executes (same name and arguments).

    Args:
        spans: (record, span row) pairs; rows are updated in place.
    """
    pending: dict[Any, list[tuple[Any, Any, Any]]] = {}
    ordered = sorted(
        spans, key=lambda rs: (str(rs[1]["trace_id"]), rs[1]["start_time"] or datetime.min)
    )
    for record, row in ordered:
        data = as_dict(record.get("span_data"))
        if data.get("type") == "generation":
            pending[str(row["trace_id"])] = _calls(data.get("output"))
        elif row["kind"] == Kind.TOOL:
            calls = pending.get(str(row["trace_id"]), [])
            match = next(
                (c for c in calls if c[1] == row["tool_name"] and c[2] == row["tool_args"]),
                next((c for c in calls if c[1] == row["tool_name"]), None),
            )
            if match:
                calls.remove(match)
                row["tool_call_id"] = match[0]


def trace_row(record: Row) -> Row:
    """Run metadata from a ``trace`` record: workflow name, group (session), user, task."""
    metadata = as_dict(record.get("metadata"))
    user = metadata.get("user_id") or metadata.get("user")
    return {
        "trace_id": record.get("id"),
        "name": record.get("workflow_name"),
        "session_id": record.get("group_id"),
        "user_id": None if user is None else str(user),
        "task_id": None if metadata.get("task_id") is None else str(metadata["task_id"]),
    }


class OpenAIAgentsAdapter:
    """OpenAI Agents SDK trace export (``object: trace`` / ``trace.span`` JSON lines)."""

    name: ClassVar[str] = "openai_agents"
    description: ClassVar[str] = (
        "OpenAI Agents SDK traces: JSON lines of trace / trace.span records (span_data typed)"
    )

    def sniff(self, head: bytes, path: Path) -> bool:
        first = head.lstrip().split(b"\n", 1)[0]
        return first.startswith(b"{") and bool(_FIRST_LINE.search(first))

    def load(self, stage: Staging) -> None:
        batch = Batch(source=self.name)
        spans: list[tuple[Row, Row]] = []
        for line_position, line in json_lines(stage, batch):
            items = line["data"] if isinstance(line.get("data"), list) else [line]
            for i, record in enumerate(items):
                position = line_position if len(items) == 1 else f"{line_position} item {i + 1}"
                kind = record.get("object") if isinstance(record, dict) else None
                if kind == "trace":
                    batch.traces.append(trace_row(record) | {"position": position})
                elif kind == "trace.span":
                    try:
                        spans.append((record, span_row(record) | {"position": position}))
                    except BAD_RECORD as exc:
                        batch.reject(position, unreadable("span", exc), record)
                else:
                    batch.reject(
                        position,
                        f"not an Agents SDK record (object={kind!r}): expected trace or trace.span",
                        record,
                    )
        link_tool_calls(spans)
        batch.spans = [row for _, row in spans]
        batch.flush(stage)
