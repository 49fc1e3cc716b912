"""Inspect AI eval logs: ``.eval`` archives and ``.json`` documents.

Each sample (id x epoch) is one run: trace_id is the sample ``uuid``, task_id is
``<task>/<sample id>`` so that epochs are repeated trials of one task. The run gets a root
span for the sample; ``span_begin``/``span_end`` events become chain spans (``agent`` →
agent, ``scorer`` → evaluator), ``model`` events llm spans and ``tool`` events tool spans.
Inspect logs a ``tool`` event beside the ``span_begin`` of type tool that wraps the call;
the two become one tool span. ``error`` events mark their span (or the root) as failed.
Scores become labels, and the headline scorer's value an ``outcome`` label.

``.eval`` files are zip archives (zstd-compressed by recent Inspect versions, which the
standard ``zipfile`` cannot read; pyarrow's zstd codec does). Archives with absolute or
``../`` member names, or members whose declared size is implausible, are refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import IO, Any, ClassVar

import pyarrow as pa

from failkit.errors import FailkitError
from failkit.ingest.base import Staging, loads_json, read_json_document
from failkit.ingest.records import (
    BAD_RECORD,
    Batch,
    Row,
    as_dict,
    as_list,
    exception_event,
    lower_id,
    parse_time,
    split_exception,
    to_float,
    unreadable,
    usage_tokens,
)
from failkit.schema import Kind, Status

MAX_MEMBER_BYTES = 1 << 30
"""Largest uncompressed archive member read (1 GiB)."""
MAX_RATIO = 1000
"""Largest compression ratio accepted for members over 1 MiB (zip bombs go far beyond)."""

SPAN_KINDS: dict[str, Kind] = {"agent": Kind.AGENT, "scorer": Kind.EVALUATOR, "tool": Kind.TOOL}
# Inspect's letter grades (inspect_ai.scorer.value_to_float)
LETTER_SCORES: dict[str, float] = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}
_SUCCESS_VALUES = {"c", "correct", "true", "yes", "1", "1.0"}
# events that become spans, or repeat what the sample already holds
_NOT_NOTES = {"span_begin", "span_end", "model", "tool", "score", "state", "store",
              "sample_init"}  # fmt: skip
_EVENT_HOUSEKEEPING = ("uuid", "span_id", "timestamp", "working_start", "event", "pending")
_ZIP_MAGIC = b"PK\x03\x04"
_ZSTD = 93
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")
_ATTACHMENT = "attachment://"


# -- archives ------------------------------------------------------------------------------
def check_members(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse archives with unsafe member names or implausible sizes, before reading any.

    Raises:
        FailkitError: a member name is absolute or climbs out (``../``), or a member declares
            more than :data:`MAX_MEMBER_BYTES` or a compression ratio above :data:`MAX_RATIO`.
    """
    for info in infos:
        name = info.filename.replace("\\", "/")
        if (
            name.startswith("/")
            or re.match(r"^[A-Za-z]:", name)
            or ".." in PurePosixPath(name).parts
        ):
            raise FailkitError(
                f"{path}: refusing the archive: member {info.filename!r} has an absolute or "
                "'../' name, which Inspect never writes (a crafted archive?)"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > MAX_MEMBER_BYTES or (info.file_size > 1 << 20 and ratio > MAX_RATIO):
            raise FailkitError(
                f"{path}: refusing the archive: member {info.filename!r} declares "
                f"{info.file_size:,} bytes from {info.compress_size:,} compressed (limits: "
                f"{MAX_MEMBER_BYTES:,} bytes, ratio {MAX_RATIO}); a zip bomb or a damaged file"
            )


def read_member(archive: zipfile.ZipFile, raw: IO[bytes], info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, never more than it declares; zstd members are decoded with pyarrow.

    Raises:
        ValueError: the member is damaged or uses an unsupported compression.
    """
    if info.compress_type != _ZSTD:
        try:
            with archive.open(info) as member:
                return member.read(info.file_size)
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, zlib.error) as exc:
            raise ValueError(str(exc) or type(exc).__name__) from exc
    raw.seek(info.header_offset)
    try:
        header = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
    except struct.error as exc:
        raise ValueError(f"local file header is cut short ({exc})") from exc
    if header[0] != _ZIP_MAGIC:
        raise ValueError("no local file header where the directory points")
    raw.seek(info.header_offset + _LOCAL_HEADER.size + header[-2] + header[-1])
    try:
        data = pa.decompress(
            raw.read(info.compress_size),
            decompressed_size=info.file_size,
            codec="zstd",
            asbytes=True,
        )
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"zstd data is damaged ({exc})") from exc
    if zlib.crc32(data) != info.CRC:
        raise ValueError("CRC check failed")
    return bytes(data)


def _archive_documents(stage: Staging, batch: Batch) -> tuple[Row, list[tuple[str, Row]]]:
    """(log header, [(position, sample)]) of a ``.eval`` archive; bad members quarantined."""
    header: Row = {}
    samples: list[tuple[str, Row]] = []
    try:
        archive = zipfile.ZipFile(stage.path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise FailkitError(
            f"{stage.path}: not a readable zip archive ({exc}); an Inspect .eval log is a zip "
            "file: re-export it, or check that it was copied whole"
        ) from exc
    with open(stage.path, "rb") as raw, archive:
        infos = archive.infolist()
        check_members(stage.path, infos)
        names = {i.filename for i in infos}
        header_name = "header.json" if "header.json" in names else "_journal/start.json"
        for info in infos:
            is_sample = info.filename.startswith("samples/") and info.filename.endswith(".json")
            if not is_sample and info.filename != header_name:
                continue
            position = f"member {info.filename}"
            try:
                document = loads_json(read_member(archive, raw, info))
            except ValueError as exc:
                batch.reject(position, f"archive member cannot be read ({exc}); re-export it")
                continue
            if not isinstance(document, dict):
                batch.reject(position, "archive member is not a JSON object", document)
            elif is_sample:
                samples.append((position, document))
            else:
                header = document
    return header, samples


# -- samples -------------------------------------------------------------------------------
def resolve_attachments(value: Any, attachments: dict[str, Any]) -> Any:
    """``value`` with every ``attachment://<hash>`` string replaced by its content."""
    if isinstance(value, str):
        if value.startswith(_ATTACHMENT):
            return attachments.get(value[len(_ATTACHMENT) :], value)
        return value
    if isinstance(value, list):
        return [resolve_attachments(v, attachments) for v in value]
    if isinstance(value, dict):
        return {k: resolve_attachments(v, attachments) for k, v in value.items()}
    return value


def _flatten(events: list[Any], parent: str | None = None) -> Iterator[tuple[Row, str | None]]:
    """(event, enclosing span) in log order, including events nested in tool events."""
    for event in events:
        if not isinstance(event, dict):
            continue
        yield event, event.get("span_id") or parent
        if event.get("event") == "tool" and isinstance(event.get("events"), list):
            yield from _flatten(event["events"], event.get("uuid"))


def _referenced(refs: Any, pool: list[Any]) -> list[Any]:
    """Messages named by ``input_refs`` ranges ``[[start, end), …]`` into ``events_data``."""
    return [m for start, end in refs or [] for m in pool[start:end]]


def _times(event: Row) -> tuple[Any, Any]:
    start = parse_time(event.get("timestamp"))
    end = parse_time(event.get("completed"))
    working = to_float(event.get("working_time"))
    if end is None and start is not None and working is not None:
        end = start + timedelta(seconds=working)
    return start, end


def _model_span(event: Row, messages: list[Any]) -> Row:
    output = as_dict(event.get("output"))
    error_type, message, stack = split_exception(event.get("error"))
    model = str(event.get("model") or output.get("model") or "") or None
    tokens_in, tokens_out = usage_tokens(output.get("usage"))
    return {
        "name": model,
        "kind": Kind.LLM,
        "status": Status.ERROR if event.get("error") else Status.OK,
        "error_type": error_type,
        "error_message": message,
        "model": output.get("model") or model,
        "provider": model.split("/", 1)[0] if model and "/" in model else None,
        "input": event.get("input") or _referenced(event.get("input_refs"), messages),
        "output": [c.get("message") for c in output.get("choices") or [] if isinstance(c, dict)],
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "attributes": {
            f"inspect.{k}": event[k] for k in ("config", "tool_choice", "cache") if k in event
        },
        "events": [exception_event(error_type, message, stack, None)] if stack else [],
    }


def _tool_span(event: Row, sample_error: tuple[str | None, str | None]) -> Row:
    error = as_dict(event.get("error"))
    failed = bool(error or event.get("failed"))
    # an unexpected exception ends the sample; Inspect records it on the sample, not the event
    error_type, message = (error.get("type"), error.get("message")) if error else sample_error
    return {
        "name": event.get("function"),
        "kind": Kind.TOOL,
        "status": Status.ERROR if failed else Status.OK,
        "error_type": error_type if failed else None,
        "error_message": message if failed else None,
        "tool_name": event.get("function"),
        "tool_call_id": event.get("id"),
        "tool_args": event.get("arguments"),
        "input": event.get("arguments"),
        "output": event.get("result"),
        "attributes": {"inspect.failed": True} if event.get("failed") else {},
    }


def _pair_tool_spans(events: list[tuple[Row, str | None]]) -> dict[str, str]:
    """span_begin id (type tool) → uuid of the tool event it wraps (same parent and name)."""
    pending: dict[tuple[Any, Any], list[Row]] = {}
    for event, parent in events:
        if event.get("event") == "tool" and event.get("uuid"):
            pending.setdefault((parent, event.get("function")), []).append(event)
    for queue in pending.values():
        queue.sort(key=lambda e: str(e.get("timestamp")))
    pairs: dict[str, str] = {}
    begins = [e for e, _ in events if e.get("event") == "span_begin" and e.get("type") == "tool"]
    for begin in sorted(begins, key=lambda e: str(e.get("timestamp"))):
        queue = pending.get((begin.get("parent_id"), begin.get("name"))) or []
        if queue and begin.get("id"):
            pairs[begin["id"]] = queue.pop(0)["uuid"]
    return pairs


def _add_note(target: Row, event: Row) -> None:
    """Attach a non-span event to its span: errors mark it failed, others become span events."""
    time = parse_time(event.get("timestamp"))
    events = target.setdefault("events", [])
    if event.get("event") != "error":
        details = {k: v for k, v in event.items() if k not in _EVENT_HOUSEKEEPING}
        stamp = time.isoformat() if time else None
        events.append(
            {"name": f"inspect.{event.get('event')}", "time": stamp, "attributes": details}
        )
        return
    error = as_dict(event.get("error"))
    error_type, message, _ = split_exception(error.get("message"))
    target.update(status=Status.ERROR, error_type=error_type, error_message=message)
    events.append(exception_event(error_type, message, error.get("traceback"), time))


def event_spans(sample: Row, root: Row) -> list[Row]:
    """The root span followed by span rows (Python values) for the sample's events."""
    events = list(_flatten(as_list(sample.get("events"))))
    events_data = as_dict(sample.get("events_data"))
    messages = events_data.get("messages") or []
    sample_error = split_exception(as_dict(sample.get("error")).get("message"))[:2]
    ends = {e.get("id"): e.get("timestamp") for e, _ in events if e.get("event") == "span_end"}
    alias = _pair_tool_spans(events)
    spans: dict[str, Row] = {root["span_id"]: root}
    notes: list[tuple[str | None, Row]] = []
    for i, (event, parent) in enumerate(events, start=1):
        kind = event.get("event")
        where = {"position": f"{root['position']} event {i}", "parent_id": parent}
        if kind == "span_begin" and event.get("id") and event["id"] not in alias:
            span_kind = SPAN_KINDS.get(str(event.get("type")), Kind.CHAIN)
            end = parse_time(ends.get(event["id"]))
            spans[event["id"]] = where | {
                "span_id": event["id"],
                "parent_id": event.get("parent_id"),
                "name": event.get("name"),
                "kind": span_kind,
                "start_time": parse_time(event.get("timestamp")),
                "end_time": end,
                "status": Status.OK if end else Status.UNSET,
                "tool_name": event.get("name") if span_kind == Kind.TOOL else None,
                "attributes": {"inspect.span_type": event.get("type")},
            }
        elif kind in ("model", "tool") and event.get("uuid"):
            body = (
                _model_span(event, messages) if kind == "model" else _tool_span(event, sample_error)
            )
            start, end = _times(event)
            spans[event["uuid"]] = (
                where | body | {"span_id": event["uuid"], "start_time": start, "end_time": end}
            )
        elif kind not in _NOT_NOTES:
            notes.append((parent, event))
    for parent, event in notes:
        _add_note(spans.get(alias.get(parent or "", parent or ""), root), event)
    for span in spans.values():
        if span is not root:
            parent = alias.get(span["parent_id"] or "", span["parent_id"])
            span["parent_id"] = parent if parent in spans else root["span_id"]
    return list(spans.values())


def _outcome_value(value: Any) -> str | None:
    """success / failure from a score value (C, correct, true, 1 mean success); None for dicts."""
    if isinstance(value, dict | list) or value is None:
        return None
    return "success" if str(value).strip().lower() in _SUCCESS_VALUES else "failure"


def score_labels(trace_id: str, scores: Any, headline: str | None) -> list[Row]:
    """One label per scorer (name = scorer), and ``outcome`` from the headline scorer."""
    graded = {str(n): as_dict(s) or {"value": s} for n, s in as_dict(scores).items()}
    labels: list[Row] = []
    for name, score in graded.items():
        value = score.get("value")
        letter = LETTER_SCORES.get(value) if isinstance(value, str) else None
        labels.append({
            "trace_id": trace_id,
            "name": name,
            "value": value if isinstance(value, str) else json.dumps(value),
            "score": to_float(value) if letter is None else letter,
            "source": "inspect_ai",
            "comment": score.get("explanation"),
        })  # fmt: skip
    chosen = headline if headline in graded else next(iter(graded), None)
    value = graded[chosen].get("value") if chosen else None
    outcome = _outcome_value(value)
    if outcome:
        labels.append({
            "trace_id": trace_id,
            "name": "outcome",
            "value": outcome,
            "score": 1.0 if outcome == "success" else 0.0,
            "source": "inspect_ai",
            "comment": f"scorer {chosen} gave {value!r}",
        })  # fmt: skip
    return labels


def sample_rows(log: Row, sample: Row, position: str) -> tuple[list[Row], Row, list[Row]]:
    """(spans, run metadata, labels) of one sample.

    Raises:
        ValueError: a time is not ISO 8601.
    """
    sample = resolve_attachments(sample, as_dict(sample.get("attachments")))
    info = as_dict(log.get("eval"))
    task, sample_id, epoch = info.get("task"), sample.get("id"), sample.get("epoch")
    fallback = hashlib.sha256(f"{info.get('eval_id')}/{sample_id}/{epoch}".encode()).hexdigest()
    trace_id = lower_id(sample.get("uuid")) or fallback[:32]
    error = as_dict(sample.get("error"))
    error_type, message, _ = split_exception(error.get("message"))
    end = parse_time(sample.get("completed_at"))
    output = as_dict(sample.get("output"))
    root: Row = {
        "span_id": trace_id,
        "name": str(task or "sample"),
        "kind": Kind.CHAIN,
        "start_time": parse_time(sample.get("started_at")),
        "end_time": end,
        "status": Status.ERROR if error else Status.OK if end else Status.UNSET,
        "error_type": error_type,
        "error_message": message,
        "input": sample.get("input"),
        "output": output.get("completion"),
        "attributes": {
            "inspect.eval_id": info.get("eval_id"),
            "inspect.run_id": info.get("run_id"),
            "inspect.task": task,
            "inspect.model": info.get("model"),
            "inspect.sample_id": sample_id,
            "inspect.epoch": epoch,
            "inspect.target": sample.get("target"),
            "inspect.metadata": sample.get("metadata"),
        },
        "position": position,
    }
    spans = event_spans(sample, root)
    # the synthetic root encloses its events (Inspect's init span starts before started_at)
    starts = [s["start_time"] for s in spans if s.get("start_time")]
    ends = [s["end_time"] for s in spans if s.get("end_time")]
    root.update(start_time=min(starts, default=None), end_time=max(ends, default=None))
    for span in spans:
        span["trace_id"] = trace_id
    meta = {
        "trace_id": trace_id,
        "name": root["name"],
        "task_id": f"{task}/{sample_id}" if task else str(sample_id),
        "position": position,
    }
    headline = as_dict(as_dict(log.get("results")).get("headline")).get("scorer")
    return spans, meta, score_labels(trace_id, sample.get("scores"), headline)


def _load_samples(batch: Batch, log: Row, samples: list[tuple[str, Row]]) -> None:
    for position, sample in samples:
        try:
            spans, meta, labels = sample_rows(log, sample, position)
        except BAD_RECORD as exc:
            batch.reject(position, unreadable("sample", exc), sample)
            continue
        batch.spans.extend(spans)
        batch.traces.append(meta)
        batch.labels.extend(labels)


class InspectEvalAdapter:
    """Inspect AI ``.eval`` log archive (zip with header.json and samples/*.json)."""

    name: ClassVar[str] = "inspect_eval"
    description: ClassVar[str] = (
        "Inspect AI .eval log (zip: header.json, samples/<id>_epoch_<n>.json)"
    )

    def sniff(self, head: bytes, path: Path) -> bool:
        if not head.startswith(_ZIP_MAGIC):
            return False
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return False
        return any(
            n in ("header.json", "_journal/start.json") or n.startswith("samples/") for n in names
        )

    def load(self, stage: Staging) -> None:
        batch = Batch(source=self.name)
        log, samples = _archive_documents(stage, batch)
        _load_samples(batch, log, samples)
        batch.flush(stage)


class InspectJsonAdapter:
    """Inspect AI ``.json`` log: one document with ``eval`` and ``samples[]``."""

    name: ClassVar[str] = "inspect_json"
    description: ClassVar[str] = "Inspect AI .json log (one document: version, eval, samples[])"

    def sniff(self, head: bytes, path: Path) -> bool:
        return (
            head.lstrip().startswith(b"{")
            and b'"eval"' in head
            and b'"eval_id"' in head
            and b'"task"' in head
        )

    def load(self, stage: Staging) -> None:
        batch = Batch(source=self.name)
        log = read_json_document(stage)
        if log is None:
            return
        if not isinstance(log, dict) or not isinstance(log.get("samples", []), list):
            batch.reject("file", "not an Inspect log: expected an object with samples[]", log)
        else:
            samples = []
            for i, sample in enumerate(as_list(log.get("samples"))):
                if isinstance(sample, dict):
                    samples.append((f"samples[{i}]", sample))
                else:
                    batch.reject(f"samples[{i}]", "sample is not a JSON object", sample)
            _load_samples(batch, log, samples)
        batch.flush(stage)
