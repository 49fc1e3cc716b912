"""The normalized store's contract: tables, columns, enums — defined once.

Every layer takes its column names from here; :class:`TraceStore` creates the tables
from :data:`TABLES`, and the pydantic models validate records that enter one at a time
(labels from a DataFrame, native JSONL documentation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Kind(StrEnum):
    """What a span is."""

    AGENT = "agent"
    LLM = "llm"
    TOOL = "tool"
    CHAIN = "chain"
    RETRIEVER = "retriever"
    EMBEDDING = "embedding"
    GUARDRAIL = "guardrail"
    EVALUATOR = "evaluator"
    HUMAN = "human"
    OTHER = "other"


class Status(StrEnum):
    """What the span said about itself."""

    OK = "ok"
    ERROR = "error"
    UNSET = "unset"


class Outcome(StrEnum):
    """What the run achieved (from labels, rewards, evals) — not the same as its status."""

    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Column:
    """One column of a store table."""

    name: str
    sql_type: str
    doc: str
    nullable: bool = True
    compression: str | None = None
    """DuckDB compression of the stored column (``zstd``); None lets DuckDB choose."""


def _c(
    name: str, sql_type: str, doc: str, nullable: bool = True, compression: str | None = None
) -> Column:
    return Column(name, sql_type, doc, nullable, compression)


_ZSTD = "zstd"
"""For the long texts. On 1M OTLP spans, the attributes in zstd loaded in 41 CPU-s instead of
46 and took 197 MB instead of 497; the other long texts in zstd insert 20 % faster than in
DuckDB's own choice and bring the file to 160 MB."""


SPAN_COLUMNS: tuple[Column, ...] = (
    _c("trace_id", "VARCHAR", "run id, lowercase text (base64 ids become hex)", False),
    _c("span_id", "VARCHAR", "span / step id, lowercase text", False),
    _c("parent_id", "VARCHAR", "parent span id; NULL for roots"),
    _c("name", "VARCHAR", "span name as logged"),
    _c("kind", "VARCHAR", "one of Kind", False),
    _c("start_time", "TIMESTAMP", "UTC start"),
    _c("end_time", "TIMESTAMP", "UTC end"),
    _c("duration_s", "DOUBLE", "end - start in seconds (from the source's nanoseconds)"),
    _c("status", "VARCHAR", "one of Status", False),
    _c("error_type", "VARCHAR", "exception type or error category"),
    _c(
        "error_message",
        "VARCHAR",
        "error message (status message, exception, …)",
        compression=_ZSTD,
    ),
    _c("model", "VARCHAR", "model name (response model first)"),
    _c("provider", "VARCHAR", "model provider"),
    _c("tool_name", "VARCHAR", "tool called by a tool span"),
    _c("tool_call_id", "VARCHAR", "tool call id linking the LLM request and the tool span"),
    _c("tool_args", "JSON", "tool arguments as JSON", compression=_ZSTD),
    _c("input", "VARCHAR", "input as text (JSON kept as text)", compression=_ZSTD),
    _c("output", "VARCHAR", "output as text (JSON kept as text)", compression=_ZSTD),
    _c("tokens_in", "BIGINT", "input tokens of this span alone"),
    _c("tokens_out", "BIGINT", "output tokens of this span alone"),
    _c("cost_usd", "DOUBLE", "cost of this span alone in USD"),
    _c("confidence", "DOUBLE", "logged confidence in [0, 1]"),
    _c(
        "attributes",
        "JSON",
        "every source attribute, flattened to a JSON object",
        compression=_ZSTD,
    ),
    _c("events", "JSON", "span events as a JSON list", compression=_ZSTD),
    _c("source", "VARCHAR", "format the row came from", False),
    _c("ingest_id", "VARCHAR", "load that wrote the row", False),
)

TRACE_COLUMNS: tuple[Column, ...] = (
    _c("trace_id", "VARCHAR", "run id", False),
    _c("source", "VARCHAR", "format the run came from"),
    _c("name", "VARCHAR", "root span name"),
    _c("task_id", "VARCHAR", "groups repeated runs of one task (pass^k)"),
    _c("session_id", "VARCHAR", "conversation / session id"),
    _c("user_id", "VARCHAR", "end user id"),
    _c("start_time", "TIMESTAMP", "earliest span start"),
    _c("end_time", "TIMESTAMP", "latest span end"),
    _c("duration_s", "DOUBLE", "end_time - start_time in seconds"),
    _c("n_spans", "BIGINT", "spans in the run"),
    _c("n_llm", "BIGINT", "llm spans"),
    _c("n_tool", "BIGINT", "tool spans"),
    _c("tokens_in", "BIGINT", "input tokens summed over llm spans only"),
    _c("tokens_out", "BIGINT", "output tokens summed over llm spans only"),
    _c("cost_usd", "DOUBLE", "cost summed over spans that are not agents/chains"),
    _c("status", "VARCHAR", "error if any span is an error, else ok / unset"),
    _c("outcome", "VARCHAR", "one of Outcome, from labels named 'outcome'"),
)

LABEL_COLUMNS: tuple[Column, ...] = (
    _c("trace_id", "VARCHAR", "run the verdict is about", False),
    _c("span_id", "VARCHAR", "step the verdict is about; NULL for the whole run"),
    _c("name", "VARCHAR", "what is judged ('outcome', 'reward', 'mistake_step', …)", False),
    _c("value", "VARCHAR", "the verdict as text"),
    _c("score", "DOUBLE", "the verdict as a number, where it has one"),
    _c("source", "VARCHAR", "who judged (human, dataset, llm judge, …)"),
    _c("comment", "VARCHAR", "free text"),
    _c("ingest_id", "VARCHAR", "load or add_labels call that wrote it"),
)

INGEST_COLUMNS: tuple[Column, ...] = (
    _c("ingest_id", "VARCHAR", "id of the load", False),
    _c("path", "VARCHAR", "file loaded", False),
    _c("format", "VARCHAR", "detected or requested format", False),
    _c("sha256", "VARCHAR", "content hash; a file with a known hash is not loaded again", False),
    _c("started", "TIMESTAMP", "UTC start of the load", False),
    _c("seconds", "DOUBLE", "wall time of the load"),
    _c("rows_read", "BIGINT", "records read"),
    _c("rows_loaded", "BIGINT", "records loaded"),
    _c("rows_quarantined", "BIGINT", "records quarantined"),
)

QUARANTINE_COLUMNS: tuple[Column, ...] = (
    _c("ingest_id", "VARCHAR", "load that met the record", False),
    _c("path", "VARCHAR", "file it came from", False),
    _c("position", "VARCHAR", "where in the file (line 12, span 3 of line 4, member x.json)"),
    _c("reason", "VARCHAR", "what is wrong and how to fix it", False),
    _c("raw", "VARCHAR", "the record as read, truncated"),
)

PENDING_COLUMNS: tuple[Column, ...] = (
    _c("ingest_id", "VARCHAR", "id of the load", False),
    _c("path", "VARCHAR", "file being loaded", False),
    _c("started", "TIMESTAMP", "UTC start of the load", False),
    _c("pid", "BIGINT", "process running the load"),
    _c("host", "VARCHAR", "machine of that process"),
)
"""Table ``loads_pending``: loads that committed some chunks and have not ended. The next
writable ``connect`` rolls back a row left by a process that died (not a user table)."""

# Trace-level metadata an adapter may know beyond its spans (task ids, sessions).
TRACE_META_COLUMNS: tuple[Column, ...] = tuple(
    c for c in TRACE_COLUMNS if c.name in ("trace_id", "name", "task_id", "session_id", "user_id")
)

TABLES: dict[str, tuple[Column, ...]] = {
    "spans": SPAN_COLUMNS,
    "traces": TRACE_COLUMNS,
    "labels": LABEL_COLUMNS,
    "ingests": INGEST_COLUMNS,
    "quarantine": QUARANTINE_COLUMNS,
}


def names(columns: tuple[Column, ...]) -> list[str]:
    """Column names of a column set, in order."""
    return [c.name for c in columns]


def create_table_sql(table: str, columns: tuple[Column, ...], *, temp: bool = False) -> str:
    """``CREATE TABLE`` statement for a column set (identifiers are fixed, never user input).

    A temp table (a load's staging) is never compressed: it lives for one chunk, and DuckDB
    compressing it made staging 1M OTLP spans 20 % slower.
    """
    cols = ",\n  ".join(
        f'"{c.name}" {c.sql_type}{"" if c.nullable or temp else " NOT NULL"}'
        + (f" USING COMPRESSION {compression}" if compression else "")
        for c in columns
        for compression in ["uncompressed" if temp else c.compression]
    )
    prefix = "CREATE OR REPLACE TEMP TABLE" if temp else "CREATE TABLE IF NOT EXISTS"
    return f"{prefix} {table} (\n  {cols}\n)"


QUARANTINE_RAW_CHARS = 2000
"""How much of a bad record is kept in ``quarantine.raw``."""


class LabelRecord(BaseModel):
    """One verdict about a run or a step (``add_labels`` rows, native JSONL ``type: label``)."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    value: str | None = None
    span_id: str | None = None
    score: float | None = None
    source: str | None = None
    comment: str | None = None


class SpanRecord(BaseModel):
    """One span of failkit's own JSONL (``type: span``, the default). Documents the format."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(min_length=1)
    span_id: str = Field(min_length=1)
    parent_id: str | None = None
    name: str | None = None
    kind: Kind = Kind.OTHER
    start_time: datetime | float | None = None
    end_time: datetime | float | None = None
    status: Status = Status.UNSET
    error_type: str | None = None
    error_message: str | None = None
    model: str | None = None
    provider: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    tool_args: Any = None
    input: Any = None
    output: Any = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    confidence: float | None = None
    attributes: dict[str, Any] | None = None
    events: list[Any] | None = None


class TraceRecord(BaseModel):
    """Run metadata of failkit's own JSONL (``type: trace``)."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(min_length=1)
    name: str | None = None
    task_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None
