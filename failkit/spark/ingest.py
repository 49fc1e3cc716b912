"""Normalization on Spark: trace files into a lake, each through failkit's own adapters.

Two passes, both running failkit's DuckDB code inside Spark tasks:

1. **Files.** One task per file loads it into an in-memory store with
   :meth:`failkit.TraceStore.ingest` (format detection, every adapter, quarantine) and sends
   its tables back as Arrow IPC chunks; Spark decodes them into one DataFrame per table.
   A JSON-lines file bigger than ``split_bytes`` (failkit JSONL, OTLP JSON lines; not gzip,
   which cannot be read from the middle) is cut into byte ranges that end on a newline, and
   each range is loaded by a task of its own from a temporary copy; another task hashes the
   whole file. The ranges' rows then get the file's ``ingest_id`` and path, their
   quarantine positions the file's line numbers (lines before the range added), and the file
   one ``ingests`` row with the ranges' counts added up.
2. **Runs.** The spans, labels and per-file run metadata are shuffled by ``trace_id`` and
   each partition rebuilds its runs with ``failkit/sql/rebuild_traces.sql`` (the SQL the
   store runs after every load), so a run's outcome comes from labels in any file and a run
   cut by a range boundary is rebuilt from all its spans. The run metadata of a cut file is
   its run records (``"type": "trace"`` lines, staged by the failkit JSONL adapter per range),
   in file order, as the store reads them.

The lake then holds what ``store.ingest(files)`` followed by ``store.export_parquet`` gives
(``tests/test_spark.py`` and ``tests/test_spark_ingest.py`` compare them), except in a few
corners: a span that an earlier file, or an earlier range of the same file, already loaded is
quarantined with the store's reason but without its position in the file; a run whose spans
are split over several files takes its name, task, session and user from the first of them
(as the store does, unless a later file has run records of its own that name them); and in a
cut failkit JSONL file, a run record is found by its ``"type": "trace"`` text (a record
spelling the key or value with escapes is loaded, but its metadata is not used).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from failkit.errors import FailkitError
from failkit.ingest.base import STAGE_TABLES, Staging, create_stage_tables, is_gzip, read_head
from failkit.ingest.detect import detect, get_adapter
from failkit.ingest.lines import count_newlines
from failkit.ingest.otlp import sniff_encoding
from failkit.lake import PARTITIONED, connect_parquet, prepare_directory, write_manifest
from failkit.schema import QUARANTINE_RAW_CHARS, TABLES, create_table_sql
from failkit.spark.frames import (
    TABLE_TYPES,
    arrow_schema,
    ddl,
    from_batches,
    from_ipc,
    to_ipc,
    to_pandas,
)
from failkit.store import PathArg, connect, expand_paths, file_sha256

SPLIT_BYTES = 128 << 20
"""Default size above which a JSON-lines file is loaded in ranges of about this size."""

_CHUNK_ROWS = 50_000
"""Rows per Arrow IPC chunk sent back by a file's task."""
_COPY_BYTES = 1 << 24

_WORK = "file_index int, part int, path string, start long, stop long, fmt string"
_STAGED = "file_index int, part int, tbl string, payload binary"
_STAGED_ARROW = pa.schema(
    [
        ("file_index", pa.int32()),
        ("part", pa.int32()),
        ("tbl", pa.string()),
        ("payload", pa.binary()),
    ]
)
_ORDER = {"file_index": "INTEGER", "part": "INTEGER", "fk_row": "BIGINT"}
_META_COLUMNS = [c.name for c in STAGE_TABLES["stage_traces"] if c.name != "position"]
_META_TYPES = {c: "VARCHAR" for c in _META_COLUMNS}
_NATIVE = "failkit_jsonl"
_FILE_COLUMNS = ("spans", "labels", "quarantine")
"""Tables whose rows name their file (``ingest_id``, ``path``, ``position``)."""
_RUN_RECORD = re.compile(rb'[^\n]*"type"\s*:\s*"trace"[^\n]*\n?')
_HASH, _WHOLE = -1, 0
"""``part`` of the task hashing a cut file, and of a file loaded whole."""


def _payloads(index: int, part: int, name: str, rows: pa.Table) -> pa.RecordBatch:
    chunks = [to_ipc(rows.slice(i, _CHUNK_ROWS)) for i in range(0, len(rows), _CHUNK_ROWS)]
    return pa.RecordBatch.from_pydict(
        {
            "file_index": [index] * len(chunks),
            "part": [part] * len(chunks),
            "tbl": [name] * len(chunks),
            "payload": chunks,
        },
        schema=_STAGED_ARROW,
    )


def _tables(index: int, part: int, path: str, fmt: str) -> Iterator[pa.RecordBatch]:
    """``store.ingest`` of one file, its tables in load order."""
    with connect() as store:
        store.ingest(path, format=fmt, progress=False)
        for name in TABLES:
            rows = store.con.sql(
                f"SELECT *, rowid AS fk_row FROM {name} ORDER BY rowid"  # fixed names
            ).to_arrow_table()
            yield _payloads(index, part, name, rows)


def _run_records(path: Path) -> pa.Table:
    """The run records of a failkit JSONL file as the adapter stages them, in file order."""
    con = duckdb.connect()
    try:
        create_stage_tables(con)
        get_adapter(_NATIVE).load(Staging(con, path))
        return con.sql(
            f"SELECT {', '.join(_META_COLUMNS)}, rowid AS fk_row FROM stage_traces "
            "WHERE trace_id IS NOT NULL AND trace_id <> '' ORDER BY rowid"
        ).to_arrow_table()
    finally:
        con.close()


def _range_tables(
    index: int, part: int, path: str, start: int, stop: int, fmt: str
) -> Iterator[pa.RecordBatch]:
    """One byte range of a file, loaded from a temporary copy, with its line count and (for
    failkit JSONL) its run records."""
    with tempfile.TemporaryDirectory(prefix="failkit-range-") as tmp:
        copy, records = Path(tmp) / "range.jsonl", Path(tmp) / "runs.jsonl"
        lines = 0
        with open(path, "rb") as src, copy.open("wb") as dst, records.open("wb") as runs:
            src.seek(start)
            left = stop - start
            while left > 0 and (chunk := src.read(min(_COPY_BYTES, left))):
                dst.write(chunk)
                lines += count_newlines(chunk)
                if fmt == _NATIVE:
                    runs.writelines(_RUN_RECORD.findall(chunk))
                left -= len(chunk)
        yield from _tables(index, part, str(copy), fmt)
        yield _payloads(index, part, "lines", pa.table({"n": [lines]}))
        if fmt == _NATIVE and records.stat().st_size:
            yield _payloads(index, part, "meta", _run_records(records))


def _load_work(parts: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Each work item of the partition: a whole file, a range of one, or a file's hash."""
    table = from_batches(parts)
    if table is None:
        return
    for item in table.to_pylist():
        index, part, path, fmt = item["file_index"], item["part"], item["path"], item["fmt"]
        if part == _HASH:
            yield _payloads(index, part, "sha", pa.table({"sha256": [file_sha256(path)]}))
        elif part == _WHOLE:
            yield from _tables(index, part, path, fmt)
        else:
            yield from _range_tables(index, part, path, item["start"], item["stop"], fmt)


def byte_ranges(path: Path, split_bytes: int) -> list[tuple[int, int]]:
    """``(start, stop)`` byte ranges of about ``split_bytes`` covering a file, each but the
    last ending just after a newline (reads a few bytes at each cut)."""
    size = path.stat().st_size
    bounds = [0]
    with path.open("rb") as f:
        for target in range(split_bytes, size, split_bytes):
            if target <= bounds[-1]:
                continue
            f.seek(target - 1)
            pos = target - 1
            while chunk := f.read(1 << 16):
                hit = chunk.find(b"\n")
                if hit >= 0:
                    pos += hit + 1
                    break
                pos += len(chunk)
            else:
                break  # no newline after target: the rest is the last range
            if pos >= size:
                break
            bounds.append(pos)
    return list(pairwise([*bounds, size]))


def _cut_format(path: Path, format: str, split_bytes: int) -> str | None:
    """The format of a file to load in ranges, or None to load it whole."""
    if path.stat().st_size <= split_bytes or is_gzip(path):
        return None
    name = detect(path).name if format == "auto" else format
    if name == _NATIVE or (name == "otlp" and sniff_encoding(read_head(path)) == "jsonl"):
        return name
    return None


def _work(files: list[str], format: str, split_bytes: int) -> list[tuple]:
    """Work items ``(file_index, part, path, start, stop, format)``: ranges are parts 1..n,
    ``_HASH`` hashes a cut file, ``_WHOLE`` loads a file whole."""
    items: list[tuple] = []
    for index, name in enumerate(files):
        path = Path(name)
        cut = _cut_format(path, format, split_bytes)
        if cut is None:
            items.append((index, _WHOLE, name, None, None, format))
            continue
        items.append((index, _HASH, name, None, None, cut))
        ranges = byte_ranges(path, split_bytes)
        items += [(index, part, name, a, b, cut) for part, (a, b) in enumerate(ranges, 1)]
    return items


def _decode(parts: Iterator[pa.RecordBatch], types: dict[str, str]) -> Iterator[pa.RecordBatch]:
    """Rows of one table from the IPC chunks, with ``file_index``, ``part`` and ``fk_row``."""
    schema = arrow_schema(types)
    for batch in parts:
        for index, part, payload in zip(
            batch.column("file_index").to_pylist(),
            batch.column("part").to_pylist(),
            batch.column("payload").to_pylist(),
            strict=True,
        ):
            rows = from_ipc(payload)
            n = len(rows)
            rows = rows.append_column("file_index", pa.array([index] * n, pa.int32()))
            rows = rows.append_column("part", pa.array([part] * n, pa.int32()))
            yield from rows.select(list(types)).cast(schema).to_batches()


def _small(staged: Any, name: str) -> pd.DataFrame:
    """A small table of the tasks (hashes, line counts), collected with its file and part."""
    from pyspark.sql import functions as F

    got = staged.where(F.col("tbl") == name).select("file_index", "part", "payload").toArrow()
    frames = [
        from_ipc(p).to_pandas().assign(file_index=i, part=k)
        for i, k, p in zip(*(got[c].to_pylist() for c in got.column_names), strict=True)
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _cut_files(
    ingests: pd.DataFrame, hashes: pd.DataFrame, lines: pd.DataFrame, files: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``ingests`` rows per file (a cut file's ranges added up), and per range of a cut
    file its file's ``ingest_id``, path and the lines before it."""
    if hashes.empty:
        return ingests, pd.DataFrame(columns=["file_index", "part", "fk_id", "fk_path", "fk_lines"])
    ranges = lines.sort_values(["file_index", "part"], ignore_index=True)
    before = ranges.groupby("file_index")["n"].cumsum() - ranges["n"]
    sha = hashes.set_index("file_index")["sha256"]
    fix = ranges.assign(
        fk_id=ranges["file_index"].map(sha).str[:16],
        fk_path=ranges["file_index"].map(dict(enumerate(files))),
        fk_lines=before.astype("int64"),
    )[["file_index", "part", "fk_id", "fk_path", "fk_lines"]]
    cut = ingests["file_index"].isin(sha.index)
    whole = (
        ingests.loc[cut]
        .groupby("file_index", as_index=False)
        .agg(
            format=("format", "first"),
            started=("started", "min"),
            seconds=("seconds", "sum"),
            rows_read=("rows_read", "sum"),
            rows_loaded=("rows_loaded", "sum"),
            rows_quarantined=("rows_quarantined", "sum"),
        )
    )
    whole = whole.assign(
        sha256=whole["file_index"].map(sha),
        ingest_id=whole["file_index"].map(sha).str[:16],
        path=whole["file_index"].map(dict(enumerate(files))),
        part=_WHOLE,
        fk_row=0,
    )
    return pd.concat([ingests.loc[~cut], whole[ingests.columns]], ignore_index=True), fix


def _as_file(frame: Any, fix: Any) -> Any:
    """Rows of a cut file's ranges with the file's ``ingest_id``, path and line numbers."""
    from pyspark.sql import functions as F

    out = frame.join(F.broadcast(fix), ["file_index", "part"], "left")
    if "ingest_id" in frame.columns:
        out = out.withColumn("ingest_id", F.coalesce("fk_id", "ingest_id"))
    if "path" in frame.columns:
        out = out.withColumn("path", F.coalesce("fk_path", "path"))
    if "position" in frame.columns:  # "line 12", "line 12 span 3"
        line = r"^line (\d+)(.*)$"
        number = F.regexp_extract("position", line, 1)
        renumbered = F.concat(
            F.lit("line "),
            (number.cast("long") + F.col("fk_lines")).cast("string"),
            F.regexp_extract("position", line, 2),
        )
        out = out.withColumn(
            "position",
            F.when(F.col("fk_lines").isNotNull() & (number != ""), renumbered).otherwise(
                F.col("position")
            ),
        )
    return out.select(*frame.columns)


def _rebuild_runs(parts: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``rebuild_traces.sql`` over the whole runs of one partition."""
    table = from_batches(parts)
    if table is None:
        return
    sql = resources.files("failkit.sql").joinpath("rebuild_traces.sql").read_text()
    with connect() as store:
        con = store.con
        con.register("fk_part", table)
        for name, columns, kind in (
            ("spans", TABLES["spans"], "span"),
            ("labels", TABLES["labels"], "label"),
        ):
            cols = ", ".join(f'"{c.name}"' for c in columns)
            picked = ", ".join(f'"{kind}_{c.name}"' for c in columns)
            con.execute(
                f"INSERT INTO {name} ({cols}) SELECT {picked} FROM fk_part "
                f"WHERE fk_kind = '{kind}' ORDER BY file_index, part, fk_row"
            )
        meta = STAGE_TABLES["stage_traces"]
        con.execute(create_table_sql("stage_traces", meta, temp=True))
        con.execute(
            f"INSERT INTO stage_traces ({', '.join(_META_COLUMNS)}) "
            f"SELECT {', '.join(f'meta_{n}' for n in _META_COLUMNS)} FROM fk_part "
            "WHERE fk_kind = 'meta' "  # a run's rows from the first file that holds it
            "QUALIFY file_index = min(file_index) OVER (PARTITION BY trace_id) "
            "ORDER BY file_index, part, fk_row"
        )
        con.execute("CREATE TEMP TABLE affected AS SELECT DISTINCT trace_id FROM spans")
        con.unregister("fk_part")
        con.execute(sql)
        rows = con.sql("SELECT * FROM traces").to_arrow_table()
    yield from rows.cast(arrow_schema(TABLE_TYPES["traces"])).to_batches()


def _prefixed(frame: Any, prefix: str, kind: str) -> Any:
    from pyspark.sql import functions as F

    return frame.select(
        F.col("trace_id"),
        F.lit(kind).alias("fk_kind"),
        *_ORDER,
        *[F.col(c).alias(f"{prefix}_{c}") for c in frame.columns if c not in _ORDER],
    )


def _drop_repeated_spans(spark: Any, kept: dict[str, Any], files: list[str]) -> dict[str, Any]:
    """Spans an earlier file or range loaded go to quarantine, as ``store.ingest`` puts them
    there.

    The reason is the store's; ``position`` is unknown here (the file's own store has
    forgotten it) and ``raw`` is the span row as JSON.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spans = kept["spans"].withColumn(
        "fk_first",
        F.min(F.struct("file_index", "part")).over(Window.partitionBy("trace_id", "span_id")),
    )
    repeated = spans.where(F.struct("file_index", "part") > F.col("fk_first"))
    paths = spark.createDataFrame(list(enumerate(files)), "file_index int, fk_path string")
    span_columns = [c for c in TABLE_TYPES["spans"] if c != "ingest_id"]
    same_file = F.col("fk_first.file_index") == F.col("file_index")
    moved = repeated.join(paths, "file_index").select(
        "ingest_id",
        F.col("fk_path").alias("path"),
        F.lit(None).cast("string").alias("position"),
        F.concat(
            F.lit("duplicate span: span_id "),
            "span_id",
            F.when(same_file, F.lit(" appears more than once in trace ")).otherwise(
                F.lit(" of trace ")
            ),
            "trace_id",
            F.when(same_file, F.lit(" in this file; the first occurrence was loaded")).otherwise(
                F.lit(" was already loaded by an earlier file")
            ),
        ).alias("reason"),
        F.substring(F.to_json(F.struct(*span_columns)), 1, QUARANTINE_RAW_CHARS).alias("raw"),
        "file_index",
        "part",
        (F.col("fk_row") + F.lit(1 << 40)).alias("fk_row"),  # after the range's own rows
    )
    n_moved = repeated.groupBy("file_index").agg(F.count("*").alias("fk_moved"))
    moved_or_0 = F.coalesce(F.col("fk_moved"), F.lit(0))
    ingests = (
        kept["ingests"]
        .join(n_moved, "file_index", "left")
        .withColumn("rows_loaded", F.col("rows_loaded") - moved_or_0)
        .withColumn("rows_quarantined", F.col("rows_quarantined") + moved_or_0)
        .drop("fk_moved")
    )
    return {
        "spans": spans.where(F.struct("file_index", "part") == F.col("fk_first")).drop("fk_first"),
        "quarantine": kept["quarantine"].unionByName(moved),
        "ingests": ingests,
    }


def ingest_to_lake(
    spark: Any,
    paths: PathArg | Iterable[PathArg],
    lake: PathArg,
    *,
    format: str = "auto",
    overwrite: bool = False,
    split_bytes: int = SPLIT_BYTES,
) -> pd.DataFrame:
    """Load trace files into a lake on Spark (see the module docstring).

    Args:
        spark: a SparkSession (UTC; executors with failkit, reading the same paths).
        paths: files, globs, directories or a list of those (as for ``store.ingest``).
        lake: the lake directory to write.
        format: ``"auto"`` or a format name, as for ``store.ingest``.
        overwrite: replace an existing lake.
        split_bytes: JSON-lines files bigger than this are loaded in ranges of about this
            size, a task each (the driver reads a few bytes at each cut to find a newline).

    Returns:
        The lake's ``ingests`` rows: one per file loaded (a file whose content came earlier
        in ``paths`` is left out), with its format and row counts.

    Raises:
        FailkitError: no file matches, ``lake`` is not empty (and not ``overwrite``), or
            ``split_bytes`` is not positive.
    """
    from pyspark.sql import functions as F

    if split_bytes < 1:
        raise FailkitError(f"split_bytes must be a positive number of bytes, got {split_bytes}")
    files = [str(p) for p in expand_paths(paths)]
    root = prepare_directory(lake, overwrite=overwrite)
    work = _work(files, format, split_bytes)
    staged = (
        spark.createDataFrame(work, _WORK)
        .repartition(len(work))
        .mapInArrow(_load_work, _STAGED)
        .cache()
    )
    tables = {}
    for name, own in (*((n, TABLE_TYPES[n]) for n in TABLES), ("meta", _META_TYPES)):
        types = {**own, **_ORDER}
        tables[name] = staged.where(F.col("tbl") == name).mapInArrow(
            lambda parts, types=types: _decode(parts, types), ddl(types)
        )
    ingest_types = {**TABLE_TYPES["ingests"], **_ORDER}
    ingests, fix = _cut_files(
        to_pandas(tables["ingests"].toArrow(), ingest_types),
        _small(staged, "sha"),
        _small(staged, "lines"),
        files,
    )
    first = ingests.sort_values("file_index").drop_duplicates("sha256")["file_index"].tolist()
    if not first:
        raise FailkitError("no file was loaded")
    fixes = spark.createDataFrame(
        fix, "file_index int, part int, fk_id string, fk_path string, fk_lines long"
    )
    kept = {
        n: (_as_file(t, fixes) if n in _FILE_COLUMNS else t).where(F.col("file_index").isin(first))
        for n, t in tables.items()
        if n != "ingests"
    }
    kept["ingests"] = spark.createDataFrame(ingests, ddl(ingest_types)).where(
        F.col("file_index").isin(first)
    )
    kept.update(_drop_repeated_spans(spark, kept, files))
    cut = fix["file_index"].unique().tolist()
    run_meta = (
        kept["traces"]
        .where(~F.col("file_index").isin(cut))
        .unionByName(kept["meta"], allowMissingColumns=True)
    )
    runs = (
        _prefixed(kept["spans"], "span", "span")
        .unionByName(_prefixed(kept["labels"], "label", "label"), allowMissingColumns=True)
        .unionByName(_prefixed(run_meta, "meta", "meta"), allowMissingColumns=True)
        .repartition("trace_id")
        .mapInArrow(_rebuild_runs, ddl(TABLE_TYPES["traces"]))
    )
    rows = {}
    for name in TABLES:
        frame = runs if name == "traces" else kept[name]
        columns = list(TABLE_TYPES[name])
        target = str(root / name)
        if name in PARTITIONED:
            out = frame.select(*columns, F.to_date("start_time").alias("day"))
            out.write.partitionBy("source", "day").parquet(target)
        else:  # small: one file, in load order
            out = frame.coalesce(1).sortWithinPartitions(*_ORDER)
            out.select(*columns).write.parquet(target)
        rows[name] = sum(
            pq.ParquetFile(f).metadata.num_rows for f in Path(target).rglob("*.parquet")
        )
    staged.unpersist()
    write_manifest(root, rows)
    with connect_parquet(root) as out_lake:
        return out_lake.ingests_df()
