"""TRAIL (Patronus AI): nested OpenInference trace exports and their human annotations.

A trace file is one JSON document (often gzipped) ``{"trace_id", "spans": [...]}`` whose
spans nest their children in ``child_spans``; ``span_attributes`` are flat OpenInference
keys with numbers as strings, ``duration`` is ISO 8601 (``PT2M5.6S``) and ``status_code``
is ``Ok`` / ``Error`` / ``Unset``. The run's id is the document's ``trace_id`` (the file
name stem when absent; in TRAIL both agree). The SWE-bench instance a run works on (in the
root span's logs) becomes its task_id, so runs of one instance are repeated trials.

An annotation file (same name, ``.json``; trailing commas tolerated) holds ``errors[]`` —
category, location (a span id), evidence, description, impact — and ``scores[]``. They
become labels:

- ``error_category``: one per error; value = the category with its spelling normalized to
  the TRAIL taxonomy (:data:`CATEGORIES`), span_id = location, score = impact (LOW 1,
  MEDIUM 2, HIGH 3), comment = description and evidence;
- ``reliability``, ``security``, ``instruction_adherence``, ``plan_opt``, ``overall``: the
  1-5 scores of the run, comment = the annotator's reasoning.
"""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from failkit.ingest.base import Staging, read_json_document, to_text
from failkit.ingest.records import (
    BAD_RECORD,
    Batch,
    Row,
    as_dict,
    as_list,
    loads_tolerant,
    openinference_fields,
    parse_time,
    split_exception,
    to_float,
    unreadable,
)
from failkit.schema import Status

STATUS: dict[str, Status] = {"ok": Status.OK, "error": Status.ERROR, "unset": Status.UNSET}
IMPACT: dict[str, float] = {"LOW": 1.0, "MEDIUM": 2.0, "HIGH": 3.0}
CATEGORIES: tuple[str, ...] = (
    "Language-only", "Tool-related", "Poor Information Retrieval",
    "Tool Output Misinterpretation", "Incorrect Problem Identification", "Tool Selection Errors",
    "Formatting Errors", "Instruction Non-compliance", "Tool Definition Issues",
    "Environment Setup Errors", "Rate Limiting", "Authentication Errors", "Service Errors",
    "Resource Not Found", "Resource Exhaustion", "Timeout Issues", "Context Handling Failures",
    "Resource Abuse", "Goal Deviation", "Task Orchestration", "Incorrect Memory Usage",
)  # fmt: skip
"""The TRAIL error taxonomy's leaf categories, spelled as in the paper."""
_TYPOS = {"complience": "compliance"}
_GENERIC_WORDS = {"error", "errors", "issue", "issues", "failure", "failures"}
_DURATION = re.compile(
    r"^P(?:(?P<d>[\d.]+)D)?(?:T(?:(?P<h>[\d.]+)H)?(?:(?P<m>[\d.]+)M)?(?:(?P<s>[\d.]+)S)?)?$"
)
_SPAN_ID = re.compile(r"^[0-9a-fA-F]{16}$")
_SCORE_SUFFIX = "_score"


def _category_key(text: str) -> str:
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    return " ".join(_TYPOS.get(w, w) for w in words if w not in _GENERIC_WORDS)


_CANONICAL = {_category_key(c): c for c in CATEGORIES}


def normalize_category(text: str) -> str:
    """The taxonomy spelling of an annotated category, or the text trimmed when unknown.

    Case, hyphens, a trailing "Error(s)"/"Issue(s)"/"Failure(s)" and the typo "complience"
    are ignored: ``Formatting Error``, ``Instruction non complience``, ``Language-Only`` and
    ``Task Orchestration Errors`` become ``Formatting Errors``, ``Instruction
    Non-compliance``, ``Language-only`` and ``Task Orchestration``.
    """
    return _CANONICAL.get(_category_key(text), text.strip())


def parse_duration(text: Any) -> timedelta | None:
    """A timedelta from ISO 8601 duration text such as ``PT2M5.655384S``; None otherwise."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or not any(match.groupdict().values()):
        return None
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return timedelta(
        days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )  # fmt: skip


def _logs(raw: Any) -> list[Row]:
    """A span's ``logs``: a list, or the Python repr of one as TRAIL stores it."""
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return []
    return [log for log in as_list(raw) if isinstance(log, dict)]


def _instance_id(logs: list[Row]) -> str | None:
    """The SWE-bench instance the run works on, from the logged ``process_item`` arguments."""
    for log in logs:
        item = as_dict(as_dict(as_dict(log.get("body")).get("function.arguments")).get("item"))
        if item.get("instance_id"):
            return str(item["instance_id"])
    return None


def span_row(span: Row, trace_id: str, parent: str | None) -> Row:
    """One span row (Python values) from a TRAIL span (its children are not included).

    Raises:
        ValueError: the timestamp is not ISO 8601.
    """
    attributes = as_dict(span.get("span_attributes"))
    start = parse_time(span.get("timestamp"))
    duration = parse_duration(span.get("duration"))
    status = STATUS.get(str(span.get("status_code") or "").lower(), Status.UNSET)
    events = [
        {"name": e.get("Name"), "time": e.get("Timestamp"), "attributes": e.get("Attributes")}
        for e in as_list(span.get("events"))
        if isinstance(e, dict)
    ]
    exception = next((e["attributes"] for e in events if e["name"] == "exception"), None) or {}
    parsed_type, parsed_message, _ = split_exception(span.get("status_message"))
    events += [
        {"name": "log", "time": log.get("timestamp"), "attributes": log}
        for log in _logs(span.get("logs"))
    ]
    error = status == Status.ERROR
    return openinference_fields(attributes) | {
        "trace_id": trace_id,
        "span_id": span.get("span_id"),
        "parent_id": span.get("parent_span_id") or parent,
        "name": span.get("span_name"),
        "start_time": start,
        "end_time": start + duration if start and duration is not None else None,
        "status": status,
        "error_type": (exception.get("exception.type") or parsed_type) if error else None,
        "error_message": (exception.get("exception.message") or parsed_message) if error else None,
        "attributes": attributes,
        "events": events,
    }


class TrailTraceAdapter:
    """TRAIL trace export: ``{"trace_id", "spans": [...nested child_spans...]}``, often gzipped."""

    name: ClassVar[str] = "trail_trace"
    description: ClassVar[str] = (
        "TRAIL trace: one JSON document of nested OpenInference spans (spans[].child_spans[])"
    )

    def sniff(self, head: bytes, path: Path) -> bool:
        return (
            head.lstrip().startswith(b"{")
            and b'"spans"' in head
            and (b'"child_spans"' in head or b'"span_attributes"' in head)
        )

    def load(self, stage: Staging) -> None:
        batch = Batch(source=self.name)
        document = read_json_document(stage)
        if document is None:
            return
        if not isinstance(document, dict) or not isinstance(document.get("spans"), list):
            batch.reject("file", "not a TRAIL trace: expected an object with spans[]", document)
            batch.flush(stage)
            return
        trace_id = str(document.get("trace_id") or stage.path.name.split(".", 1)[0])
        task_id = None
        stack: list[tuple[str, Any, str | None]] = [
            (f"spans[{i}]", s, None) for i, s in reversed(list(enumerate(document["spans"])))
        ]
        while stack:
            position, span, parent = stack.pop()
            if not isinstance(span, dict):
                batch.reject(position, "span is not a JSON object", span)
                continue
            try:
                row = span_row(span, trace_id, parent)
            except BAD_RECORD as exc:
                batch.reject(position, unreadable("span", exc), span)
            else:
                batch.spans.append(row | {"position": position})
            task_id = task_id or _instance_id(_logs(span.get("logs")))
            children = as_list(span.get("child_spans"))
            stack.extend(
                (f"{position}.child_spans[{i}]", child, span.get("span_id"))
                for i, child in reversed(list(enumerate(children)))
            )
        batch.traces.append({"trace_id": trace_id, "task_id": task_id, "position": "file"})
        batch.flush(stage)


def annotation_labels(document: Row, trace_id: str, batch: Batch) -> None:
    """Stage labels for one annotation document (see the module docstring)."""
    for i, error in enumerate(as_list(document.get("errors"))):
        position = f"errors[{i}]"
        if not isinstance(error, dict) or not error.get("category"):
            batch.reject(position, "annotated error without a category", error)
            continue
        location = str(error.get("location") or "").strip()
        located = bool(_SPAN_ID.match(location))
        notes = [
            error.get("description"),
            f"Evidence: {error['evidence']}" if error.get("evidence") else None,
            None if located or not location else f"Location: {location}",
        ]
        batch.labels.append({
            "trace_id": trace_id,
            "span_id": location if located else None,
            "name": "error_category",
            "value": normalize_category(str(error["category"])),
            "score": IMPACT.get(str(error.get("impact") or "").upper()),
            "source": "trail",
            "comment": "\n\n".join(t for n in notes if n and (t := to_text(n))),
            "position": position,
        })  # fmt: skip
    for i, scores in enumerate(as_list(document.get("scores"))):
        if not isinstance(scores, dict):
            batch.reject(f"scores[{i}]", "scores entry is not an object", scores)
            continue
        for key, value in scores.items():
            if key.endswith("_reasoning"):
                continue
            name = key.removesuffix(_SCORE_SUFFIX)
            batch.labels.append({
                "trace_id": trace_id,
                "name": name,
                "value": None if value is None else str(value),
                "score": to_float(value),
                "source": "trail",
                "comment": scores.get(f"{name}_reasoning"),
                "position": f"scores[{i}].{key}",
            })  # fmt: skip


class TrailAnnotationsAdapter:
    """TRAIL human annotation: ``{"trace_id", "errors": [...], "scores": [...]}``."""

    name: ClassVar[str] = "trail_annotations"
    description: ClassVar[str] = (
        "TRAIL annotation: errors[] (category, location span id, impact) and scores[] -> labels"
    )

    def sniff(self, head: bytes, path: Path) -> bool:
        return (
            head.lstrip().startswith(b"{")
            and b'"errors"' in head
            and (b'"location"' in head or b'"reliability_score"' in head)
        )

    def load(self, stage: Staging) -> None:
        batch = Batch(source=self.name)
        with stage.open() as f:
            data = f.read()
        try:
            document = loads_tolerant(data)
        except (ValueError, UnicodeDecodeError) as exc:
            batch.reject("file", f"the file is not valid JSON ({exc}); fix it", data)
            batch.flush(stage)
            return
        if not isinstance(document, dict):
            batch.reject("file", "not a TRAIL annotation: expected an object", document)
        else:
            trace_id = str(document.get("trace_id") or stage.path.name.split(".", 1)[0])
            annotation_labels(document, trace_id, batch)
        batch.flush(stage)
