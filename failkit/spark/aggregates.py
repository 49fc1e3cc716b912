"""Stage reliability and the design on Spark: partial aggregates per partition, small results.

Both run the local code's three steps (:func:`failkit.estimate.estimate_design`,
:func:`failkit.stage_reliability`): the same pandas functions make partial rows from each
partition of runs (``mapInArrow``), Spark merges the rows per key (sums, maxima), and the same
functions finalize the result on the driver. Only these reach the driver: the merged counts,
a histogram of tasks, and for what needs a sample in order — the design's latency and cost
laws (:meth:`failkit.design.Dist.from_sample`: the sorted sample cut into at most 64 groups,
each group its mean), the median gap between steps, and the reliability table's medians and
95th percentiles — a window ranks each sample's values on Spark (one task sorts one sample:
a number per row) and only the at most 64 group sums, or the rows at the ranks wanted, are
collected. That is the one place written for Spark; it gives the local numbers up to the
order in which floats are summed (relative 1e-15 seen, tested to 1e-9), the quantiles and
medians exactly.

Pass ``collected=[]`` to the functions to get, per collect, its ``what``, ``rows``, ``bytes``
(Arrow) and ``seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from failkit.design import Design, Dist
from failkit.estimate import (
    DESIGN_COLUMNS,
    OVERHEAD_LATENCY,
    PARTIAL_COLUMNS,
    RUN_COLUMNS,
    Law,
    confidence_counts,
    design_partials,
    finalize_design,
    merge_partials,
    run_partials,
)
from failkit.reliability import (
    ATTEMPT_COLUMNS,
    RELIABILITY_SUMS,
    finalize_reliability,
    reliability_keys,
    reliability_partials,
    stage_attempts,
)
from failkit.spark.frames import batches, ddl, from_batches, step_columns_to_pandas, to_pandas

PARTIAL_TYPES = {
    "part": "VARCHAR", "stage": "VARCHAR", "round": "BIGINT", "item": "BIGINT", "key": "VARCHAR",
    "key2": "VARCHAR", "name": "VARCHAR", "value": "DOUBLE",
}  # fmt: skip
"""Spark types of :data:`failkit.estimate.PARTIAL_COLUMNS`."""
assert list(PARTIAL_TYPES) == PARTIAL_COLUMNS
_POINTS = 64
"""Groups of :meth:`failkit.design.Dist.from_sample`."""
_QUANTILES = (0.5, 0.95)
_REL_COLUMNS = {"lat": "latency_s", "cost": "cost_usd"}


def collect(df: Any, what: str, collected: list[dict] | None) -> pa.Table:
    """``df.toArrow()``, noting its rows, bytes and seconds (of the Spark job that made it) in
    ``collected`` when given."""
    start = time.perf_counter()
    table = df.toArrow()
    if collected is not None:
        seconds = time.perf_counter() - start
        collected.append(
            {"what": what, "rows": table.num_rows, "bytes": table.nbytes, "seconds": seconds}
        )
    return table


def _ranked(df: Any, keys: list[str], value: str) -> Any:
    """Rows with a number in ``value``, ranked in their ``keys`` group by it: ``fk_r`` (from
    0), ``fk_d`` (dense rank, from 1), group size ``fk_n`` and distinct values ``fk_dn``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy(*keys).orderBy(value)
    whole = Window.partitionBy(*keys)
    return (
        df.where(F.col(value).isNotNull() & ~F.isnan(value))
        .withColumn("fk_r", F.row_number().over(order) - 1)
        .withColumn("fk_d", F.dense_rank().over(order))
        .withColumn("fk_n", F.count(F.lit(1)).over(whole))
        .withColumn("fk_dn", F.max("fk_d").over(whole))
    )


def quantiles(
    df: Any, keys: list[str], value: str, qs: Sequence[float], collected: list[dict] | None
) -> pd.DataFrame:
    """Per ``keys`` group, the quantiles ``qs`` of ``value`` as pandas computes them (linear
    interpolation between the order statistics around ``q * (n - 1)``).

    Returns:
        ``keys`` and one column per q (named by the q); groups without a value are absent.
    """
    from pyspark.sql import functions as F

    ranked = _ranked(df.select(*keys, value), keys, value)
    wanted = F.lit(False)
    for q in qs:
        below = F.floor((F.col("fk_n") - 1) * q)
        wanted = wanted | (F.col("fk_r") == below) | (F.col("fk_r") == below + 1)
    rows = to_pandas(
        collect(ranked.where(wanted).select(*keys, "fk_r", "fk_n", value), value, collected),
        dict.fromkeys(keys, "VARCHAR") | {"fk_r": "BIGINT", "fk_n": "BIGINT", value: "DOUBLE"},
    )
    out = []
    for key, g in rows.groupby(keys, sort=False):
        at = dict(zip(g["fk_r"], g[value], strict=True))
        n = int(g["fk_n"].iloc[0])
        got = []
        for q in qs:
            h = q * (n - 1)
            lo = int(h)
            frac = h % 1
            got.append(at[lo] if frac == 0 else at[lo] + (at[lo + 1] - at[lo]) * frac)
        out.append((*(key if isinstance(key, tuple) else (key,)), *got))
    return pd.DataFrame(out, columns=[*keys, *qs])


def _partition_reliability(
    parts: Iterator[pa.RecordBatch], keys: list[str], sums: bool
) -> Iterator[pa.RecordBatch]:
    """Per partition of steps: :func:`failkit.reliability.reliability_partials` (``sums``) or
    the attempts' time and cost (for the quantiles)."""
    table = from_batches(parts)
    if table is None:
        return
    frame = stage_attempts(step_columns_to_pandas(table), keys)
    if sums:
        yield from batches(reliability_partials(frame, keys), _sum_types(keys))
    else:
        yield from batches(frame, _value_types(keys))


def _sum_types(keys: list[str]) -> dict[str, str]:
    return dict.fromkeys(keys, "VARCHAR") | {
        c: "DOUBLE" if c.endswith("_sum") else "BIGINT" for c in RELIABILITY_SUMS
    }


def _value_types(keys: list[str]) -> dict[str, str]:
    return dict.fromkeys(keys, "VARCHAR") | dict.fromkeys(_REL_COLUMNS, "DOUBLE")


def stage_reliability(
    st: Any,
    *,
    by: Literal["tool_name", "model"] | None = None,
    level: float = 0.95,
    collected: list[dict] | None = None,
) -> pd.DataFrame:
    """:func:`failkit.stage_reliability` of Spark steps: partial sums per partition of runs,
    summed per key on Spark, finalized on the driver; the quantiles by rank on Spark."""
    from pyspark.sql import functions as F

    keys = reliability_keys(by)
    st = st.select(*keys, *ATTEMPT_COLUMNS)
    types = _sum_types(keys)
    sums = st.mapInArrow(lambda parts: _partition_reliability(parts, keys, True), ddl(types))
    sums = sums.groupBy(*keys).agg(*(F.sum(c).alias(c) for c in RELIABILITY_SUMS))
    partial = to_pandas(collect(sums, "reliability sums", collected), types)
    partial = partial.astype({c: "int64" for c, t in types.items() if t == "BIGINT"})
    merged = partial.groupby(keys, as_index=False, sort=False)[RELIABILITY_SUMS].sum()
    merged = merged.astype({k: "string" for k in keys})
    values = st.mapInArrow(
        lambda parts: _partition_reliability(parts, keys, False), ddl(_value_types(keys))
    ).cache()
    found = merged[keys]
    for column, name in _REL_COLUMNS.items():
        q = quantiles(values, keys, column, _QUANTILES, collected)
        q = q.rename(columns={p: f"{name}_p{round(p * 100)}" for p in _QUANTILES})
        found = found.merge(q.astype({k: "string" for k in keys}), on=keys, how="left")
    values.unpersist()
    return finalize_reliability(merged, found, keys=keys, level=level)


def _partition_design(parts: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """:func:`failkit.estimate.design_partials` of the whole runs of one partition."""
    table = from_batches(parts)
    if table is not None:
        yield from batches(design_partials(step_columns_to_pandas(table)), PARTIAL_TYPES)


_RUN_TYPES = {
    "trace_id": "VARCHAR", "step_time": "DOUBLE", "step_cost": "DOUBLE", "waited": "DOUBLE",
    "duration_s": "DOUBLE", "cost_usd": "DOUBLE", "task_id": "VARCHAR", "outcome": "VARCHAR",
}  # fmt: skip


def _partition_runs(parts: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """:func:`failkit.estimate.run_partials` of the runs of one partition."""
    table = from_batches(parts)
    if table is not None:
        runs = to_pandas(table, _RUN_TYPES).astype({"waited": bool})
        yield from batches(run_partials(runs), PARTIAL_TYPES)


def _partition_confidence(parts: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """:func:`failkit.estimate.confidence_counts` of the candidates of one partition."""
    table = from_batches(parts)
    if table is not None:
        cand = to_pandas(table, {"name": "VARCHAR", "confidence": "DOUBLE"})
        yield from batches(confidence_counts(cand), PARTIAL_TYPES)


class SparkSamples:
    """The design's samples on Spark (:class:`failkit.estimate.Samples`)."""

    def __init__(self, parts: Any, collected: list[dict] | None = None) -> None:
        from pyspark.sql import functions as F

        self.rows = parts.where(F.col("part") == "sample")
        self.pending = parts.where(F.col("part") == "pending")
        self.collected = collected

    def median(self, name: str) -> float:
        """Median of the law ``name`` (NaN when it has no value), as pandas takes it."""
        from pyspark.sql import functions as F

        ranked = _ranked(self.rows.where(F.col("name") == name), ["name"], "value")
        n = F.col("fk_n")
        middle = ranked.where((F.col("fk_r") == F.floor((n - 1) / 2)) | (F.col("fk_r") == n / 2))
        values = collect(middle.select("value"), f"median of {name}", self.collected)
        return float(np.mean(values["value"].to_numpy())) if values.num_rows else float("nan")

    def dists(self, laws: Sequence[Law], backoff: dict[str, float]) -> list[Dist]:
        """:meth:`Dist.from_sample` of each law, the pending overhead settled at ``backoff``."""
        from pyspark.sql import functions as F

        spark = self.rows.sparkSession
        rows = self.rows.select("name", "stage", "round", "item", "value").unionByName(
            self._settled(backoff)
        )
        wanted = spark.createDataFrame(
            [(i, x.name, x.stage, x.round, x.item, x.zeros) for i, x in enumerate(laws)],
            "lid int, name string, stage string, round bigint, item bigint, zeros bigint",
        )
        joined = rows.join(F.broadcast(wanted), ["name", "stage", "round", "item"])
        ranked = _ranked(joined.select("lid", "zeros", "value"), ["lid"], "value").withColumn(
            "fk_zero", F.max((F.col("value") == 0).cast("int")).over(_by_lid())
        )
        grouped = ranked.selectExpr(
            "lid",
            "value",
            "fk_n + zeros AS n",
            "fk_dn + CASE WHEN zeros > 0 AND fk_zero = 0 THEN 1 ELSE 0 END <= 64 AS small",
            "fk_d",
            "fk_r + zeros AS p",  # the position among all values (>= 0), the zeros first
        ).selectExpr(
            "lid",
            "value",
            "n",
            "small",
            f"""CASE WHEN small THEN -fk_d
                WHEN p < (n % {_POINTS}) * (n div {_POINTS} + 1) THEN p div (n div {_POINTS} + 1)
                ELSE n % {_POINTS} + (p - (n % {_POINTS}) * (n div {_POINTS} + 1))
                    div (n div {_POINTS}) END AS g""",
        )
        sums = grouped.groupBy("lid", "g").agg(
            F.sum("value").alias("total"),
            F.count(F.lit(1)).alias("count"),
            F.min("value").alias("value"),
            F.first("small").alias("small"),
        )
        got = collect(sums, "law groups", self.collected).to_pandas()
        by_lid = dict(tuple(got.groupby("lid")))
        return [_dist(by_lid.get(i), law.zeros) for i, law in enumerate(laws)]

    def _settled(self, backoff: dict[str, float]) -> Any:
        """The pending overhead rows settled (:func:`failkit.estimate.settle_waits`)."""
        from pyspark.sql import functions as F

        per = F.create_map(*(F.lit(x) for kv in backoff.items() for x in kv))
        per = per.cast("map<string, double>")
        waits = self.pending.groupBy("key").agg(
            F.first(F.when(F.col("stage") == "", F.col("value")), ignorenulls=True).alias("base"),
            F.sum(F.when(F.col("stage") != "", per[F.col("stage")] * F.col("value"))).alias("wait"),
        )
        value = F.greatest(F.col("base") - F.coalesce(F.col("wait"), F.lit(0.0)), F.lit(0.0))
        return waits.select(
            F.lit(OVERHEAD_LATENCY).alias("name"),
            F.lit("").alias("stage"),
            F.lit(0).cast("bigint").alias("round"),
            F.lit(0).cast("bigint").alias("item"),
            F.coalesce(F.when(~F.isnan(value), value), F.lit(0.0)).alias("value"),
        )


def _by_lid() -> Any:
    from pyspark.sql import Window

    return Window.partitionBy("lid")


def _dist(groups: pd.DataFrame | None, zeros: int) -> Dist:
    """The law from its group rows (``g``, ``total``, ``count``, ``value``, ``small``) and the
    zeros not among them: :meth:`Dist.from_sample` of the whole sample."""
    if groups is None:
        return Dist.from_sample(np.zeros(zeros))
    n = int(groups["count"].sum()) + zeros
    if bool(groups["small"].iloc[0]):
        counts = pd.Series(groups["count"].to_numpy(np.int64), index=groups["value"].to_numpy())
        if zeros:
            counts = counts.add(pd.Series([zeros], index=[0.0]), fill_value=0).astype(np.int64)
        counts = counts.sort_index()
        return Dist(
            values=tuple(counts.index.tolist()), probs=tuple((counts.to_numpy() / n).tolist())
        )
    size = np.full(_POINTS, n // _POINTS) + (np.arange(_POINTS) < n % _POINTS)
    total = np.zeros(_POINTS)
    total[groups["g"].to_numpy(np.int64)] = groups["total"].to_numpy()
    return Dist(
        values=tuple((total / size).tolist()), probs=tuple(int(k) / n for k in size.tolist())
    )


def design(
    st: Any,
    traces: Any,
    spans: Any,
    *,
    name: str = "observed",
    task_spread: float | Literal["fit"] = "fit",
    collected: list[dict] | None = None,
) -> Design:
    """:func:`failkit.estimate.estimate_design` of Spark steps (the lake's ``traces`` and
    ``spans`` tables for the runs and the logged confidences): partial rows per partition of
    runs, merged and finalized on the driver, the laws by rank on Spark.

    Every run in ``st`` is taken to have its row in ``traces`` (a lake's runs are rebuilt from
    its spans).
    """
    from pyspark.sql import functions as F

    parts = st.select(*DESIGN_COLUMNS).mapInArrow(_partition_design, ddl(PARTIAL_TYPES)).cache()
    per_run = (
        parts.where(F.col("part") == "run")
        .groupBy(F.col("key").alias("trace_id"))
        .pivot("name", RUN_COLUMNS[1:])
        .agg(F.first("value"))
        .join(traces.select("trace_id", "duration_s", "cost_usd", "task_id", "outcome"), "trace_id")
    )
    run_parts = per_run.select(*_RUN_TYPES).mapInArrow(_partition_runs, ddl(PARTIAL_TYPES))
    every = parts.unionByName(run_parts).cache()
    confidences = spans.where(F.col("confidence").isNotNull()).select(
        F.col("trace_id").alias("key"), F.col("span_id").alias("key2"), "confidence"
    )
    candidates = every.where(F.col("part") == "candidate").join(confidences, ["key", "key2"])
    counts = every.where(F.col("part").isin("count", "max")).unionByName(
        candidates.select("name", "confidence").mapInArrow(
            _partition_confidence, ddl(PARTIAL_TYPES)
        )
    )
    task = every.where(F.col("part") == "task")
    tasks = (
        task.groupBy("key")
        .agg(
            F.sum(F.when(F.col("name") == "n", F.col("value"))).alias("n"),
            F.sum(F.when(F.col("name") == "c", F.col("value"))).alias("c"),
        )
        .groupBy("n", "c")
        .agg(F.count(F.lit(1)).alias("tasks"))
    )
    keys = ["part", "stage", "round", "item", "key", "name"]
    counts = counts.groupBy(*keys).agg(
        F.when(F.col("part") == "max", F.max("value")).otherwise(F.sum("value")).alias("value")
    )
    types = {k: PARTIAL_TYPES[k] for k in [*keys, "value"]}
    merged = merge_partials(to_pandas(collect(counts, "counts", collected), types))
    histogram = to_pandas(
        collect(tasks, "task histogram", collected),
        {"n": "DOUBLE", "c": "DOUBLE", "tasks": "BIGINT"},
    )
    try:
        return finalize_design(
            merged,
            histogram,
            SparkSamples(every, collected),
            name=name,
            task_spread=task_spread,
        )
    finally:
        every.unpersist()
        parts.unpersist()
