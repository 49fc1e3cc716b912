"""Helpers for adapters that build rows in Python: small, deeply nested formats.

An adapter collects its rows in a :class:`Batch` — spans as dicts of Python values
(datetimes, dicts, lists), run metadata, labels and quarantine entries — and stages
each table with one :meth:`Staging.append` call in :meth:`Batch.flush`, which also
normalizes ids, computes durations and turns nested values into JSON text.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from failkit.ingest.base import (
    Staging,
    loads_json,
    text_stream,
    to_json_text,
    to_text,
    truncate_raw,
)
from failkit.schema import Kind, Status

Row = dict[str, Any]


BAD_RECORD = (
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
    OverflowError,
    RecursionError,
)
"""What converting a record of an unexpected shape (or absurd nesting) raises; such a record
is quarantined."""


def unreadable(what: str, exc: Exception) -> str:
    """A quarantine reason for a record whose conversion raised ``exc``."""
    detail = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
    return f"{what} cannot be read ({detail}); fix or re-export it"


def as_dict(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty dict (for optional nested fields)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """The value when it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def lower_id(value: Any) -> str | None:
    """An id as failkit keeps it: trimmed lowercase text, None when empty."""
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any) -> datetime | None:
    """A naive UTC datetime from ISO 8601 text (``Z``, offsets, no zone = UTC) or epoch seconds.

    Raises:
        ValueError: the value is neither.
    """
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"time {value!r} is not a plausible epoch seconds value") from None
    if not isinstance(value, str):
        raise ValueError(f"time {value!r} is not ISO 8601 text or epoch seconds")
    parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip().replace("Z", "+00:00")))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


_TRACEBACK = "Traceback (most recent call last)"
_CALL_REPR = re.compile(r"^([A-Za-z_][\w.]*)\((.*)\)$", re.S)
_TYPE_PREFIX = re.compile(
    r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Timeout|Failure))\s*:\s*(.*)$",
    re.S,
)


def split_exception(text: str | None) -> tuple[str | None, str | None, str | None]:
    """(type, message, traceback) from ``repr(exc)`` text, ``Type: message`` or plain text.

    LangChain writes ``TimeoutError('no answer')Traceback (most recent call last): …``;
    smolagents writes ``AgentExecutionError: Code execution failed …``.
    """
    if not text:
        return None, None, None
    head, sep, tail = text.partition(_TRACEBACK)
    stack = sep + tail if sep else None
    head = head.strip()
    match = _CALL_REPR.match(head)
    if match:
        args = match.group(2)
        try:
            literal = ast.literal_eval(args) if args else ""
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            literal = args
        return match.group(1), literal if isinstance(literal, str) else args, stack
    match = _TYPE_PREFIX.match(head)
    if match:
        return match.group(1), match.group(2).strip(), stack
    return None, head or None, stack


def exception_event(
    error_type: str | None, message: str | None, stacktrace: str | None, time: datetime | None
) -> Row:
    """A span event in the OTel ``exception`` shape."""
    attributes = {
        "exception.type": error_type,
        "exception.message": message,
        "exception.stacktrace": stacktrace,
    }
    return {
        "name": "exception",
        "time": time.isoformat() if time else None,
        "attributes": {k: v for k, v in attributes.items() if v is not None},
    }


def to_int(value: Any) -> int | None:
    """An integer from a number or numeric text (``"112"``); None when it is neither."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except OverflowError:  # infinity
        return None
    except (TypeError, ValueError):
        number = to_float(value)
        return int(number) if number is not None and number.is_integer() else None


def to_float(value: Any) -> float | None:
    """A float from a number or numeric text; None when it is neither."""
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


_INPUT_TOKEN_KEYS = ("input_tokens", "prompt_tokens", "input")
_OUTPUT_TOKEN_KEYS = ("output_tokens", "completion_tokens", "output")


def usage_tokens(usage: Any) -> tuple[int | None, int | None]:
    """(input, output) tokens of a usage object, whichever spelling it uses."""
    if not isinstance(usage, Mapping):
        return None, None

    def first(keys: tuple[str, ...]) -> int | None:
        return next((n for k in keys if (n := to_int(usage.get(k))) is not None), None)

    return first(_INPUT_TOKEN_KEYS), first(_OUTPUT_TOKEN_KEYS)


def parse_json_text(value: Any) -> Any:
    """The JSON value a string holds; anything else (or text that is not JSON) as it is."""
    if isinstance(value, str):
        try:
            return loads_json(value)
        except ValueError:
            return value
    return value


def _strip_trailing_commas(text: str) -> str:
    """The text without commas that directly precede ``]`` or ``}`` outside strings."""
    out: list[str] = []
    in_string = escaped = False
    pending_comma = ""
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if pending_comma:
            if ch.isspace():
                pending_comma += ch
                continue
            out.append(pending_comma[1:] if ch in "]}" else pending_comma)
            pending_comma = ""
        if ch == ",":
            pending_comma = ch
            continue
        out.append(ch)
        if ch == '"':
            in_string = True
    out.append(pending_comma)
    return "".join(out)


def loads_tolerant(data: str | bytes) -> Any:
    """Parse JSON, tolerating trailing commas (``[1, 2,]``) that hand-edited files carry.

    Raises:
        ValueError: the text is not JSON even without trailing commas (the original error).
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        return loads_json(text)
    except ValueError as exc:
        try:
            return loads_json(_strip_trailing_commas(text))
        except ValueError:
            raise exc from None


def json_lines(stage: Staging, batch: Batch) -> Iterator[tuple[str, Row]]:
    """(position, object) for every JSON-object line of the file; other lines are quarantined."""
    with text_stream(stage) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            position = f"line {number}"
            try:
                obj = loads_json(line)
            except ValueError as exc:
                batch.reject(position, f"line is not valid JSON ({exc}): fix or drop it", line)
                continue
            if not isinstance(obj, dict):
                batch.reject(
                    position, f"line holds a JSON {type(obj).__name__}, not an object", line
                )
                continue
            yield position, obj


OPENINFERENCE_KINDS: dict[str, Kind] = {
    "AGENT": Kind.AGENT,
    "LLM": Kind.LLM,
    "TOOL": Kind.TOOL,
    "CHAIN": Kind.CHAIN,
    "RETRIEVER": Kind.RETRIEVER,
    "RERANKER": Kind.RETRIEVER,
    "EMBEDDING": Kind.EMBEDDING,
    "GUARDRAIL": Kind.GUARDRAIL,
    "EVALUATOR": Kind.EVALUATOR,
    "PROMPT": Kind.CHAIN,
}

# span column <- first OpenInference attribute present, converted
_OPENINFERENCE_FIELDS: tuple[tuple[str, tuple[str, ...], Callable[[Any], Any]], ...] = (
    ("model", ("llm.model_name",), str),
    ("provider", ("llm.provider", "llm.system"), str),
    ("tool_name", ("tool.name",), str),
    ("tool_call_id", ("tool.id", "tool_call.id"), str),
    ("input", ("input.value",), str),
    ("output", ("output.value",), str),
    ("tokens_in", ("llm.token_count.prompt",), to_int),
    ("tokens_out", ("llm.token_count.completion",), to_int),
    ("cost_usd", ("llm.cost.total",), to_float),
)


_AGGREGATED = ("tokens_in", "tokens_out", "cost_usd")


def openinference_fields(attributes: Mapping[str, Any]) -> Row:
    """Span columns from flat OpenInference attributes (values may be numbers as text).

    ``kind`` from ``openinference.span.kind``. Tokens and cost are dropped on agent and chain
    spans, which repeat their children's sums (smolagents). Tool arguments come from
    ``input.value``, where smolagents writes ``{"args": [...], "kwargs": {...}}``
    (positional args are named from ``tool.parameters``).
    """
    kind_name = str(attributes.get("openinference.span.kind") or "").upper()
    kind = OPENINFERENCE_KINDS.get(kind_name, Kind.OTHER)
    row: Row = {"kind": kind}
    for column, keys, convert in _OPENINFERENCE_FIELDS:
        value = next((attributes[k] for k in keys if attributes.get(k) not in (None, "")), None)
        row[column] = None if value is None else convert(value)
    if kind in (Kind.AGENT, Kind.CHAIN):
        row |= dict.fromkeys(_AGGREGATED)
    if kind == Kind.TOOL:
        row["tool_args"] = _openinference_tool_args(
            attributes.get("input.value"), attributes.get("tool.parameters")
        )
    return row


def _openinference_tool_args(value: Any, parameters: Any) -> Any:
    args = parse_json_text(value)
    if not isinstance(args, dict):
        return None
    if "args" not in args or "kwargs" not in args:
        return args
    params = parse_json_text(parameters)
    names = list(params) if isinstance(params, dict) else []
    positional = as_list(args.get("args"))
    named = dict(zip(names, positional, strict=False))
    if len(positional) > len(names):
        named["args"] = positional[len(names) :]
    return named | as_dict(args.get("kwargs"))


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | dict | list) and len(value) == 0)


@dataclass
class Batch:
    """Rows of one load, staged together by :meth:`flush`."""

    source: str
    spans: list[Row] = field(default_factory=list)
    traces: list[Row] = field(default_factory=list)
    labels: list[Row] = field(default_factory=list)
    rejects: list[Row] = field(default_factory=list)

    def reject(self, position: str, reason: str, raw: Any = None) -> None:
        """Quarantine a record (raw may be text, bytes or a JSON-able value)."""
        try:
            text = raw if raw is None or isinstance(raw, str | bytes) else to_text(raw)
        except (RecursionError, ValueError):
            text = f"<{type(raw).__name__} nested too deeply to show>"
        self.rejects.append({"position": position, "reason": reason, "raw": truncate_raw(text)})

    def flush(self, stage: Staging) -> None:
        """Stage everything collected, one ``append`` per table.

        A span whose values cannot be written as JSON (nested too deeply) is quarantined.
        """
        spans = []
        for row in self.spans:
            try:
                spans.append(self._span(row))
            except (RecursionError, ValueError) as exc:
                reason = f"span cannot be stored: a value is nested too deeply to write ({exc})"
                self.reject(str(row.get("position") or "span"), reason)
        stage.append("stage_spans", spans)
        stage.append("stage_traces", [self._ids(r) for r in self.traces])
        stage.append("stage_labels", [self._ids(r) for r in self.labels])
        stage.append("stage_quarantine", self.rejects)

    @staticmethod
    def _ids(row: Row) -> Row:
        return row | {k: lower_id(row.get(k)) for k in ("trace_id", "span_id") if k in row}

    def _span(self, row: Row) -> Row:
        start, end = row.get("start_time"), row.get("end_time")
        return self._ids(row) | {
            "parent_id": lower_id(row.get("parent_id")),
            "kind": str(row.get("kind") or Kind.OTHER),
            "status": str(row.get("status") or Status.UNSET),
            "duration_s": (end - start).total_seconds() if start and end else None,
            "tool_args": None if _empty(row.get("tool_args")) else to_json_text(row["tool_args"]),
            "input": None if _empty(row.get("input")) else to_text(row["input"]),
            "output": None if _empty(row.get("output")) else to_text(row["output"]),
            "attributes": to_json_text(row.get("attributes") or {}),
            "events": None if _empty(row.get("events")) else to_json_text(row["events"]),
            "source": self.source,
        }
