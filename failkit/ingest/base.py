"""The contract between the store and the format adapters.

An adapter turns one file into rows of the normalized schema. It writes them into the
load's staging tables (``stage_spans``, ``stage_traces``, ``stage_labels``,
``stage_quarantine``) through a :class:`Staging`; the store validates the staged rows,
moves the bad ones to ``quarantine`` and commits the rest: in chunks for a big file (see
:meth:`Staging.flush`), and still whole or not at all.

Big formats fill the staging tables with DuckDB SQL (``stage.con`` and the table names), or
hand their span rows over in Arrow (:meth:`Staging.add_spans`); small, deeply nested ones
build Python dicts and call :meth:`Staging.append`, which goes through one Arrow table per
call, never a row at a time.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol, cast

import duckdb
import pyarrow as pa

from failkit.schema import (
    LABEL_COLUMNS,
    QUARANTINE_RAW_CHARS,
    SPAN_COLUMNS,
    TRACE_META_COLUMNS,
    Column,
    create_table_sql,
)

GZIP_MAGIC = b"\x1f\x8b"
SNIFF_BYTES = 64 * 1024

# Staged rows carry where they came from, so that a bad one can be quarantined precisely.
POSITION = Column("position", "VARCHAR", "where in the file the row came from")

STAGE_TABLES: dict[str, tuple[Column, ...]] = {
    "stage_spans": (*tuple(c for c in SPAN_COLUMNS if c.name != "ingest_id"), POSITION),
    "stage_traces": (*TRACE_META_COLUMNS, POSITION),
    "stage_labels": (*tuple(c for c in LABEL_COLUMNS if c.name != "ingest_id"), POSITION),
    "stage_quarantine": (
        POSITION,
        Column("reason", "VARCHAR", "what is wrong"),
        Column("raw", "VARCHAR", "record as read"),
    ),
}


def create_stage_tables(
    con: duckdb.DuckDBPyConnection, tables: Iterable[str] = STAGE_TABLES
) -> None:
    """(Re)create the named staging tables of a load, empty, as connection-local temp tables."""
    for table in tables:
        con.execute(create_table_sql(table, STAGE_TABLES[table], temp=True))


_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "TIMESTAMP": pa.timestamp("us"),
    "BOOLEAN": pa.bool_(),
}


def arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    """Arrow schema of a column set."""
    return pa.schema([(c.name, _ARROW_TYPES[c.sql_type]) for c in columns])


RUN_ID_KEYS = (
    "session.id", "gen_ai.conversation.id", "user.id", "enduser.id", "failkit.task_id",
)  # fmt: skip
"""The span attributes that name the run's session, user and task (``sql/run_ids.sql``)."""
SPAN_ROW_SCHEMA = pa.schema(
    [
        *[
            (c.name, pa.json_() if c.sql_type == "JSON" else _ARROW_TYPES[c.sql_type])
            for c in STAGE_TABLES["stage_spans"]
        ],
        ("ids", pa.struct([(key, pa.string()) for key in RUN_ID_KEYS])),
    ]
)
"""The Arrow schema of span rows staged with :meth:`Staging.add_spans`: the columns of
``stage_spans``, and ``ids``, the span's attributes of :data:`RUN_ID_KEYS` as text (what
``json_transform`` gives), so that the store need not read them from ``attributes``."""


def truncate_raw(raw: str | bytes | None) -> str | None:
    """A bad record as kept in ``quarantine.raw``: text, cut to a readable size."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if len(raw) > QUARANTINE_RAW_CHARS:
        return raw[:QUARANTINE_RAW_CHARS] + f"… [{len(raw) - QUARANTINE_RAW_CHARS} more chars]"
    return raw


_TOO_DEEP = "nested too deeply to read (Python reads about 900 levels of [ and {)"


def loads_json(data: str | bytes | bytearray) -> Any:
    """``json.loads``, reporting nesting too deep for Python as a ValueError (not a crash).

    Raises:
        ValueError: the text is not JSON, or is nested too deeply to read.
    """
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError(f"JSON {_TOO_DEEP}") from None


def to_json_text(value: Any) -> str | None:
    """JSON text for a JSON column; strings that already hold JSON are kept as they are."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            loads_json(value)
            return value
        except ValueError:
            return json.dumps(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def to_text(value: Any) -> str | None:
    """Text for an input/output column: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


@dataclass
class Staging:
    """The staging tables of one load, and the file being loaded."""

    con: duckdb.DuckDBPyConnection
    path: Path
    compressed: bool = False
    on_flush: Callable[[], None] | None = field(default=None, repr=False)
    spans: list[pa.Table] = field(default_factory=list, repr=False)
    """Span rows staged in Arrow (:meth:`add_spans`), not yet flushed."""
    _link_dir: str | None = field(default=None, repr=False)

    def flush(self) -> None:
        """Hand what is staged so far to the store, which may commit it as a chunk.

        An adapter that stages a big file block by block calls this between blocks. Once
        enough rows are staged (``failkit.store.FLUSH_ROWS``), the store validates them,
        inserts the good ones and quarantines the rest in a transaction of their own, then
        empties the staging tables, so that memory stays flat however big the file. The file
        still lands whole or not at all as users see it: the store marks the load pending
        until its final transaction, deletes its chunks if it fails, and the next writable
        ``connect`` deletes them if the process died. Rows already flushed are committed: an
        adapter that tries a statement that may fail and then falls back (as the native fast
        path does) must do so before flushing.
        """
        if self.on_flush is not None:
            self.on_flush()

    def add_spans(self, rows: pa.Table) -> None:
        """Stage span rows held in Arrow, with the columns of :data:`SPAN_ROW_SCHEMA` (by
        name), without copying them into ``stage_spans``; the store reads them after that
        table's rows, committing them in whole DuckDB row groups.

        The fast way for an adapter that maps big files with DuckDB:
        ``stage.add_spans(con.sql(mapping).to_arrow_table())``, with DuckDB's
        ``arrow_lossless_conversion`` on so that JSON columns stay JSON (``arrow.json``)
        instead of text DuckDB would parse again.

        Raises:
            ValueError: ``rows`` lack a column of :data:`SPAN_ROW_SCHEMA` or have one of
                another type.
        """
        got = {f.name: f.type for f in rows.schema}
        wrong = [
            f"{f.name} ({got.get(f.name, 'missing')}, not {f.type})"
            for f in SPAN_ROW_SCHEMA
            if got.get(f.name) != f.type
        ]
        if wrong:
            raise ValueError(f"span rows in Arrow with wrong columns: {', '.join(wrong)}")
        self.spans.append(rows.select(SPAN_ROW_SCHEMA.names))

    def open(self) -> io.BufferedIOBase:
        """The file's bytes, gunzipped when it is gzip."""
        return open_bytes(self.path)

    @property
    def scan_path(self) -> str:
        """The file's path for DuckDB's ``read_json`` / ``read_csv`` (bound as a parameter).

        DuckDB expands ``*``, ``?``, ``[...]`` and ``{...}`` in those paths as a glob, so a
        file named ``run[1].jsonl`` would read ``run1.jsonl`` instead. Such a file is read
        through a link with a plain name in a private temporary directory.
        """
        text = str(self.path)
        if not any(ch in text for ch in _GLOB_CHARS):
            return text
        if self._link_dir is None:
            self._link_dir = tempfile.mkdtemp(prefix="failkit-")
        link = os.path.join(self._link_dir, "input")
        if not os.path.lexists(link):
            try:
                os.symlink(os.path.abspath(text), link)
            except OSError:  # no symlinks (Windows without the privilege): copy
                shutil.copyfile(text, link)
        return link

    def cleanup(self) -> None:
        """Remove what :attr:`scan_path` created."""
        if self._link_dir is not None:
            shutil.rmtree(self._link_dir, ignore_errors=True)
            self._link_dir = None

    def append(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Stage Python rows (dicts keyed by column name; missing keys are NULL).

        Values of the wrong Python type are converted to the column's type (text for text
        columns, NULL for numbers that are not numbers); a JSON column's text that DuckDB
        does not accept as JSON is stored as a JSON string holding that text.
        """
        columns = STAGE_TABLES[table]
        rows = list(rows)
        if not rows:
            return 0
        data = {c.name: [r.get(c.name) for r in rows] for c in columns}
        schema = arrow_schema(columns)
        try:
            arrow = pa.Table.from_pydict(data, schema=schema)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            coerced = {c.name: [_coerce(v, c.sql_type) for v in data[c.name]] for c in columns}
            arrow = pa.Table.from_pydict(coerced, schema=schema)
        select = ", ".join(
            f"CASE WHEN json_valid({c.name}) THEN {c.name} ELSE to_json({c.name})::VARCHAR END"
            if c.sql_type == "JSON"
            else c.name
            for c in columns
        )  # fixed column names only
        self.con.register("_staging_batch", arrow)
        try:
            self.con.execute(f"INSERT INTO {table} SELECT {select} FROM _staging_batch")
        finally:
            self.con.unregister("_staging_batch")
        return len(rows)

    def quarantine(self, position: str, reason: str, raw: str | bytes | None = None) -> None:
        """Quarantine one record the adapter could not turn into rows."""
        self.append(
            "stage_quarantine", [{"position": position, "reason": reason, "raw": truncate_raw(raw)}]
        )


_GLOB_CHARS = "*?[]{}"
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _text(value: Any) -> str | None:
    """Text Arrow can store: JSON for non-strings, unpaired surrogates replaced."""
    if value is None:
        return None
    if not isinstance(value, str):
        try:
            value = to_text(value)
        except (RecursionError, ValueError):
            value = f"<{type(value).__name__} nested too deeply to store>"
    assert value is not None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _coerce(value: Any, sql_type: str) -> Any:
    """``value`` as the Python type Arrow wants for a column of ``sql_type``."""
    if value is None:
        return None
    if sql_type in ("VARCHAR", "JSON"):
        return _text(value)
    if sql_type == "BIGINT":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return None
        number = int(value)
        return number if _INT64[0] <= number <= _INT64[1] else None
    if sql_type == "DOUBLE":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            return float(value)
        except OverflowError:
            return None
    if sql_type == "BOOLEAN":
        return value if isinstance(value, bool) else None
    return value


class Adapter(Protocol):
    """A trace format: how to recognise a file of it and how to stage its rows."""

    name: ClassVar[str]
    """Format name used in ``format=`` and in ``ingests.format``."""
    description: ClassVar[str]
    """One line for error messages and the README table."""

    def sniff(self, head: bytes, path: Path) -> bool:
        """True when ``head`` (the first bytes, decompressed) looks like this format."""
        ...

    def load(self, stage: Staging) -> None:
        """Stage every record of ``stage.path`` as rows or quarantine entries."""
        ...


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_bytes(path: Path) -> io.BufferedIOBase:
    """Open a file for reading bytes, transparently gunzipping."""
    if is_gzip(path):
        return gzip.open(path, "rb")
    return open(path, "rb")


@contextmanager
def duckdb_settings(con: duckdb.DuckDBPyConnection, settings: Mapping[str, str]) -> Iterator[None]:
    """DuckDB ``settings`` (name: SQL value) on ``con`` for the block, then restored."""
    old = con.execute(
        "SELECT " + ", ".join(f"current_setting('{name}')" for name in settings)
    ).fetchone()
    for name, value in settings.items():
        con.execute(f"SET {name} = {value}")
    try:
        yield
    finally:  # DuckDB's own texts of the settings
        for name, value in zip(settings, old or (), strict=True):
            con.execute(f"SET {name} = '{value}'")


def read_head(path: Path, n: int = SNIFF_BYTES) -> bytes:
    """The first ``n`` bytes of the file's content (decompressed)."""
    with open_bytes(path) as f:
        try:
            return f.read(n)
        except (OSError, EOFError):
            return b""


def read_json_document(stage: Staging) -> Any:
    """Parse a whole-file JSON document (small formats); None after quarantining if invalid."""
    with stage.open() as f:
        data = f.read()
    try:
        return loads_json(data)
    except (ValueError, UnicodeDecodeError) as exc:
        stage.quarantine(
            "file",
            f"the file is not valid JSON ({exc}); fix or re-export it",
            data[:QUARANTINE_RAW_CHARS],
        )
        return None


def text_stream(stage: Staging) -> io.TextIOWrapper:
    """The file as UTF-8 text lines (undecodable bytes replaced)."""
    return io.TextIOWrapper(cast(IO[bytes], stage.open()), encoding="utf-8", errors="replace")
