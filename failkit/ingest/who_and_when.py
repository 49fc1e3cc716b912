"""Who&When: multi-agent runs annotated with the agent and step that caused the failure.

A record (one JSON object per file) holds ``question``, ``ground_truth``, ``is_correct``
(``is_corrected`` in the hand-crafted subset), ``history`` — a list of ``{content, role,
name}`` turns of a multi-agent group chat — and the human annotation ``mistake_agent``,
``mistake_step`` (text holding a 0-based index into ``history``) and ``mistake_reason``.

Mapping, one step per history item, read as chat transcripts are (ids, synthetic times and
the root as in :mod:`failkit.ingest.messages`; positions ``record 0 history j``):

- the run is a root ``agent`` span named after the file, the question its input and the last
  agent turn its output; the other record fields except the verdicts (``question_ID``,
  ``level``, ``system_prompt`` …) are its attributes, ``question_ID`` the task id (else a
  fingerprint of the question);
- a turn is an ``llm`` span named after the agent (``name``): each turn is one model reply of
  that agent. ``role`` is relative to the first agent, so it only goes into the attributes
  (beside ``agent.name`` and ``failkit.message_index``);
- a turn of a code executor (``Computer_terminal``: a name with *terminal* or *executor*) is
  a ``tool`` span; ``exitcode: 0`` makes it ok, another exit code an error, whose type is the
  last Python exception named in the output;
- labels: ``outcome`` (success/failure from ``is_correct``), ``mistake_step`` on the span of
  that history item and ``mistake_agent`` (both commented with ``mistake_reason``, source
  ``human``), ``ground_truth``. A ``mistake_step`` that points at no loaded item is
  quarantined.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from failkit.ingest.base import Staging
from failkit.ingest.messages import (
    at,
    fingerprint,
    leading_object_keys,
    read_records,
    root_span,
    run_trace_id,
    text_of,
)
from failkit.ingest.records import Batch, Row, to_int
from failkit.schema import Kind, Status

_EXECUTOR = re.compile(r"terminal|executor", re.IGNORECASE)
_EXIT_CODE = re.compile(r"^\s*exitcode:\s*(-?\d+)")
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception))\b", re.MULTILINE)
_CORRECT_KEYS = ("is_correct", "is_corrected")
_VERDICT_KEYS = (*_CORRECT_KEYS, "ground_truth", "mistake_agent", "mistake_step", "mistake_reason")
_MARKERS = {"question", "mistake_step", "mistake_agent", *_CORRECT_KEYS}


def _executor_result(text: str | None) -> Row:
    """Status and error of a code executor's turn, from its ``exitcode: N`` line."""
    code = _EXIT_CODE.match(text or "")
    if code is None:
        return {"status": Status.UNSET}
    if int(code.group(1)) == 0:
        return {"status": Status.OK}
    exceptions = _EXCEPTION.findall(text or "")
    return {
        "status": Status.ERROR,
        "error_type": exceptions[-1] if exceptions else None,
        "error_message": text,
    }


def _step(trace_id: str, j: int, position: str, item: Mapping[str, Any], agent: str) -> Row:
    """The span of history item ``j``, spoken by ``agent``."""
    text = text_of(item.get("content"))
    row: Row = {
        "trace_id": trace_id,
        "span_id": f"{trace_id}-{j}",
        "parent_id": f"{trace_id}-run",
        "name": agent,
        "kind": Kind.LLM,
        "start_time": at(j),
        "end_time": at(j + 1),
        "output": text,
        "attributes": {"agent.name": agent, "role": item.get("role"), "failkit.message_index": j},
        "position": position,
    }
    if _EXECUTOR.search(agent):
        row |= {"kind": Kind.TOOL, "tool_name": agent, **_executor_result(text)}
    return row


def _labels(
    batch: Batch, trace_id: str, position: str, record: Mapping[str, Any], steps: dict[int, str]
) -> None:
    """The verdicts of one record; ``steps`` maps loaded history indices to span ids."""
    common = {"trace_id": trace_id, "source": "dataset", "position": position}
    human = common | {"source": "human", "comment": record.get("mistake_reason")}
    correct = next((record[k] for k in _CORRECT_KEYS if record.get(k) is not None), None)
    if correct is not None:
        verdicts = {True: "success", False: "failure"}
        hashable = isinstance(correct, bool | int | float | str)
        value = verdicts.get(correct, str(correct)) if hashable else str(correct)
        batch.labels.append(common | {"name": "outcome", "value": value})
    if record.get("ground_truth") is not None:
        batch.labels.append(common | {"name": "ground_truth", "value": str(record["ground_truth"])})
    agent = record.get("mistake_agent")
    if agent not in (None, ""):
        batch.labels.append(human | {"name": "mistake_agent", "value": str(agent)})
    step = record.get("mistake_step")
    if step in (None, ""):
        return
    index = to_int(step)
    if index is None or index not in steps:
        n = len(record["history"])
        problem = (
            f"history item {index} was quarantined"
            if index is not None and 0 <= index < n
            else f"history has items 0..{n - 1}"
        )
        reason = f"mistake_step {step!r} points at no loaded step ({problem}): fix the annotation"
        batch.reject(position, reason, {k: record.get(k) for k in _VERDICT_KEYS})
        return
    label = {"name": "mistake_step", "value": str(step), "span_id": steps[index]}
    batch.labels.append(human | label)


def load_record(batch: Batch, file_name: str, position: str, record: Any) -> None:
    """Stage one Who&When record: root, one span per history item, task id and labels."""
    history = record.get("history") if isinstance(record, Mapping) else None
    if not isinstance(history, list):
        reason = (
            "no `history` list: a Who&When record is "
            '{"question": ..., "history": [{"role": ..., "name": ..., "content": ...}], ...}'
        )
        batch.reject(position, reason, record)
        return
    trace_id = run_trace_id(file_name, position, record)
    fields = {k: v for k, v in record.items() if k not in ("history", *_VERDICT_KEYS)}
    root = root_span(trace_id, position, file_name, fields)
    root |= {"input": text_of(record.get("question")), "end_time": at(len(history))}
    batch.spans.append(root)
    steps: dict[int, str] = {}
    for j, item in enumerate(history):
        where = f"{position} history {j}"
        agent = (item.get("name") or item.get("role")) if isinstance(item, Mapping) else None
        if not isinstance(agent, str):
            reason = 'history item without a name or role: each item is {"name": <agent>, ...}'
            batch.reject(where, reason, item)
            continue
        step = _step(trace_id, j, where, item, agent)
        batch.spans.append(step)
        steps[j] = step["span_id"]
        if step["kind"] == Kind.LLM:
            root["output"] = step["output"]
    task_id = record.get("question_ID")
    task = fingerprint(root["input"]) if task_id is None else str(task_id)
    batch.traces.append({"trace_id": trace_id, "task_id": task, "position": position})
    _labels(batch, trace_id, position, record, steps)


class WhoAndWhenAdapter:
    """Who&When failure-attribution records (``history`` + ``mistake_step``/``mistake_agent``)."""

    name: ClassVar[str] = "who_and_when"
    description: ClassVar[str] = (
        "Who&When multi-agent runs: {question, history: [{role, name, content}], is_correct, "
        "mistake_agent, mistake_step, mistake_reason}, one JSON object per file"
    )

    def sniff(self, head: bytes, path: Path) -> bool:
        arrays, keys = leading_object_keys(head)
        return arrays <= 1 and "history" in keys and bool(keys & _MARKERS)

    def load(self, stage: Staging) -> None:
        batch = Batch(self.name)
        _, records = read_records(stage, batch)
        for position, record in records:
            load_record(batch, stage.path.name, position, record)
        batch.flush(stage)
