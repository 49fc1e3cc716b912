"""Chat transcripts: OpenAI-style message lists, one run per record.

Reads tau-bench trajectories (a JSON list of records with ``traj``), mini-swe-agent
trajectories (``{"messages": [...]}``) and bare lists of messages, as a JSON document or as
JSON lines (one run per line). A file of single messages (a JSON list of them, or one per
line) is one run.

Mapping, one step per message or tool call:

- a run is a root ``agent`` span named after the file; the record's other fields
  (``task_id``, ``trial``, ``info`` …, not the ``reward``, which becomes labels) are its
  attributes, the first user message its input and the last assistant text its output;
- ``system`` / ``developer`` / ``user`` messages (and unknown roles) are ``other`` spans named
  after the role, content as input — tau-bench's user is a simulated one, not a ``human``;
- ``assistant`` messages are ``llm`` spans, content as output;
- each ``tool_calls[]`` entry (or legacy ``function_call``) is a ``tool`` span with
  ``tool_name``, ``tool_call_id`` and the JSON inside ``function.arguments`` as ``tool_args``;
  tool spans are siblings of the llm spans under the root, as in OTel GenAI traces;
- a ``tool`` / ``function`` message is the output of the open call with its ``tool_call_id``
  (earliest first: tau-bench reuses ids within a run; by ``name`` when it has no id). A result
  starting with ``Error`` or a Python traceback makes the span an error. A result that answers
  no call becomes a tool span of its own (attribute ``failkit.unmatched_result``);
- ``reward`` gives a ``reward`` label (with score) and an ``outcome`` label (success when the
  reward is 1); ``task_id`` groups the runs of one task, else the task is a fingerprint of the
  first user message (``fp_`` + md5, as the store computes it).

Ids: the trace id is the first 32 hex digits of the SHA-256 of the file's name, the record's
position and its canonical JSON: loading again gives the same ids (a copy of a file in another
folder is recognised as already loaded), identical runs in one file or in differently named
files stay distinct, and same-named files of different folders (Who&When's subsets) do not
collide. Span ids are ``<trace>-run`` (root), ``<trace>-<j>`` (message *j*) and
``<trace>-<j>-<k>`` (tool call *k* of message *j*).

Times: transcripts carry no clock, so times are synthetic and count messages. Every run
starts at the Unix epoch and message *j* occupies second *j* (``[j, j + 1)`` s); a tool span
runs from the end of the message that called it to the end of the message holding its result
(call *k* shifted by *k* µs so that parallel calls keep their order). The root has attribute
``failkit.synthetic_time: true``; every message span has ``failkit.message_index``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from failkit.ingest.base import Staging, loads_json
from failkit.ingest.records import Batch, Row, to_float, usage_tokens
from failkit.schema import Kind, Status

EPOCH = datetime(1970, 1, 1)
"""Start of every transcript run (transcripts have no timestamps)."""

_RUN_KEYS = ("traj", "messages")
_RESULT_ROLES = ("tool", "function")
_ERROR_RESULT = re.compile(r"^\s*(?:error\b|traceback \(most recent call last\))", re.IGNORECASE)
_LONE_MESSAGE = (
    "a single message where a run was expected: put each run's messages in one "
    '{"messages": [...]} record'
)
_NO_MESSAGES = (
    "no `traj` or `messages` list: a run is "
    '{"messages": [{"role": ..., "content": ...}, ...]} or a bare list of them'
)
_NO_FUNCTION = (
    'tool call without function.name: expected {"id": ..., "function": {"name": ..., '
    '"arguments": "{...}"}}'
)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],]')
_LEADING_ARRAYS = re.compile(r"^[\s\ufeff]*((?:\[\s*)*)")


def leading_object_keys(head: bytes) -> tuple[int, set[str]]:
    """How many arrays open the document, and the keys of the first object inside them.

    Works on a prefix cut anywhere (the sniffers' 64 KB head): keys are collected until the
    text ends. ``[{"role": ...`` gives ``(1, {"role", ...})``; a document that does not open
    with arrays and then an object gives no keys.
    """
    text = head.decode("utf-8", errors="replace")
    opening = _LEADING_ARRAYS.match(text)
    arrays = opening.group(1).count("[") if opening else 0
    start = opening.end() if opening else 0
    if not text.startswith("{", start):
        return arrays, set()
    keys: set[str] = set()
    depth, expect_key = 0, False
    for token in _TOKEN.finditer(text, start):
        t = token.group()
        if t in "{[":
            depth += 1
            expect_key = depth == 1
        elif t in "}]":
            depth -= 1
            if depth == 0:
                break
        elif t == ",":
            expect_key = depth == 1
        elif expect_key:
            keys.add(t[1:-1])
            expect_key = False
    return arrays, keys


def is_run(value: Any) -> bool:
    """True for a run record: a list of messages or an object with ``traj`` / ``messages``."""
    return isinstance(value, list) or (
        isinstance(value, Mapping) and any(k in value for k in _RUN_KEYS)
    )


def is_message(value: Any) -> bool:
    """True for a chat message: an object with a ``role`` that is not a run record."""
    return isinstance(value, Mapping) and "role" in value and not is_run(value)


def read_records(stage: Staging, batch: Batch) -> tuple[bool, list[tuple[str, Any]]]:
    """The file's top-level records with their positions; unreadable parts are quarantined.

    A JSON document gives its list items (``record i``, from 0) or itself (``record 0``);
    a file that is not one JSON document is read as JSON lines (``line n``, from 1), a line
    that is not a JSON object or array quarantined.

    Returns:
        (True when the file was read as JSON lines, the records).
    """
    with stage.open() as f:
        data = f.read()
    try:
        doc = loads_json(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return True, _json_lines(data, batch, exc)
    items = doc if isinstance(doc, list) else [doc]
    return False, [(f"record {i}", item) for i, item in enumerate(items)]


def _json_lines(data: bytes, batch: Batch, doc_error: Exception) -> list[tuple[str, Any]]:
    records: list[tuple[str, Any]] = []
    bad: list[tuple[str, str, str]] = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = loads_json(line)
        except ValueError as exc:
            bad.append((f"line {number}", f"line is not valid JSON ({exc}): fix or drop it", line))
            continue
        if isinstance(value, dict | list):
            records.append((f"line {number}", value))
        else:
            reason = f"line holds a JSON {type(value).__name__}, not a run object or message list"
            bad.append((f"line {number}", reason, line))
    if not records:
        batch.reject(
            "file",
            f"the file is neither one JSON document ({doc_error}) nor JSON lines: "
            "fix or re-export it",
            data,
        )
        return []
    for position, reason, line in bad:
        batch.reject(position, reason, line)
    return records


def run_trace_id(file_name: str, position: str, record: Any) -> str:
    """A run's trace id: a hash of the file's name, the record's position and its content."""
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    key = f"{file_name}\n{position}\n{canonical}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def at(second: int, micros: int = 0) -> datetime:
    """The synthetic time of message ``second`` (see the module docstring)."""
    return EPOCH + timedelta(seconds=second, microseconds=micros)


def text_of(content: Any) -> str | None:
    """Message content as text: strings as they are, the text of content parts joined."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") if isinstance(p, Mapping) else p for p in content]
        texts = [p for p in parts if isinstance(p, str)]
        if len(texts) == len(parts):
            return "\n".join(texts)
    return json.dumps(content, default=str, ensure_ascii=False)


def fingerprint(text: str | None) -> str | None:
    """Task id of a run without one: ``fp_`` + md5 of its first user input (as the store does)."""
    if text is None:
        return None
    return "fp_" + hashlib.md5(text.encode("utf-8", "replace")).hexdigest()[:12]


def root_span(trace_id: str, position: str, file_name: str, fields: Mapping[str, Any]) -> Row:
    """The run's root ``agent`` span, named after the file; end and output are set later."""
    return {
        "trace_id": trace_id,
        "span_id": f"{trace_id}-run",
        "name": Path(file_name).stem,
        "kind": Kind.AGENT,
        "start_time": EPOCH,
        "end_time": EPOCH,
        "attributes": {**fields, "failkit.synthetic_time": True},
        "position": position,
    }


def _result_status(text: str | None) -> tuple[Status, str | None]:
    if text is not None and _ERROR_RESULT.match(text):
        return Status.ERROR, text
    return Status.OK, None


def _model_and_usage(message: Mapping[str, Any], run_model: str | None) -> Row:
    """Model and tokens of an assistant message.

    From the message's own ``model`` / ``usage``, else mini-swe-agent's ``extra.response``;
    the model falls back to the run's.
    """
    extra = message.get("extra")
    response = extra.get("response") if isinstance(extra, Mapping) else None
    response = response if isinstance(response, Mapping) else {}
    model = message.get("model") or response.get("model") or run_model
    tokens_in, tokens_out = usage_tokens(message.get("usage") or response.get("usage"))
    return {
        "model": model if isinstance(model, str) else None,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
    }


def _run_model(record: Mapping[str, Any]) -> str | None:
    """The record's ``model``, or mini-swe-agent's ``info.config.model.model_name``."""
    value: Any = record
    for key in ("info", "config", "model", "model_name"):
        value = value.get(key) if isinstance(value, Mapping) else None
    model = record.get("model") or value
    return model if isinstance(model, str) else None


class _Run:
    """The spans of one transcript run, built message by message."""

    def __init__(self, batch: Batch, trace_id: str, root: Row, model: str | None) -> None:
        self.batch = batch
        self.trace_id = trace_id
        self.root = root
        self.model = model
        self.open_calls: list[Row] = []
        self.first_user: str | None = None
        batch.spans.append(root)

    def span(self, suffix: str, position: str, **fields: Any) -> Row:
        """Add a span ``<trace>-<suffix>`` under the root (fields include its times)."""
        row = {"trace_id": self.trace_id, "span_id": f"{self.trace_id}-{suffix}"}
        row |= {"parent_id": self.root["span_id"], "position": position, **fields}
        self.batch.spans.append(row)
        self.root["end_time"] = max(self.root["end_time"], row["end_time"])
        return row

    def message(self, j: int, position: str, message: Mapping[str, Any]) -> None:
        """Add the span(s) of message ``j``, or attach a tool result to its call."""
        role = message["role"]
        text = text_of(message.get("content"))
        extra = {k: v for k, v in message.items() if k not in ("role", "content", "tool_calls")}
        step: Row = {"start_time": at(j), "end_time": at(j + 1)}
        step["attributes"] = extra | {"failkit.message_index": j}
        if role in _RESULT_ROLES:
            self.result(j, position, message, text, step)
            return
        if role == "assistant":
            usage = _model_and_usage(message, self.model)
            name = message.get("name") or role
            self.span(str(j), position, name=name, kind=Kind.LLM, output=text, **usage, **step)
            if text is not None:
                self.root["output"] = text
            self.tool_calls(j, position, message)
            return
        if role == "user" and self.first_user is None:
            self.first_user = self.root["input"] = text
        self.span(str(j), position, name=role, kind=Kind.OTHER, input=text, **step)

    def tool_calls(self, j: int, position: str, message: Mapping[str, Any]) -> None:
        """Open a tool span per ``tool_calls`` entry (or legacy ``function_call``)."""
        calls = message.get("tool_calls") or []
        if not calls and isinstance(message.get("function_call"), Mapping):
            calls = [{"function": message["function_call"]}]
        for k, call in enumerate(calls if isinstance(calls, list) else [calls]):
            where = f"{position} tool_call {k}"
            function = call.get("function") if isinstance(call, Mapping) else None
            name = function.get("name") if isinstance(function, Mapping) else None
            if not isinstance(function, Mapping) or not isinstance(name, str) or not name:
                self.batch.reject(where, _NO_FUNCTION, call)
                continue
            called: Row = {"start_time": at(j + 1, k), "end_time": at(j + 1, k)}
            called["attributes"] = {"failkit.message_index": j, "failkit.tool_call_index": k}
            args = function.get("arguments")
            span = self.span(f"{j}-{k}", where, name=name, kind=Kind.TOOL, tool_name=name,
                             tool_call_id=call.get("id"), tool_args=args, **called)  # fmt: skip
            self.open_calls.append(span)

    def result(
        self, j: int, position: str, message: Mapping[str, Any], text: str | None, step: Row
    ) -> None:
        """Make a tool message the output of the earliest open call it answers."""
        call_id, name = message.get("tool_call_id"), message.get("name")
        outcome = dict(zip(("status", "error_message"), _result_status(text), strict=True))
        key, value = ("tool_call_id", call_id) if call_id else ("tool_name", name)
        call = next((c for c in self.open_calls if c[key] == value), None)
        if call is None:
            step["attributes"]["failkit.unmatched_result"] = True
            self.span(str(j), position, name=name or "tool", kind=Kind.TOOL, tool_name=name,
                      tool_call_id=call_id, output=text, **outcome, **step)  # fmt: skip
            return
        self.open_calls.remove(call)
        call.update(output=text, end_time=step["end_time"], **outcome)
        call["attributes"]["failkit.result_index"] = j
        self.root["end_time"] = max(self.root["end_time"], call["end_time"])


def load_run(
    batch: Batch, file_name: str, position: str, record: Any, messages: list[tuple[str, Any]]
) -> None:
    """Stage one run: its root, a span per message and tool call, its verdicts and task id."""
    fields = dict(record) if isinstance(record, Mapping) else {}
    trace_id = run_trace_id(file_name, position, record)
    attributes = {k: v for k, v in fields.items() if k not in (*_RUN_KEYS, "reward")}
    root = root_span(trace_id, position, file_name, attributes)
    run = _Run(batch, trace_id, root, _run_model(fields))
    for j, (where, message) in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            batch.reject(
                where,
                "message without a role: each message needs "
                '{"role": "system" | "user" | "assistant" | "tool", "content": ...}',
                message,
            )
            continue
        run.message(j, where, message)
    task_id = fields.get("task_id")
    task = fingerprint(run.first_user) if task_id is None else str(task_id)
    batch.traces.append({"trace_id": trace_id, "task_id": task, "position": position})
    if fields.get("reward") is not None:
        _reward_labels(batch, trace_id, position, fields["reward"])


def _reward_labels(batch: Batch, trace_id: str, position: str, reward: Any) -> None:
    score = to_float(reward)
    if score is None:
        reason = f"reward {reward!r} is not a number: fix it or drop the field"
        batch.reject(position, reason, reward)
        return
    common = {"trace_id": trace_id, "source": "dataset", "position": position}
    batch.labels.append(common | {"name": "reward", "value": str(reward), "score": score})
    outcome = "success" if score == 1 else "failure"
    comment = f"reward {reward}"
    batch.labels.append(common | {"name": "outcome", "value": outcome, "comment": comment})


class MessagesAdapter:
    """OpenAI-style chat transcripts (tau-bench, mini-swe-agent, bare message lists)."""

    name: ClassVar[str] = "chat_messages"
    description: ClassVar[str] = (
        "chat transcripts: OpenAI-style messages as {traj: [...]} (tau-bench), "
        "{messages: [...]} (mini-swe-agent) or a bare list; JSON or JSONL, one run per record"
    )

    def sniff(self, head: bytes, path: Path) -> bool:
        arrays, keys = leading_object_keys(head)
        if arrays <= 1 and any(k in keys for k in _RUN_KEYS):
            return b'"role"' in head
        return "role" in keys and ("content" in keys or "tool_calls" in keys) and "type" not in keys

    def load(self, stage: Staging) -> None:
        batch = Batch(self.name)
        jsonl, records = read_records(stage, batch)
        name = stage.path.name
        values = [value for _, value in records]
        if any(map(is_message, values)) and not any(map(is_run, values)):
            position = "file" if jsonl else "record 0"
            if not jsonl:
                records = [(f"record 0 message {j}", m) for j, (_, m) in enumerate(records)]
            load_run(batch, name, position, values, records)
        else:
            for position, record in records:
                self._record(batch, name, position, record)
        batch.flush(stage)

    @staticmethod
    def _record(batch: Batch, file_name: str, position: str, record: Any) -> None:
        messages: Any = record if isinstance(record, list) else None
        if isinstance(record, Mapping):
            messages = next((record[k] for k in _RUN_KEYS if k in record), None)
        if is_message(record):
            reason = _LONE_MESSAGE
        elif not isinstance(messages, list):
            reason = _NO_MESSAGES
        elif not messages:
            reason = "the run has no messages: nothing to load"
        else:
            items = [(f"{position} message {j}", m) for j, m in enumerate(messages)]
            load_run(batch, file_name, position, record, items)
            return
        batch.reject(position, reason, record)
