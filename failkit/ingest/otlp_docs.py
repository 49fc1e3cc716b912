"""The small OTLP encodings, turned into OTLP JSON request lines for the one SQL mapping.

- JSON documents: one pretty-printed request (OTLP/HTTP body, protobuf ``json_format``
  output) or several concatenated objects (the console exporter's spans);
- binary protobuf ``ExportTraceServiceRequest`` bodies.

These files are request-sized, so Python-level splitting is fine here; the spans themselves
are still mapped by DuckDB (see :mod:`failkit.ingest.otlp`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from failkit.errors import FormatError
from failkit.ingest.base import Staging

_NON_SPACE = re.compile(r"\S")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CONSOLE_KIND = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_CONSOLE_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def _lines_table(rows: list[tuple[int, str]]) -> pa.Table:
    """Request lines ``(line_no, JSON text)`` as the table the SQL mapping reads."""
    return pa.table(
        {
            "line_no": pa.array([n for n, _ in rows], pa.int64()),
            "line": pa.array([t.encode() for _, t in rows], pa.large_binary()),
        }
    )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# -- JSON documents -------------------------------------------------------------------------
def document_lines(stage: Staging, data: bytes) -> pa.Table:
    """The JSON objects of a document file as request lines, numbered by their first line.

    Objects that are not valid JSON or neither an OTLP request nor a console-exporter span
    are quarantined; after invalid JSON, reading resumes at the next line starting with ``{``.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        stage.quarantine(
            "file", f"the file is not valid UTF-8 text ({exc}): re-export it as UTF-8", data
        )
        return _lines_table([])
    decoder = json.JSONDecoder()
    rows: list[tuple[int, str]] = []
    pos, line_no = 0, 1
    while match := _NON_SPACE.search(text, pos):
        line_no += text.count("\n", pos, match.start())
        start = match.start()
        try:
            obj, pos = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            resume = text.find("\n{", max(exc.pos, start + 1))
            pos = len(text) if resume < 0 else resume + 1
            stage.quarantine(
                f"line {line_no}",
                f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
                "fix or re-export the file",
                text[start:pos],
            )
        else:
            request = _as_request(obj)
            if request is None:
                stage.quarantine(
                    f"line {line_no}",
                    'object is neither an OTLP request {"resourceSpans": [...]} nor a console '
                    "exporter span: remove it or export traces with an OTLP exporter",
                    _dumps(obj),
                )
            else:
                rows.append((line_no, _dumps(request)))
        line_no += text.count("\n", start, pos)
    return _lines_table(rows)


def _as_request(obj: Any) -> dict[str, Any] | None:
    """An OTLP JSON request (camelCase keys) for a parsed object, None if it is not one."""
    if not isinstance(obj, dict):
        return None
    if "resourceSpans" in obj:
        return obj
    if "resource_spans" in obj:
        return _camel(obj)
    if isinstance(obj.get("context"), dict) and "name" in obj:
        return _console_request(obj)
    return None


def _camel(obj: Any) -> Any:
    """protobuf field names (``resource_spans``) as JSON names (``resourceSpans``)."""
    if isinstance(obj, dict):
        return {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): _camel(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_camel(v) for v in obj]
    return obj


# -- console exporter -----------------------------------------------------------------------
def _console_request(span: dict[str, Any]) -> dict[str, Any]:
    """A ConsoleSpanExporter span object as a one-span OTLP JSON request."""
    context = span.get("context") or {}
    status = span.get("status") or {}
    resource = span.get("resource") or {}
    kind = str(span.get("kind") or "").rpartition(".")[2]
    otlp_span = {
        "traceId": _hex(context.get("trace_id")),
        "spanId": _hex(context.get("span_id")),
        "parentSpanId": _hex(span.get("parent_id")),
        "name": span.get("name"),
        "kind": _CONSOLE_KIND.get(kind, 0),
        "startTimeUnixNano": _iso_ns(span.get("start_time")),
        "endTimeUnixNano": _iso_ns(span.get("end_time")),
        "attributes": _key_values(span.get("attributes")),
        "events": [
            {
                "timeUnixNano": _iso_ns(e.get("timestamp")),
                "name": e.get("name"),
                "attributes": _key_values(e.get("attributes")),
            }
            for e in span.get("events") or []
        ],
        "status": {
            "code": _CONSOLE_STATUS.get(str(status.get("status_code")), 0),
            "message": status.get("description"),
        },
    }
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _key_values(resource.get("attributes"))},
                "scopeSpans": [{"spans": [otlp_span]}],
            }
        ]
    }


def _hex(value: Any) -> str | None:
    return None if value is None else str(value).removeprefix("0x")


def _iso_ns(value: Any) -> str | None:
    """Unix nanoseconds (exact integer arithmetic) of an ISO 8601 time."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return str((t - _EPOCH) // timedelta(microseconds=1) * 1000)


def _key_values(attributes: Any) -> list[dict[str, Any]]:
    if not isinstance(attributes, dict):
        return []
    return [{"key": str(k), "value": _any_value(v)} for k, v in attributes.items()]


def _any_value(v: Any) -> dict[str, Any]:
    """A Python attribute value as an OTLP AnyValue."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [_any_value(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": _key_values(v)}}
    return {} if v is None else {"stringValue": str(v)}


# -- binary protobuf ------------------------------------------------------------------------
def protobuf_lines(data: bytes, path: Path) -> pa.Table:
    """A binary ``ExportTraceServiceRequest`` as one request line (ids base64, like json_format).

    Raises:
        FormatError: the bytes do not decode as a trace request.
    """
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    try:
        request = ExportTraceServiceRequest.FromString(data)
    except DecodeError as exc:
        raise FormatError(
            f"{path}: looks like a binary OTLP protobuf trace request but does not decode "
            f"({exc}); check that the file is complete and not several messages concatenated"
        ) from exc
    return _lines_table([(1, _dumps(MessageToDict(request)))])


def is_protobuf_request(head: bytes) -> bool:
    """True when the bytes start like ``ExportTraceServiceRequest`` whose first span has ids.

    Walks the wire format of a possibly truncated head: resource_spans (1) → scope_spans (2)
    → spans (2) → trace_id (1, 16 bytes) and span_id (2, 8 bytes).
    """
    try:
        first = next(_fields(head, 0, len(head)), None)
        if first is None or first[:2] != (1, 2):
            return False
        scope_spans = _first(head, first[2], first[3], 2)
        span = _first(head, *scope_spans, 2) if scope_spans else None
        if span is None:
            return False
        trace_id, span_id = _first(head, *span, 1), _first(head, *span, 2)
    except ValueError:
        return False
    if trace_id is None or span_id is None:
        return False
    return trace_id[1] - trace_id[0] == 16 and span_id[1] - span_id[0] == 8


def _first(buf: bytes, start: int, end: int, field: int) -> tuple[int, int] | None:
    """(start, end) of the first length-delimited ``field`` in ``buf[start:end]``."""
    for number, wire, value_start, value_end in _fields(buf, start, end):
        if number == field and wire == 2:
            return value_start, value_end
    return None


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field, wire type, value start, value end) of the fields in ``buf[start:end]``."""
    i, end = start, min(end, len(buf))
    while i < end:
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field 0")
        if wire == 2:
            size, i = _varint(buf, i)
            yield number, wire, i, i + size
            i += size
        elif wire == 0:
            _, i = _varint(buf, i)
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire}")


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while i < len(buf) and shift < 64:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7
    raise ValueError("truncated varint")
