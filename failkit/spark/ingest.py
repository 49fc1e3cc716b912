"""Normalization on Spark: trace files into a lake, each through failkit's own adapters.

Two passes, both running failkit's DuckDB code inside Spark tasks:

1. **Files.** One task per file loads it into an in-memory store with
   :meth:`failkit.TraceStore.ingest` (format detection, every adapter, quarantine) and sends
   its tables back as Arrow IPC chunks; Spark decodes them into one DataFrame per table.
2. **Runs.** The spans, labels and per-file run metadata are shuffled by ``trace_id`` and
   each partition rebuilds its runs with ``failkit/sql/rebuild_traces.sql`` (the SQL the
   store runs after every load), so a run's outcome comes from labels in any file.

The lake then holds what ``store.ingest(files)`` followed by ``store.export_parquet`` gives
(``tests/test_spark.py`` compares them), except in two corners: a span that an earlier file
already loaded is quarantined with the store's reason but without its position in the file;
and a run whose spans are split over several files takes its name, task, session and user
from the first of them (as the store does, unless a later file has run records of its own
that name them).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from failkit.errors import FailkitError
from failkit.ingest.base import STAGE_TABLES
from failkit.lake import PARTITIONED, connect_parquet, prepare_directory, write_manifest
from failkit.schema import QUARANTINE_RAW_CHARS, TABLES, create_table_sql
from failkit.spark.frames import TABLE_TYPES, arrow_schema, ddl, from_batches, to_pandas
from failkit.store import PathArg, connect, expand_paths

_CHUNK_ROWS = 50_000
"""Rows per Arrow IPC chunk sent back by a file's task."""

_STAGED = "file_index int, tbl string, payload binary"
_ORDER = {"file_index": "INTEGER", "fk_row": "BIGINT"}


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _load_files(parts: Iterator[pa.RecordBatch], fmt: str) -> Iterator[pa.RecordBatch]:
    """Each file of the partition through ``store.ingest``; its tables as IPC chunks."""
    table = from_batches(parts)
    if table is None:
        return
    for index, path in zip(table["file_index"].to_pylist(), table["path"].to_pylist(), strict=True):
        with connect() as store:
            store.ingest(path, format=fmt, progress=False)
            for name in TABLES:
                rows = store.con.sql(
                    f"SELECT *, rowid AS fk_row FROM {name} ORDER BY rowid"  # fixed names
                ).to_arrow_table()
                chunks = [
                    _ipc(rows.slice(i, _CHUNK_ROWS)) for i in range(0, len(rows), _CHUNK_ROWS)
                ]
                yield pa.RecordBatch.from_pydict(
                    {
                        "file_index": [index] * len(chunks),
                        "tbl": [name] * len(chunks),
                        "payload": chunks,
                    },
                    schema=pa.schema(
                        [("file_index", pa.int32()), ("tbl", pa.string()), ("payload", pa.binary())]
                    ),
                )


def _decode(parts: Iterator[pa.RecordBatch], types: dict[str, str]) -> Iterator[pa.RecordBatch]:
    """Rows of one table from the IPC chunks, with ``file_index`` and ``fk_row``."""
    schema = arrow_schema(types)
    for batch in parts:
        for index, payload in zip(
            batch.column("file_index").to_pylist(), batch.column("payload").to_pylist(), strict=True
        ):
            rows = pa.ipc.open_stream(payload).read_all()
            rows = rows.append_column("file_index", pa.array([index] * len(rows), pa.int32()))
            yield from rows.select(list(types)).cast(schema).to_batches()


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
                f"WHERE fk_kind = '{kind}' ORDER BY file_index, fk_row"
            )
        meta = STAGE_TABLES["stage_traces"]
        con.execute(create_table_sql("stage_traces", meta, temp=True))
        names = [c.name for c in meta if c.name != "position"]
        con.execute(
            f"INSERT INTO stage_traces ({', '.join(names)}) "
            f"SELECT {', '.join(f'meta_{n}' for n in names)} FROM fk_part "
            "WHERE fk_kind = 'meta' "  # a run's row from the first file that holds it
            "QUALIFY file_index = min(file_index) OVER (PARTITION BY trace_id)"
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
        "file_index",
        "fk_row",
        *[F.col(c).alias(f"{prefix}_{c}") for c in frame.columns if c not in _ORDER],
    )


def _drop_repeated_spans(spark: Any, kept: dict[str, Any], files: list[str]) -> dict[str, Any]:
    """Spans an earlier file loaded go to quarantine, as ``store.ingest`` puts them there.

    The reason is the store's; ``position`` is unknown here (the file's own store has
    forgotten it) and ``raw`` is the span row as JSON.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spans = kept["spans"].withColumn(
        "fk_first", F.min("file_index").over(Window.partitionBy("trace_id", "span_id"))
    )
    repeated = spans.where(F.col("file_index") > F.col("fk_first"))
    paths = spark.createDataFrame(list(enumerate(files)), "file_index int, path string")
    span_columns = [c for c in TABLE_TYPES["spans"] if c != "ingest_id"]
    moved = repeated.join(paths, "file_index").select(
        "ingest_id",
        "path",
        F.lit(None).cast("string").alias("position"),
        F.concat(
            F.lit("duplicate span: span_id "),
            "span_id",
            F.lit(" of trace "),
            "trace_id",
            F.lit(" was already loaded by an earlier file"),
        ).alias("reason"),
        F.substring(F.to_json(F.struct(*span_columns)), 1, QUARANTINE_RAW_CHARS).alias("raw"),
        "file_index",
        (F.col("fk_row") + F.lit(1 << 40)).alias("fk_row"),  # after the file's own rows
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
        "spans": spans.where(F.col("file_index") == F.col("fk_first")).drop("fk_first"),
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
) -> pd.DataFrame:
    """Load trace files into a lake on Spark (see the module docstring).

    Args:
        spark: a SparkSession (UTC; executors with failkit, reading the same paths).
        paths: files, globs, directories or a list of those (as for ``store.ingest``).
        lake: the lake directory to write.
        format: ``"auto"`` or a format name, as for ``store.ingest``.
        overwrite: replace an existing lake.

    Returns:
        The lake's ``ingests`` rows: one per file loaded (a file whose content came earlier
        in ``paths`` is left out), with its format and row counts.

    Raises:
        FailkitError: no file matches, or ``lake`` is not empty (and not ``overwrite``).
    """
    from pyspark.sql import functions as F

    files = [str(p) for p in expand_paths(paths)]
    root = prepare_directory(lake, overwrite=overwrite)
    listing = spark.createDataFrame(list(enumerate(files)), "file_index int, path string")
    staged = (
        listing.repartition(len(files))
        .mapInArrow(lambda parts: _load_files(parts, format), _STAGED)
        .cache()
    )
    tables = {}
    for name in TABLES:
        types = {**TABLE_TYPES[name], **_ORDER}
        tables[name] = staged.where(F.col("tbl") == name).mapInArrow(
            lambda parts, types=types: _decode(parts, types), ddl(types)
        )
    ingests = to_pandas(tables["ingests"].toArrow(), {**TABLE_TYPES["ingests"], **_ORDER})
    first = ingests.sort_values("file_index").drop_duplicates("sha256")["file_index"].tolist()
    if not first:
        raise FailkitError("no file was loaded")
    kept = {n: t.where(F.col("file_index").isin(first)) for n, t in tables.items()}
    kept.update(_drop_repeated_spans(spark, kept, files))
    runs = (
        _prefixed(kept["spans"], "span", "span")
        .unionByName(_prefixed(kept["labels"], "label", "label"), allowMissingColumns=True)
        .unionByName(_prefixed(kept["traces"], "meta", "meta"), allowMissingColumns=True)
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
            out = frame.coalesce(1).sortWithinPartitions("file_index", "fk_row")
            out.select(*columns).write.parquet(target)
        rows[name] = sum(
            pq.ParquetFile(f).metadata.num_rows for f in Path(target).rglob("*.parquet")
        )
    staged.unpersist()
    write_manifest(root, rows)
    with connect_parquet(root) as out_lake:
        return out_lake.ingests_df()
