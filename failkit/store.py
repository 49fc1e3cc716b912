"""TraceStore: the DuckDB file that holds the normalized traces, and the loads into it."""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from failkit.errors import FailkitError, StoreLockedError
from failkit.ingest.base import (
    RUN_ID_KEYS,
    STAGE_TABLES,
    Adapter,
    Staging,
    create_stage_tables,
    is_gzip,
)
from failkit.ingest.detect import detect, get_adapter
from failkit.schema import (
    INGEST_COLUMNS,
    PENDING_COLUMNS,
    QUARANTINE_RAW_CHARS,
    SCHEMA_VERSION,
    TABLES,
    create_table_sql,
    names,
)

PathArg = str | PathLike[str]
REPORT_COLUMNS = [
    "path", "format", "status", "rows_read", "rows_loaded", "rows_quarantined", "seconds",
    "ingest_id",
]  # fmt: skip
_PROGRESS_MIN_BYTES = 20_000_000
_PENDING = "loads_pending"
_LIMIT = "SELECT current_setting('memory_limit')"


class UnfinishedLoadWarning(UserWarning):
    """A store holds (or held) the committed chunks of a load that never ended."""


# Loads running in this process, as (database file, ingest_id). DuckDB shares one database
# between the connections of a process, so another connect must not take them for dead.
_ACTIVE: set[tuple[str, str]] = set()
_ACTIVE_LOCK = threading.Lock()


def _sql(name: str) -> str:
    return resources.files("failkit.sql").joinpath(name).read_text()


def file_sha256(path: PathArg) -> str:
    """Hex sha256 of a file's bytes (as stored: gzip not undone), the key of a load."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def expand_paths(paths: PathArg | Iterable[PathArg]) -> list[Path]:
    """Files named by a path, a glob, a directory (recursively) or a list of those.

    Raises:
        FailkitError: a name matches no file.
    """
    items = [paths] if isinstance(paths, str | PathLike) else list(paths)
    found: list[Path] = []
    for item in items:
        text = str(item)
        p = Path(text).expanduser()
        if p.is_dir():
            matches = sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith("."))
        elif p.is_file():
            matches = [p]
        else:
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
        if not matches:
            raise FailkitError(f"no file matches {text!r}: check the path or the glob pattern")
        found.extend(matches)
    return list(dict.fromkeys(found))


@dataclass
class IngestReport:
    """What a call to :meth:`TraceStore.ingest` did, one row per file in :attr:`files`."""

    files: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REPORT_COLUMNS))

    @property
    def rows_read(self) -> int:
        """Records read over all files."""
        return int(self.files["rows_read"].sum())

    @property
    def rows_loaded(self) -> int:
        """Records loaded over all files."""
        return int(self.files["rows_loaded"].sum())

    @property
    def rows_quarantined(self) -> int:
        """Records quarantined over all files (see ``store.sql('select * from quarantine')``)."""
        return int(self.files["rows_quarantined"].sum())

    @property
    def seconds(self) -> float:
        """Wall time over all files."""
        return float(self.files["seconds"].sum())

    def __str__(self) -> str:
        n_skip = int((self.files["status"] == "skipped").sum())
        skipped = f", {n_skip} already loaded" if n_skip else ""
        return (
            f"{len(self.files)} file(s){skipped}: {self.rows_read:,} read, "
            f"{self.rows_loaded:,} loaded, {self.rows_quarantined:,} quarantined "
            f"in {self.seconds:.2f} s"
        )

    def _repr_html_(self) -> str:
        from html import escape

        table = self.files.to_html(index=False, escape=True)
        return f"<p>{escape(str(self))}</p>{table}"


class TraceStore:
    """A DuckDB database holding traces in failkit's normalized schema.

    Use :func:`failkit.connect` to open one.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        path: str | None,
        *,
        read_only: bool = False,
        memory_limit: str | None = None,
    ) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        self.memory_limit = memory_limit
        self._limit = _scalar(con, _LIMIT)
        self._migrate()

    # -- lifecycle -------------------------------------------------------------------------
    def _migrate(self) -> None:
        exists = _scalar(
            self.con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'"
        )
        if self.read_only:
            if not exists:
                raise FailkitError(f"{self.path} is not a failkit store (no schema_version table)")
            self._warn_unfinished()
            return
        self.con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = _scalar(self.con, "SELECT max(version) FROM schema_version")
        if version is not None and version > SCHEMA_VERSION:
            raise FailkitError(
                f"{self.path}: made by a newer failkit (schema {version} > {SCHEMA_VERSION}); "
                "upgrade failkit to read it"
            )
        for table, columns in {**TABLES, _PENDING: PENDING_COLUMNS}.items():
            self.con.execute(create_table_sql(table, columns))
        if version is None:
            self.con.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION])
        # macros of the loads
        ids = json.dumps(dict.fromkeys(RUN_ID_KEYS, "VARCHAR"))  # constants, not input
        self.con.execute(
            f"CREATE OR REPLACE TEMP MACRO fk_span_ids(a) AS json_transform(a, '{ids}')"
        )
        self.con.execute(_sql("run_ids.sql"))
        if self.path is not None:
            self._roll_back_unfinished()

    def _roll_back_unfinished(self) -> None:
        """Delete what loads killed midway committed (their chunks), with a warning each.

        This process holds the file's write lock, so a pending load is dead unless it runs
        in this process (another connection to the same file, e.g. in a thread).
        """
        database = os.path.realpath(str(self.path))
        with _ACTIVE_LOCK:
            self.con.execute("BEGIN TRANSACTION")
            try:
                dead = [
                    row
                    for row in self.con.execute(
                        f"SELECT ingest_id, path, started, pid, host FROM {_PENDING} "
                        "ORDER BY started"
                    ).fetchall()
                    if (database, row[0]) not in _ACTIVE
                ]
                for row in dead:
                    _delete_load(self.con, row[0])
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
        for ingest_id, path, started, pid, host in dead:
            warnings.warn(
                f"{self.path}: rolled back the unfinished load {ingest_id} of {path} (started "
                f"{started:%Y-%m-%d %H:%M:%S} UTC by process {pid} on {host}, which stopped "
                "before the load ended); nothing of it is left, load the file again",
                UnfinishedLoadWarning,
                stacklevel=5,
            )

    def _warn_unfinished(self) -> None:
        """Say that a read-only view shows the partial rows of a load that did not end."""
        has_table = _scalar(
            self.con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [_PENDING]
        )
        if not has_table:
            return
        for ingest_id, path, started in self.con.execute(
            f"SELECT ingest_id, path, started FROM {_PENDING} ORDER BY started"
        ).fetchall():
            warnings.warn(
                f"{self.path} holds part of a load that did not end ({ingest_id}, {path}, "
                f"started {started:%Y-%m-%d %H:%M:%S} UTC): rows with that ingest_id are "
                "partial; connect without read_only=True once to roll that load back",
                UnfinishedLoadWarning,
                stacklevel=5,
            )

    def close(self) -> None:
        """Close the database connection."""
        self.con.close()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        n = _scalar(self.con, "SELECT count(*) FROM traces")
        return f"TraceStore({self.path or ':memory:'}, {n} runs)"

    # -- reading ---------------------------------------------------------------------------
    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a query with bound parameters (``?`` or ``$name``) and return a DataFrame."""
        try:
            return self.con.execute(query, params).df()
        except duckdb.Error as exc:
            raise FailkitError(f"query failed: {exc}") from exc

    def spans_df(self) -> pd.DataFrame:
        """Every span, by run and start time (columns of ``failkit.schema.SPAN_COLUMNS``)."""
        return self.con.sql("SELECT * FROM spans ORDER BY trace_id, start_time, span_id").df()

    def traces_df(self) -> pd.DataFrame:
        """One row per run (columns of ``failkit.schema.TRACE_COLUMNS``)."""
        return self.con.sql("SELECT * FROM traces ORDER BY start_time, trace_id").df()

    def labels_df(self) -> pd.DataFrame:
        """Every verdict (columns of ``failkit.schema.LABEL_COLUMNS``)."""
        return self.con.sql("SELECT * FROM labels ORDER BY trace_id, name, rowid").df()

    def quarantine_df(self) -> pd.DataFrame:
        """Every record that could not be loaded, with the reason."""
        return self.con.sql("SELECT * FROM quarantine ORDER BY rowid").df()

    def ingests_df(self) -> pd.DataFrame:
        """One row per file loaded."""
        return self.con.sql("SELECT * FROM ingests ORDER BY started").df()

    def export_parquet(self, directory: PathArg, *, overwrite: bool = False) -> Path:
        """Write the tables as a Parquet lake partitioned by source and day
        (:func:`failkit.lake.export_parquet`); open it with ``failkit.connect_parquet``."""
        from failkit.lake import export_parquet

        return export_parquet(self, directory, overwrite=overwrite)

    # -- loading ---------------------------------------------------------------------------
    def ingest(
        self,
        paths: PathArg | Iterable[PathArg],
        format: str = "auto",
        *,
        progress: bool | None = None,
    ) -> IngestReport:
        """Load trace files: a path, a glob, a directory or a list of those.

        Each file lands whole or not at all; a file whose content was loaded before is
        skipped. Records that cannot be loaded go to ``quarantine``. A big file is committed
        in chunks (so memory stays bounded) and its runs are rebuilt in a last transaction;
        if the load fails its chunks are deleted, and if the process dies the next writable
        :func:`connect` deletes them (with an :class:`UnfinishedLoadWarning`).

        Args:
            paths: what to load.
            format: ``"auto"`` to detect each file's format by its content, or a format name
                (see ``failkit.ingest.supported_formats()``).
            progress: show a progress bar; None shows one for many or large files.

        Returns:
            An :class:`IngestReport`.

        Raises:
            FailkitError: a path matches nothing, a format is unknown or a file is unreadable.
        """
        if self.read_only:
            raise FailkitError(f"{self.path} was opened read_only; connect without it to load")
        files = expand_paths(paths)
        forced = None if format == "auto" else get_adapter(format)
        total = sum(f.stat().st_size for f in files)
        show = (
            progress if progress is not None else (len(files) > 20 or total > _PROGRESS_MIN_BYTES)
        )
        rows = []
        bar = _progress_bar(total, show)
        try:
            for path in files:
                adapter = forced or detect(path)
                rows.append(self._load_file(path, adapter))
                bar.update(path.stat().st_size)
        finally:
            bar.close()
        return IngestReport(pd.DataFrame(rows, columns=REPORT_COLUMNS))

    def add_labels(self, labels: pd.DataFrame | PathArg) -> IngestReport:
        """Add verdicts: a DataFrame or CSV with ``trace_id, name, value`` and optionally
        ``span_id, score, source, comment``. Labels named ``outcome`` set ``traces.outcome``.

        Raises:
            FailkitError: a required column is missing or an unknown one is present.
        """
        if isinstance(labels, pd.DataFrame):
            return IngestReport(
                pd.DataFrame([self._load_labels_frame(labels)], columns=REPORT_COLUMNS)
            )
        return self.ingest(labels, format="labels_csv")

    def _load_labels_frame(self, frame: pd.DataFrame) -> dict[str, Any]:
        from failkit.ingest.labels import check_label_columns, stage_label_frame

        check_label_columns(list(frame.columns), where="the DataFrame")
        digest = hashlib.sha256(
            pd.util.hash_pandas_object(frame.astype("string"), index=False).values.tobytes()
        ).hexdigest()
        return self._commit(
            "<DataFrame>", digest, "labels_frame", lambda stage: stage_label_frame(stage, frame)
        )

    def _load_file(self, path: Path, adapter: Adapter) -> dict[str, Any]:
        def fill(stage: Staging) -> None:
            stage.compressed = is_gzip(path)
            try:
                adapter.load(stage)
            except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
                raise FailkitError(
                    f"{path}: the gzip data is damaged or cut short ({exc}); "
                    "re-compress or re-export the file"
                ) from exc
            except duckdb.IOException as exc:
                raise FailkitError(
                    f"{path}: cannot read the file ({str(exc).splitlines()[0]})"
                ) from exc
            finally:
                stage.cleanup()

        if path.stat().st_size <= _HASH_AHEAD_BYTES:
            return self._commit(str(path), file_sha256(path), adapter.name, fill, path=path)
        with ThreadPoolExecutor(max_workers=1) as pool:
            sha = pool.submit(file_sha256, path)
            return self._commit(str(path), sha, adapter.name, fill, path=path)

    def _commit(
        self,
        label: str,
        sha: str | Future[str],
        fmt: str,
        fill: Callable[[Staging], None],
        *,
        path: Path | None = None,
    ) -> dict[str, Any]:
        """Stage, validate and commit one load: chunk by chunk, then a last transaction.

        ``sha``: the content's SHA-256, or its future for a big file, which is then staged
        while it is hashed; nothing is committed before the hash says the content is new.
        """
        started = datetime.now(UTC).replace(tzinfo=None)
        t0 = time.perf_counter()
        load = _Load(self, sha, label, started)
        try:
            if isinstance(sha, str):  # a known file is skipped before anything is created
                load.claim()
            load.create_tables()
            # Staging touches only this connection's temp tables, so it runs outside the
            # transactions: an adapter may try a fast read and fall back after an error.
            fill(load.staging(path or Path(label)))
            load.finish()
            seconds = time.perf_counter() - t0
            self.con.execute(
                f"INSERT INTO ingests ({', '.join(names(INGEST_COLUMNS))}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [load.ingest_id, label, fmt, load.sha, started, seconds, *load.counts],
            )
            self.con.execute(f"DELETE FROM {_PENDING} WHERE ingest_id = ?", [load.ingest_id])
            self.con.execute("COMMIT")
        except _Known:
            load.abort()
            return dict(
                zip(
                    REPORT_COLUMNS,
                    [label, fmt, "skipped", 0, 0, 0, 0.0, load.ingest_id],
                    strict=False,
                )
            )
        except BaseException:
            load.abort()
            raise
        finally:
            load.drop_tables()
            load.release()
        return dict(
            zip(
                REPORT_COLUMNS,
                [label, fmt, "loaded", *load.counts, seconds, load.ingest_id],
                strict=False,
            )
        )

    def _release_cache(self) -> None:
        """Write the committed chunk to the file and let DuckDB drop the table blocks it
        caches, so that a big load's memory stays flat.

        DuckDB keeps every block it wrote or read until it nears its ``memory_limit`` (80 % of
        the RAM by default); lowering the limit for a moment is how it is told to let them go.
        """
        try:
            self.con.execute("CHECKPOINT")
        except duckdb.Error:  # another connection's transaction holds on: skip this time
            return
        with self._lowered_memory_limit(_CACHE_AFTER_CHUNK):
            pass

    @contextmanager
    def _lowered_memory_limit(self, limit: str) -> Iterator[bool]:
        """DuckDB's ``memory_limit`` at ``limit`` for a while (yields True), then set back as
        :func:`connect` set it. Yields False, changing nothing, when the limit was changed
        since with ``SET`` or DuckDB cannot free enough memory to go down to ``limit``."""
        con = self.con
        if _scalar(con, _LIMIT) != self._limit:
            yield False
            return
        try:
            con.execute("SET memory_limit = ?", [limit])
            lowered = True
        except duckdb.Error:  # another connection's query holds the memory
            lowered = False
        try:
            yield lowered
        finally:
            if self.memory_limit is None:
                con.execute("RESET memory_limit")
            else:
                con.execute("SET memory_limit = ?", [self.memory_limit])


ROW_GROUP_ROWS = 122_880
"""Rows of a DuckDB row group. DuckDB writes the whole row groups of a big insert straight to
the file; a partial one costs much more at the commit and the next checkpoint (a 1M-span
OTLP load in chunks of ~132k rows spent 6 s there, in chunks of whole row groups 0.6 s)."""
FLUSH_ROWS = int(os.environ.get("FAILKIT_FLUSH_ROWS", 200_000))
"""Staged rows above which :meth:`Staging.flush` commits them as a chunk of the load
(environment variable ``FAILKIT_FLUSH_ROWS``; tests lower it to make many chunks). Span rows
staged in Arrow are committed as soon as they fill a row group, in whole row groups."""
_CACHE_AFTER_CHUNK = "256MB"
"""What DuckDB may keep cached between two chunks of a load."""
_REBUILD_MEMORY = "1GB"
"""DuckDB's memory for rebuilding the runs of a chunked load (it spills past that)."""
_HASH_AHEAD_BYTES = 64 << 20
"""Files bigger than this are hashed in a thread while their first blocks are staged."""
_ARROW_SPANS = "fk_arrow_spans"
"""The span rows of a chunk staged in Arrow, registered for the flush."""
_LOAD_TABLES = (
    "fk_touched",
    "fk_run_meta",
    "fk_run_ids",
    "stage_rejects",
    "affected",
    "old_traces",
)


class _Known(Exception):
    """The content of a load was loaded before (known once it is hashed)."""


class _Load:
    """The commit side of one load.

    A load staged in one go is one transaction. A big one is validated, inserted and
    committed chunk by chunk (:meth:`flush`), the first chunk recording the load in
    ``loads_pending``; a final transaction rebuilds the runs it touched, adds its ``ingests``
    row and removes the pending mark. A load that fails deletes its chunks (:meth:`abort`);
    one whose process died is deleted by the next writable connect.
    """

    def __init__(
        self, store: TraceStore, sha: str | Future[str], path: str, started: datetime
    ) -> None:
        self.store, self.con = store, store.con
        self.path, self.started = path, started
        self._sha = sha
        self.sha = self.ingest_id = ""  # known once claimed
        self._active: tuple[str, str] | None = None
        self.in_transaction = False
        self.pending = False  # a chunk was committed
        self.read = self.quarantined = 0
        self.has_tables = False
        self.stage: Staging | None = None
        self._carried: pa.Table | None = None  # Arrow span rows left for the next chunk

    def staging(self, path: Path) -> Staging:
        """The staging the adapter fills, flushed into this load."""
        self.stage = Staging(self.con, path, on_flush=self.flush_if_big)
        return self.stage

    def create_tables(self) -> None:
        """Create the load's staging and bookkeeping temp tables, empty."""
        con = self.con
        self.has_tables = True
        create_stage_tables(con)
        con.execute("CREATE OR REPLACE TEMP TABLE fk_touched (trace_id VARCHAR)")
        con.execute(create_table_sql("fk_run_meta", STAGE_TABLES["stage_traces"], temp=True))
        self._view_staged_spans(whole_row_groups=False)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE fk_run_ids AS "
            "SELECT * FROM fk_run_ids_of('fk_staged_spans') LIMIT 0"
        )

    def claim(self) -> None:
        """Wait for the content's hash, then take the load on: raises :class:`_Known` when
        the content was loaded before, FailkitError when another connection of this process
        is loading it."""
        if self.sha:
            return
        sha = self._sha if isinstance(self._sha, str) else self._sha.result()
        self.ingest_id = sha[:16]
        if _scalar(self.con, "SELECT count(*) FROM ingests WHERE sha256 = ?", [sha]):
            raise _Known
        if self.store.path is not None:
            key = (os.path.realpath(self.store.path), self.ingest_id)
            with _ACTIVE_LOCK:
                if key in _ACTIVE:
                    raise FailkitError(
                        f"{self.path} is being loaded into {self.store.path} by another "
                        "connection of this process; wait for that load to end"
                    )
                _ACTIVE.add(key)
            self._active = key
        self.sha = sha

    def release(self) -> None:
        """Let other connections of this process load the same content again."""
        if self._active is not None:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(self._active)
            self._active = None

    @property
    def counts(self) -> tuple[int, int, int]:
        """(rows read, loaded, quarantined) so far."""
        return self.read, self.read - self.quarantined, self.quarantined

    def flush_if_big(self) -> None:
        """Commit the staged rows as a chunk when they are many enough to be worth one (and
        stop early when the content's hash, ready now, shows it was loaded before)."""
        if not isinstance(self._sha, str) and self._sha.done():
            self.claim()
        if self._arrow_rows() >= ROW_GROUP_ROWS or self._staged() >= FLUSH_ROWS:
            self.flush(commit=True, whole_row_groups=True)

    def _arrow_rows(self) -> int:
        """Span rows staged in Arrow so far."""
        return sum(rows.num_rows for rows in self.stage.spans) if self.stage else 0

    def _staged(self) -> int:
        """Rows staged so far, in the tables and in Arrow."""
        return self._arrow_rows() + sum(_count(self.con, t) for t in STAGE_TABLES)

    def _view_staged_spans(self, *, whole_row_groups: bool) -> int:
        """The view ``fk_staged_spans``: the rows of ``stage_spans``, then those staged in
        Arrow, each numbered by ``rid`` and with its run ``ids`` (see ``sql/run_ids.sql``).
        Returns how many rows it has.

        ``whole_row_groups``: of the rows staged in Arrow, take as many whole row groups
        (:data:`ROW_GROUP_ROWS`) as there are and leave the rest for the next chunk, so that
        DuckDB writes every row group of the chunk straight to the file once.
        """
        con = self.con
        cols = ", ".join(f'"{c}"' for c in names(STAGE_TABLES["stage_spans"]))
        query = f"SELECT rowid AS rid, {cols}, fk_span_ids(attributes) AS ids FROM stage_spans"
        taken = _count(con, "stage_spans")
        if self.stage is not None and self.stage.spans:
            rows = pa.concat_tables(self.stage.spans)
            if whole_row_groups and rows.num_rows > ROW_GROUP_ROWS:
                cut = rows.num_rows // ROW_GROUP_ROWS * ROW_GROUP_ROWS
                rows, self._carried = rows.slice(0, cut), rows.slice(cut)
            taken += rows.num_rows
            first = _scalar(con, "SELECT coalesce(max(rowid) + 1, 0) FROM stage_spans")
            rid = pa.array(np.arange(first, first + rows.num_rows, dtype=np.int64))
            con.register(_ARROW_SPANS, rows.add_column(0, "rid", rid))
            query += f" UNION ALL SELECT rid, {cols}, ids FROM {_ARROW_SPANS}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW fk_staged_spans AS {query}")
        return taken

    def _drop_arrow_spans(self) -> None:
        """Let go of the span rows staged in Arrow but those left for the next chunk."""
        if self.stage is not None:
            self.stage.spans[:] = [] if self._carried is None else [self._carried]
        self._carried = None
        self.con.unregister(_ARROW_SPANS)

    def flush(self, *, commit: bool, whole_row_groups: bool = False) -> None:
        """Validate the staged rows, insert the good ones and quarantine the rest, then empty
        the staging tables. ``commit``: as a chunk of its own; else in the open transaction
        (opened here if need be) that the caller commits. ``whole_row_groups``: see
        :meth:`_view_staged_spans`."""
        self.claim()
        con = self.con
        if not self.in_transaction:
            con.execute("BEGIN TRANSACTION")
            self.in_transaction = True
        if commit and not self.pending:
            con.execute(
                f"INSERT INTO {_PENDING} VALUES (?, ?, ?, ?, ?)",
                [self.ingest_id, self.path, self.started, os.getpid(), socket.gethostname()],
            )
        spans = self._view_staged_spans(whole_row_groups=whole_row_groups)
        read = spans + sum(_count(con, t) for t in STAGE_TABLES if t != "stage_spans")
        con.execute("SET VARIABLE fk_ingest_id = ?", [self.ingest_id])
        con.execute(_sql("validate_stage.sql"))
        con.execute(
            f"""
            INSERT INTO quarantine
            SELECT ?, ?, position, reason, raw FROM stage_quarantine
            UNION ALL
            SELECT ?, ?, s.position, r.reason, {_raw("stage_spans")}
            FROM stage_rejects r JOIN fk_staged_spans s ON r.tbl = 'stage_spans' AND s.rid = r.rid
            UNION ALL
            SELECT ?, ?, s.position, r.reason, {_raw("stage_labels")}
            FROM stage_rejects r JOIN stage_labels s ON r.tbl = 'stage_labels' AND s.rowid = r.rid
            UNION ALL
            SELECT ?, ?, s.position, r.reason, {_raw("stage_traces")}
            FROM stage_rejects r JOIN stage_traces s ON r.tbl = 'stage_traces' AND s.rowid = r.rid
            """,
            [self.ingest_id, self.path] * 4,
        )
        quarantined = _count(con, "stage_quarantine") + _count(con, "stage_rejects")
        # The good rows, as views: deleting the rejects instead halves the insert's speed.
        for stage, rows, rid in (
            ("stage_spans", "fk_staged_spans", "rid"),
            ("stage_labels", "stage_labels", "rowid"),
            ("stage_traces", "stage_traces", "rowid"),
        ):
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW fk_good_{stage} AS SELECT * FROM {rows} "
                f"WHERE {rid} NOT IN (SELECT rid FROM stage_rejects WHERE tbl = '{stage}')"
            )  # fixed names only
        for table, stage in (("spans", "stage_spans"), ("labels", "stage_labels")):
            cols = ", ".join(f'"{c}"' for c in names(TABLES[table]) if c != "ingest_id")
            con.execute(
                f"INSERT INTO {table} ({cols}, ingest_id) SELECT {cols}, ? FROM fk_good_{stage}",
                [self.ingest_id],
            )  # fixed names only
        # run metadata and ids wait for the end, where the runs are rebuilt (in file order)
        con.execute("INSERT INTO fk_run_meta SELECT * FROM fk_good_stage_traces")
        con.execute("INSERT INTO fk_run_ids SELECT * FROM fk_run_ids_of('fk_good_stage_spans')")
        con.execute(
            """
            INSERT INTO fk_touched SELECT DISTINCT trace_id FROM (
                SELECT trace_id FROM fk_good_stage_spans
                UNION ALL SELECT trace_id FROM fk_good_stage_labels
                UNION ALL SELECT trace_id FROM fk_good_stage_traces)
            """
        )
        if commit:
            con.execute("COMMIT")
            self.in_transaction = False
            self.pending = True
        self.read += read
        self.quarantined += quarantined
        # after the commit, so that DuckDB frees the emptied rows now
        create_stage_tables(con)
        self._drop_arrow_spans()
        if commit and self.store.path is not None:
            self.store._release_cache()

    def finish(self) -> None:
        """Flush what is left and rebuild the ``traces`` rows of the runs the load touched,
        in the final transaction (left open for the caller to commit).

        After chunks, that transaction holds the rebuild only, done with DuckDB's memory
        bounded (it spills to disk) unless :func:`connect` set a limit; without the bound if
        that is not enough memory.
        """
        self.flush(commit=self.pending)  # a chunk of its own when there were others
        store = self.store
        if self.pending and store.path is not None and store.memory_limit is None:
            with store._lowered_memory_limit(_REBUILD_MEMORY) as lowered:
                if lowered:
                    try:
                        self._rebuild()
                        return
                    except duckdb.OutOfMemoryException:
                        self.con.execute("ROLLBACK")
                        self.in_transaction = False
        self._rebuild()

    def _rebuild(self) -> None:
        """Rebuild the runs the load touched, in the (final) transaction."""
        con = self.con
        if not self.in_transaction:
            con.execute("BEGIN TRANSACTION")
            self.in_transaction = True
        con.execute("INSERT INTO stage_traces SELECT * FROM fk_run_meta ORDER BY rowid")
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE affected AS
            SELECT DISTINCT trace_id FROM fk_touched
            WHERE trace_id IN (SELECT trace_id FROM spans)
            """
        )
        con.execute(_sql("rebuild_traces.sql"))

    def abort(self) -> None:
        """Undo the load: roll back its open transaction and delete its committed chunks."""
        con = self.con
        try:
            if self.in_transaction:
                con.execute("ROLLBACK")
                self.in_transaction = False
            if self.pending:
                con.execute("BEGIN TRANSACTION")
                _delete_load(con, self.ingest_id)
                con.execute("COMMIT")
        except duckdb.Error:  # the connection is unusable: the next connect rolls it back
            pass

    def drop_tables(self) -> None:
        """Drop the load's temp tables and views, if it made them."""
        if not self.has_tables:
            return
        for table in STAGE_TABLES:
            self.con.execute(f"DROP VIEW IF EXISTS temp.fk_good_{table}")
        self.con.execute("DROP VIEW IF EXISTS temp.fk_staged_spans")
        self._drop_arrow_spans()
        for table in (*STAGE_TABLES, *_LOAD_TABLES):
            self.con.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _delete_load(con: duckdb.DuckDBPyConnection, ingest_id: str) -> None:
    """Delete every row a load wrote and its pending mark (inside the caller's transaction)."""
    for table in ("spans", "labels", "quarantine", _PENDING):  # fixed names only
        con.execute(f"DELETE FROM {table} WHERE ingest_id = ?", [ingest_id])


def _scalar(con: duckdb.DuckDBPyConnection, query: str, params: list[Any] | None = None) -> Any:
    """First value of a query's single row (fetching it all, as DuckDB wants)."""
    return con.execute(query, params).fetchall()[0][0]


def _raw(table: str) -> str:
    """SQL for a staged row of ``s`` as JSON text for ``quarantine.raw`` (its schema columns)."""
    fields = ", ".join(f"'{c.name}': s.\"{c.name}\"" for c in STAGE_TABLES[table])
    return f"left(to_json({{{fields}}})::VARCHAR, {QUARANTINE_RAW_CHARS})"


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(_scalar(con, f"SELECT count(*) FROM {table}"))  # fixed names only


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="ingest")


def connect(
    path: PathArg | None = None,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    temp_directory: PathArg | None = None,
) -> TraceStore:
    """Open (or create) a trace store.

    Args:
        path: a DuckDB file; None for an in-memory store.
        read_only: open an existing file without taking the write lock.
        memory_limit: how much memory DuckDB may hold (``"2GB"``) before it spills to
            ``temp_directory``; None for DuckDB's default (80 % of the RAM). Below about
            4 GB, a record of 100 MB or more may not load (DuckDB's JSON functions hold
            several copies of it).
        temp_directory: where DuckDB spills; None for its default: ``<path>.tmp`` next to
            the database file, ``.tmp`` in the working directory for an in-memory store.

    Raises:
        StoreLockedError: another process is writing to the file.
        FailkitError: the file cannot be opened, or a setting is not valid.
    """
    target = ":memory:" if path is None else str(Path(path).expanduser())
    if path is not None:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    config = {"memory_limit": memory_limit, "temp_directory": temp_directory}
    settings: dict[str, str | bool | int | float | list[str]] = {
        k: str(v) for k, v in config.items() if v is not None
    }
    try:
        con = duckdb.connect(target, read_only=read_only, config=settings)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreLockedError(
                f"{target} is open for writing in another process ({exc}). Close it there, "
                "or open it with failkit.connect(path, read_only=True) once that load is done."
            ) from exc
        raise FailkitError(f"cannot open {target}: {exc}") from exc
    except duckdb.Error as exc:
        raise FailkitError(f"cannot open {target} with {settings}: {exc}") from exc
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return TraceStore(
        con, None if path is None else target, read_only=read_only, memory_limit=memory_limit
    )
