"""The heavy, data-sized steps of failkit on Apache Spark, with DuckDB inside the partitions.

Nothing here re-implements an analysis. Spark moves the rows so that each partition holds
what one call of a failkit function needs, and the partition runs that same function:

- :meth:`SparkBackend.steps` shuffles spans by ``trace_id`` (each run whole in one
  partition, with its outcome and the labels that locate silent failures joined on) and runs
  :func:`failkit.steps` — the DuckDB SQL of ``failkit/sql/steps.sql`` — on an in-memory
  store per partition;
- :meth:`SparkBackend.first_failures` runs :func:`failkit.first_failures` per partition of
  the steps (it reads one row at a time);
- :meth:`SparkBackend.stage_reliability` and :meth:`SparkBackend.design` run the local
  partial-aggregate functions per partition of runs, sum their rows per key and finalize
  on the driver; what needs a sample in order (quantiles, the design's latency and cost laws)
  is ranked on Spark and only the ranks wanted reach the driver
  (:mod:`failkit.spark.aggregates`);
- :meth:`SparkBackend.failure_modes` and :meth:`SparkBackend.failure_mode_summary` run the
  three steps of :func:`failkit.failure_modes` where their data is
  (:mod:`failkit.spark.failures`): events and signatures per partition of runs, modes of
  the distinct signatures on the driver, the join back and the summary's partial sums per
  partition.

:mod:`failkit.spark.ingest` writes the lake from raw trace files the same way.

Results are the DuckDB path's, row for row (``tests/test_spark.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from failkit.chains import FIRST_FAILURE_COLUMNS, first_failures, steps
from failkit.design import Design
from failkit.errors import FailkitError
from failkit.failures import MODE_COLUMNS
from failkit.lake import PARTITIONED, read_manifest
from failkit.schema import SPAN_COLUMNS, TABLES
from failkit.spark import aggregates
from failkit.spark import failures as spark_failures
from failkit.spark.frames import (
    STEP_TYPES,
    TABLE_TYPES,
    batches,
    ddl,
    from_batches,
    steps_to_pandas,
    to_pandas,
)
from failkit.spark.session import require_pyspark
from failkit.stages import StageRule
from failkit.store import PathArg, connect

_SPAN_INPUTS = [c.name for c in SPAN_COLUMNS if c.name not in ("attributes", "events")]
"""Span columns shipped to the partitions (``steps`` reads neither JSON column)."""

_FIRST_TYPES = {c: "BOOLEAN" if c == "silent" else STEP_TYPES[c] for c in FIRST_FAILURE_COLUMNS}
_KEY = ["trace_id", "step"]


def _partition_steps(
    parts: Iterator[pa.RecordBatch], options: dict[str, Any]
) -> Iterator[pa.RecordBatch]:
    """:func:`failkit.steps` on the whole runs of one partition (an in-memory store)."""
    table = from_batches(parts)
    if table is None:
        return
    with connect() as store:
        con = store.con
        con.register("fk_part", table)
        cols = ", ".join(f'"{c}"' for c in _SPAN_INPUTS)
        con.execute(f"INSERT INTO spans ({cols}) SELECT {cols} FROM fk_part")
        con.execute(
            "INSERT INTO traces (trace_id, outcome) "
            "SELECT DISTINCT trace_id, fk_outcome FROM fk_part"
        )
        con.execute(
            "INSERT INTO labels (trace_id, span_id, name) "
            "SELECT trace_id, span_id, unnest(fk_flags) FROM fk_part WHERE fk_flags IS NOT NULL"
        )
        con.unregister("fk_part")
        yield from batches(steps(store, **options), STEP_TYPES)


def _partition_first_failures(parts: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """:func:`failkit.first_failures` on the steps of one partition."""
    table = from_batches(parts)
    if table is not None:
        yield from batches(first_failures(steps_to_pandas(table)), _FIRST_TYPES)


class SparkBackend:
    """failkit's heavy steps on Spark, over a lake (see the module docstring).

    Example:
        >>> from failkit.spark import SparkBackend, local_session  # doctest: +SKIP
        >>> sb = SparkBackend(local_session(), "lake/")  # doctest: +SKIP
        >>> st = sb.steps().cache()  # a Spark DataFrame, one row per step  # doctest: +SKIP
        >>> sb.stage_reliability(st)  # a small pandas DataFrame  # doctest: +SKIP

    Args:
        spark: a SparkSession (session time zone UTC; executors with failkit installed).
        lake: a lake directory or URL Spark can read (written by ``store.export_parquet`` or
            :func:`failkit.spark.ingest_to_lake`).
        manifest: the lake's row counts per table; read from ``lake`` when it is a local
            directory, required otherwise.
    """

    def __init__(self, spark: Any, lake: PathArg, *, manifest: dict | None = None) -> None:
        require_pyspark()
        self.spark = spark
        self.lake = str(lake)
        self.manifest = manifest if manifest is not None else read_manifest(Path(lake))
        zone = spark.conf.get("spark.sql.session.timeZone")
        if zone != "UTC":
            raise FailkitError(
                f"the SparkSession's time zone is {zone!r}: set "
                "spark.sql.session.timeZone=UTC (failkit's timestamps are UTC)"
            )

    def table(self, name: str) -> Any:
        """One table of the lake as a Spark DataFrame (columns of ``failkit.schema``)."""
        if name not in TABLES:
            raise FailkitError(f"no table {name!r} in a lake; tables: {', '.join(TABLES)}")
        types = TABLE_TYPES[name]
        if not self.manifest["rows"].get(name, 0):
            return self.spark.createDataFrame([], ddl(types))
        path = f"{self.lake}/{name}"
        reader = self.spark.read
        if name in PARTITIONED:  # the partition columns come from the directory names
            reader = reader.schema(ddl({**types, "day": "DATE"})).option("basePath", path)
        return reader.parquet(path).select(*types)

    def steps(
        self,
        *,
        rules: Sequence[StageRule] | None = None,
        non_idempotent_tools: Sequence[str] | None = None,
        label_names: Sequence[str] = (),
    ) -> Any:
        """:func:`failkit.steps` of every run, as a Spark DataFrame (same columns and rows).

        Cache it (``.cache()``) or write it out when several analyses read it.
        """
        from pyspark.sql import functions as F

        spans = self.table("spans").select(*_SPAN_INPUTS)
        runs = self.table("traces").select("trace_id", F.col("outcome").alias("fk_outcome"))
        flags = (
            self.table("labels")
            .where(F.col("span_id").isNotNull() & F.col("name").isin(list(label_names)))
            .groupBy("trace_id", "span_id")
            .agg(F.collect_list("name").alias("fk_flags"))
        )
        joined = spans.join(runs, "trace_id", "left").join(flags, ["trace_id", "span_id"], "left")
        options = {
            "rules": rules,
            "non_idempotent_tools": non_idempotent_tools,
            "label_names": tuple(label_names),
        }
        return joined.repartition("trace_id").mapInArrow(
            lambda parts: _partition_steps(parts, options), ddl(STEP_TYPES)
        )

    def _steps(self, st: Any, options: dict[str, Any]) -> Any:
        if st is None:
            return self.steps(**options)
        if options:
            raise FailkitError(
                f"{', '.join(sorted(options))} shape how steps are computed, but steps were "
                "passed: pass them to SparkBackend.steps(...) instead"
            )
        return st

    def first_failures(self, st: Any = None, **options: Any) -> Any:
        """:func:`failkit.first_failures` as a Spark DataFrame.

        Args:
            st: the steps (:meth:`steps`); computed when None.
            **options: keyword options of :meth:`steps` (only without ``st``).
        """
        return self._steps(st, options).mapInArrow(_partition_first_failures, ddl(_FIRST_TYPES))

    def stage_reliability(
        self,
        st: Any = None,
        *,
        by: Literal["tool_name", "model"] | None = None,
        level: float = 0.95,
        collected: list[dict] | None = None,
    ) -> pd.DataFrame:
        """:func:`failkit.stage_reliability`, computed on Spark, as the same pandas table.

        Partial sums per partition of runs, summed per key, finalized on the driver;
        quantiles by rank (:func:`failkit.spark.aggregates.stage_reliability`).
        ``collected``: a list that gets what reached the driver.
        """
        return aggregates.stage_reliability(
            self._steps(st, {}), by=by, level=level, collected=collected
        )

    def collect_steps(self, st: Any) -> pd.DataFrame:
        """Spark steps as the pandas frame :func:`failkit.steps` returns (same order, dtypes)."""
        return steps_to_pandas(st.toArrow()).sort_values(_KEY, ignore_index=True)

    def labels(self) -> pd.DataFrame:
        """The lake's labels as pandas (they are few: one or two per run)."""
        return to_pandas(self.table("labels").toArrow(), TABLE_TYPES["labels"])

    def failure_modes(
        self,
        st: Any = None,
        *,
        label_names: Sequence[str] = (),
        rules: Sequence[StageRule] | None = None,
        template_similarity: float = 0.7,
        text_similarity: float = 0.1,
        seed: int = 0,
    ) -> Any:
        """:func:`failkit.failure_modes` of the lake, as a Spark DataFrame.

        Events and their signatures are made per partition of runs; only the distinct
        signatures (with counts) reach the driver, where they are grouped into modes
        (:mod:`failkit.spark.failures`), and the modes are joined back on Spark. The mode
        table is made now; the events are recomputed by each action on the result (cache it
        when it is read more than once). :meth:`collect_modes` gives the pandas frame.

        Args:
            st: the steps (:meth:`steps` with the same ``label_names`` and ``rules``);
                computed when None.
            label_names, rules, template_similarity, text_similarity, seed: as in
                :func:`failkit.failure_modes`; the labels are the lake's.
        """
        if st is None:
            st = self.steps(rules=rules, label_names=label_names)
        ev = spark_failures.events(st, self.table("labels"), label_names=label_names, rules=rules)
        moded, _ = spark_failures.modes_of(
            ev, template_similarity=template_similarity, text_similarity=text_similarity, seed=seed
        )
        return moded.select(*MODE_COLUMNS)

    def collect_modes(self, modes: Any) -> pd.DataFrame:
        """Spark failure modes as the pandas frame :func:`failkit.failure_modes` returns."""
        return spark_failures.collect_modes(modes)

    def failure_mode_summary(
        self,
        st: Any = None,
        *,
        label_names: Sequence[str] = (),
        rules: Sequence[StageRule] | None = None,
        n_examples: int = 3,
        n_tools: int = 3,
        template_similarity: float = 0.7,
        text_similarity: float = 0.1,
        seed: int = 0,
    ) -> pd.DataFrame:
        """:func:`failkit.failure_mode_summary` of the lake, as the same pandas table.

        Each partition of runs adds up its runs (a few rows per mode), the driver adds up
        the partitions (:mod:`failkit.spark.failures`).

        Args:
            st: the steps (as for :meth:`failure_modes`); computed (and cached while
                needed) when None.
            label_names, rules, n_examples, n_tools, template_similarity, text_similarity,
                seed: as in :func:`failkit.failure_mode_summary`.
        """
        own = st is None
        if own:
            st = self.steps(rules=rules, label_names=label_names).cache()
        try:
            return spark_failures.mode_summary(
                st,
                self.table("labels"),
                label_names=label_names,
                rules=rules,
                n_examples=n_examples,
                n_tools=n_tools,
                template_similarity=template_similarity,
                text_similarity=text_similarity,
                seed=seed,
            )
        finally:
            if own:
                st.unpersist()

    def design(
        self,
        st: Any = None,
        *,
        name: str = "observed",
        task_spread: float | Literal["fit"] = "fit",
        collected: list[dict] | None = None,
    ) -> Design:
        """``Design.from_store`` of the lake: partial aggregates per partition of runs on Spark,
        finalized on the driver (:func:`failkit.spark.aggregates.design`). ``collected``: a list
        that gets what reached the driver."""
        return aggregates.design(
            self._steps(st, {}),
            self.table("traces"),
            self.table("spans"),
            name=name,
            task_spread=task_spread,
            collected=collected,
        )
