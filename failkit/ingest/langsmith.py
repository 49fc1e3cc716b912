"""LangSmith runs as JSON lines: create/patch payloads (merged by run id) or merged runs.

A run is one span: ``id`` → span_id, ``trace_id``, ``parent_run_id`` → parent_id, with
``dotted_order`` (``<time>Z<id>.<time>Z<id>…`` from the root down) recovering the trace,
the parent and the start when those fields are missing. ``error`` holds ``repr(exc)``
followed by the traceback. Tokens and cost are kept on llm / embedding runs only: LangSmith
repeats the children's sums on chains.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from failkit.ingest.base import Staging
from failkit.ingest.records import (
    BAD_RECORD,
    Batch,
    Row,
    as_dict,
    as_list,
    exception_event,
    json_lines,
    lower_id,
    parse_time,
    split_exception,
    to_float,
    unreadable,
    usage_tokens,
)
from failkit.schema import Kind, Status

KINDS: dict[str, Kind] = {
    "llm": Kind.LLM,
    "tool": Kind.TOOL,
    "chain": Kind.CHAIN,
    "retriever": Kind.RETRIEVER,
    "embedding": Kind.EMBEDDING,
    "prompt": Kind.CHAIN,
    "parser": Kind.CHAIN,
}
_METERED = (Kind.LLM, Kind.EMBEDDING)
_SESSION_KEYS = ("session_id", "thread_id", "conversation_id")
_SEGMENT = re.compile(r"^(\d{8}T\d{6,12})Z(.+)$")
_FIRST_LINE_RUN = re.compile(rb'"run_type"\s*:\s*"')


def _dotted(dotted_order: Any) -> list[tuple[str, str]]:
    """(time text, run id) per ``dotted_order`` segment, root first; [] when unparseable."""
    if not isinstance(dotted_order, str):
        return []
    segments = [_SEGMENT.match(s) for s in dotted_order.split(".")]
    return [(m.group(1), m.group(2)) for m in segments if m] if all(segments) else []


def _segment_time(stamp: str) -> str:
    """ISO text for a ``dotted_order`` time such as ``20261123T223729201235``."""
    date, time = stamp.split("T")
    fraction = f".{time[6:]}" if len(time) > 6 else ""
    return f"{date[:4]}-{date[4:6]}-{date[6:]}T{time[:2]}:{time[2:4]}:{time[4:6]}{fraction}"


def _message(value: Any) -> dict[str, Any]:
    """A chat message's fields, whether LangChain-serialized (``lc`` + ``kwargs``) or plain."""
    message = as_dict(value)
    return as_dict(message.get("kwargs")) if message.get("lc") else message


def _generation_messages(outputs: Any) -> list[dict[str, Any]]:
    generations = as_dict(outputs).get("generations") or []
    flat = [g for group in generations for g in (group if isinstance(group, list) else [group])]
    return [_message(as_dict(g).get("message")) for g in flat]


def _llm_output(outputs: Any) -> dict[str, Any]:
    return as_dict(as_dict(outputs).get("llm_output"))


def _tokens(run: dict[str, Any], metadata: dict[str, Any]) -> tuple[int | None, int | None]:
    """Tokens of an llm run: run fields, then llm_output, then the messages, then metadata."""
    outputs = run.get("outputs")
    llm_output = _llm_output(outputs)
    for usage in (run, llm_output.get("token_usage"), llm_output.get("usage")):
        tokens = usage_tokens(usage)
        if tokens != (None, None):
            return tokens
    per_message = [usage_tokens(m.get("usage_metadata")) for m in _generation_messages(outputs)]
    per_message = [t for t in per_message if t != (None, None)]
    if per_message:
        return sum(t[0] or 0 for t in per_message), sum(t[1] or 0 for t in per_message)
    return usage_tokens(metadata.get("usage_metadata"))


def _model(run: dict[str, Any], metadata: dict[str, Any]) -> str | None:
    """The response model when the output names one, else the requested model."""
    outputs = run.get("outputs")
    params = as_dict(as_dict(run.get("extra")).get("invocation_params"))
    candidates = [
        *(
            as_dict(m.get("response_metadata")).get("model_name")
            for m in _generation_messages(outputs)
        ),
        _llm_output(outputs).get("model_name"),
        metadata.get("ls_model_name"),
        params.get("model"),
        params.get("model_name"),
    ]
    return next((str(c) for c in candidates if c), None)


def _tool_call_id(run: dict[str, Any]) -> str | None:
    extra = as_dict(run.get("extra"))
    inputs = as_dict(run.get("inputs"))
    outputs = as_dict(run.get("outputs"))
    for value in (
        extra.get("tool_call_id"),
        inputs.get("tool_call_id"),
        _message(outputs.get("output")).get("tool_call_id"),
    ):
        if value:
            return str(value)
    return None


def merge_runs(batch: Batch, records: list[tuple[str, Row]]) -> dict[str, tuple[Row, list[str]]]:
    """Fold create/patch payloads into one run per id: later non-null fields win.

    Returns:
        run id → (merged run, positions of the records it came from).
    """
    runs: dict[str, tuple[Row, list[str]]] = {}
    for position, record in records:
        run_id = lower_id(record.get("id"))
        if run_id is None:
            batch.reject(position, "LangSmith run without an id: every run needs its uuid", record)
            continue
        merged, positions = runs.setdefault(run_id, ({}, []))
        merged.update((k, v) for k, v in record.items() if v is not None and k != "op")
        positions.append(position)
    return runs


def run_to_span(run: Row) -> Row:
    """One span row (Python values) from a merged LangSmith run.

    Raises:
        ValueError: a time is not ISO 8601.
    """
    path = _dotted(run.get("dotted_order"))
    extra = as_dict(run.get("extra"))
    metadata = as_dict(extra.get("metadata"))
    kind = KINDS.get(str(run.get("run_type") or "").lower(), Kind.OTHER)
    start = parse_time(run.get("start_time") or (_segment_time(path[-1][0]) if path else None))
    end = parse_time(run.get("end_time"))
    error_type, message, stack = split_exception(run.get("error"))
    events = list(as_list(run.get("events")))
    if run.get("error"):
        events.append(exception_event(error_type, message, stack, end))
    tokens_in, tokens_out = _tokens(run, metadata) if kind in _METERED else (None, None)
    return {
        "trace_id": run.get("trace_id") or (path[0][1] if path else None),
        "span_id": run["id"],
        "parent_id": run.get("parent_run_id") or (path[-2][1] if len(path) > 1 else None),
        "name": run.get("name"),
        "kind": kind,
        "start_time": start,
        "end_time": end,
        "status": Status.ERROR if run.get("error") else Status.OK if end else Status.UNSET,
        "error_type": error_type,
        "error_message": message,
        "model": _model(run, metadata) if kind in _METERED else None,
        "provider": metadata.get("ls_provider"),
        "tool_name": run.get("name") if kind == Kind.TOOL else None,
        "tool_call_id": _tool_call_id(run),
        "tool_args": run.get("inputs") if kind == Kind.TOOL else None,
        "input": run.get("inputs"),
        "output": run.get("outputs"),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost_usd": to_float(run.get("total_cost")) if kind in _METERED else None,
        "attributes": {
            "langsmith.run_type": run.get("run_type"),
            "langsmith.dotted_order": run.get("dotted_order"),
            "langsmith.session_name": run.get("session_name"),
            "langsmith.tags": run.get("tags"),
            "langsmith.reference_example_id": run.get("reference_example_id"),
            "metadata": metadata,
        },
        "events": events,
    }


def _trace_meta(runs: list[tuple[Row, Row]]) -> list[Row]:
    """Run metadata per trace: name and example id of the root run, session and user."""
    meta: dict[str, Row] = {}
    for run, span in runs:
        metadata = as_dict(as_dict(run.get("extra")).get("metadata"))
        row = meta.setdefault(str(span["trace_id"]), {"trace_id": span["trace_id"]})
        session = next((metadata[k] for k in _SESSION_KEYS if metadata.get(k)), None)
        row["session_id"] = row.get("session_id") or session
        row["user_id"] = row.get("user_id") or metadata.get("user_id")
        row.setdefault("position", span["position"])
        if span["parent_id"] is None:
            example = run.get("reference_example_id")
            row |= {"name": span["name"], "task_id": example, "position": span["position"]}
    return [{k: None if v is None else str(v) for k, v in r.items()} for r in meta.values()]


class LangSmithRunsAdapter:
    """LangSmith run payloads, one JSON object per line (create/patch ops or merged runs)."""

    name: ClassVar[str] = "langsmith_runs"
    description: ClassVar[str] = (
        "LangSmith runs as JSON lines (run_type, dotted_order; post/patch ops are merged by id)"
    )

    def sniff(self, head: bytes, path: Path) -> bool:
        first = head.lstrip().split(b"\n", 1)[0]
        return (
            first.startswith(b"{")
            and bool(_FIRST_LINE_RUN.search(first))
            and any(key in first for key in (b'"dotted_order"', b'"parent_run_id"', b'"trace_id"'))
        )

    def load(self, stage: Staging) -> None:
        batch = Batch(source=self.name)
        merged = merge_runs(batch, list(json_lines(stage, batch)))
        converted: list[tuple[Row, Row]] = []
        for run_id, (run, positions) in merged.items():
            where = f"{', '.join(positions)} (run {run_id})"
            try:
                span = run_to_span(run | {"id": run_id})
            except BAD_RECORD as exc:
                batch.reject(where, unreadable("run", exc), run)
                continue
            converted.append((run, span | {"position": where}))
        converted.sort(key=lambda rs: (str(rs[1]["trace_id"]), str(rs[0].get("dotted_order"))))
        batch.spans = [span for _, span in converted]
        batch.traces = _trace_meta([(r, s) for r, s in converted if s["trace_id"]])
        batch.flush(stage)
