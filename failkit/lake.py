"""The trace lake: a store's tables as a hive-partitioned Parquet dataset.

Layout of a lake directory::

    failkit_lake.json                      schema version and rows per table
    spans/source=<s>/day=<yyyy-mm-dd>/*.parquet
    traces/source=<s>/day=<yyyy-mm-dd>/*.parquet
    labels/*.parquet  ingests/*.parquet  quarantine/*.parquet

``spans`` and ``traces`` are partitioned by the format they came from and the UTC day they
started (``__HIVE_DEFAULT_PARTITION__`` for none), so engines that prune by directory
(DuckDB's ``hive_partitioning``, Spark, Trino, Athena) read only the days asked for. Files
written by :func:`export_parquet` also hold the partition columns (a reader that ignores the
directory names still gets every column); files written by Spark
(:func:`failkit.spark.ingest_to_lake`) do not. The small tables are one file each.
:func:`export_parquet` writes a lake from a store; :func:`connect_parquet` opens one as a
read-only :class:`~failkit.store.TraceStore` whose ``spans`` and ``traces`` are DuckDB views
over the files (nothing is copied), so every failkit analysis runs on it unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from failkit.errors import FailkitError
from failkit.schema import SCHEMA_VERSION, TABLES, create_table_sql
from failkit.store import PathArg, TraceStore

MANIFEST = "failkit_lake.json"
"""Name of the file that marks a directory as a lake."""

PARTITIONED: tuple[str, ...] = ("spans", "traces")
"""Tables partitioned by ``source`` and ``day``."""

PARTITION_COLUMNS: tuple[str, ...] = ("source", "day")
"""Hive partition keys of :data:`PARTITIONED` tables (``day``: UTC date of ``start_time``)."""


def _files(root: Path, table: str) -> str:
    return str(root / table / "**" / "*.parquet")


def _column_list(table: str) -> str:
    return ", ".join(f'"{c.name}"' for c in TABLES[table])


def export_parquet(store: TraceStore, directory: PathArg, *, overwrite: bool = False) -> Path:
    """Write the store's tables as a Parquet lake (see the module docstring for the layout).

    Args:
        store: the store to export.
        directory: the lake directory (created; must be empty or absent unless ``overwrite``).
        overwrite: replace an existing lake in ``directory``.

    Returns:
        The lake directory.

    Raises:
        FailkitError: ``directory`` is not empty and ``overwrite`` is false, or it holds
            something that is not a lake.
    """
    root = prepare_directory(directory, overwrite=overwrite)
    con = store.con.cursor()
    try:
        counts = {}
        for table in TABLES:
            cols = _column_list(table)
            counts[table] = int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
            if not counts[table]:
                continue
            if table in PARTITIONED:
                query = (
                    f"SELECT {cols}, CAST(start_time AS DATE) AS day FROM {table} "
                    "ORDER BY trace_id, start_time"
                )
                options = "FORMAT parquet, PARTITION_BY (source, day), WRITE_PARTITION_COLUMNS true"
                target = root / table
            else:
                query, options = f"SELECT {cols} FROM {table} ORDER BY rowid", "FORMAT parquet"
                (root / table).mkdir()
                target = root / table / "data_0.parquet"
            con.execute(f"COPY ({query}) TO '{_quote(target)}' ({options})")
    finally:
        con.close()
    manifest = {"schema_version": SCHEMA_VERSION, "rows": counts}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return root


def prepare_directory(directory: PathArg, *, overwrite: bool) -> Path:
    """An empty directory for a lake: created, or an old lake removed when ``overwrite``.

    Raises:
        FailkitError: ``directory`` is not empty and ``overwrite`` is false, or it holds
            something that is not a lake.
    """
    root = Path(directory).expanduser()
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FailkitError(
                f"{root} is not empty: pick another directory or pass overwrite=True"
            )
        if not (root / MANIFEST).exists():
            raise FailkitError(f"{root} is not a failkit lake (no {MANIFEST}); not overwriting it")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _quote(path: Path) -> str:
    """A path as the body of a SQL string literal."""
    return str(path).replace("'", "''")


def read_manifest(directory: PathArg) -> dict:
    """The manifest of a lake: ``schema_version`` and ``rows`` per table.

    Raises:
        FailkitError: ``directory`` is not a lake, or a newer failkit wrote it.
    """
    root = Path(directory).expanduser()
    path = root / MANIFEST
    if not path.is_file():
        raise FailkitError(
            f"{root} is not a failkit lake (no {MANIFEST}): write one with "
            "store.export_parquet(dir)"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("schema_version", 0) > SCHEMA_VERSION:
        raise FailkitError(
            f"{root}: written by a newer failkit (schema {manifest['schema_version']} > "
            f"{SCHEMA_VERSION}); upgrade failkit to read it"
        )
    return manifest


def write_manifest(directory: PathArg, rows: dict[str, int]) -> None:
    """Mark ``directory`` as a lake holding ``rows`` rows per table."""
    manifest = {"schema_version": SCHEMA_VERSION, "rows": rows}
    (Path(directory) / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def connect_parquet(directory: PathArg) -> TraceStore:
    """Open a lake as a read-only store: ``spans`` and ``traces`` are views over the Parquet
    files (nothing is copied); ``labels``, ``ingests`` and ``quarantine`` are loaded.

    Every failkit analysis (``fk.steps``, ``fk.failure_modes``, ``fk.Design.from_store``, …)
    runs on it unchanged. DuckDB reads the files in place; filters on ``source`` or
    ``start_time`` skip files by their Parquet statistics.

    Args:
        directory: a lake written by :func:`export_parquet`.

    Raises:
        FailkitError: ``directory`` is not a lake.
    """
    root = Path(directory).expanduser()
    manifest = read_manifest(root)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    for table, columns in TABLES.items():
        if not manifest["rows"].get(table, 0):
            con.execute(create_table_sql(table, columns))
            continue
        cols = ", ".join(f'CAST("{c.name}" AS {c.sql_type}) AS "{c.name}"' for c in columns)
        # the big tables are views; the small ones are loaded, keeping their rowid order
        kind = "VIEW" if table in PARTITIONED else "TABLE"
        # Spark leaves the partition columns out of the files: read them from the directories
        hive = ", hive_partitioning = false"
        if table in PARTITIONED:
            hive = ", hive_partitioning = true, hive_types = {'source': VARCHAR, 'day': DATE}"
        con.execute(
            f"CREATE {kind} {table} AS SELECT {cols} FROM read_parquet("
            f"'{_quote(Path(_files(root, table)))}'{hive})"
        )

    con.execute("CREATE TABLE schema_version AS SELECT ? AS version", [SCHEMA_VERSION])
    return TraceStore(con, str(root), read_only=True)
