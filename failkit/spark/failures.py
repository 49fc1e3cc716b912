"""Failure modes on Spark: the per-run work in the partitions, only signatures to the driver.

The three steps of :func:`failkit.failure_modes`, each run where its data is:

1. :func:`failkit.failures.failure_events` (and :func:`~failkit.failures.summary_inputs`)
   per partition of whole runs: each run's events, with their category, masked message or
   comment and signature, and what the summary reads of the run. The labels named in
   ``label_names`` travel with the first step of their run.
2. The distinct signatures with their counts (a Spark aggregate) are collected, and
   :func:`~failkit.failures.mode_table` runs on the driver: Drain and the clustering need
   every distinct text in one place, and read nothing else.
3. :func:`~failkit.failures.with_modes` joins the table back per partition: the modes stay
   a Spark DataFrame. For the summary each partition also adds up its runs
   (:func:`~failkit.failures.summary_parts`, a few rows per mode), and the driver adds the
   partitions up (:func:`~failkit.failures.summary_from_parts`), with the runs' time window
   from a Spark aggregate.

Step 1 needs whole runs in a partition. The steps of :meth:`SparkBackend.steps` are, as one
aggregate per run checks (:func:`run_table`, which also finds the runs that can have events
and the runs' time window); other steps are shuffled by ``trace_id`` first, only those of the
runs that can have an event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from failkit.failures import (
    EVENT_COLUMNS,
    MODE_COLUMNS,
    SIGNATURE_COLUMNS,
    SUMMARY_COLUMNS,
    failure_events,
    mode_table,
    run_midpoint,
    summary_from_parts,
    summary_inputs,
    summary_parts,
    with_modes,
)
from failkit.spark.frames import (
    STEP_TYPES,
    batches,
    ddl,
    from_batches,
    from_ipc,
    steps_to_pandas,
    to_ipc,
    to_pandas,
)
from failkit.stages import StageRule

_TEXT = ("category", "short_type", "sig_text", "sig_doc", "signature")
EVENT_TYPES: dict[str, str] = {
    **{c: "VARCHAR" if c in _TEXT else STEP_TYPES.get(c, "BOOLEAN") for c in EVENT_COLUMNS},
    "own_cost": "DOUBLE",
    "own_seconds": "DOUBLE",
    "run_start": "TIMESTAMP",
    "cost_usd_after": "DOUBLE",
    "seconds_after": "DOUBLE",
}
"""Column types of the events on Spark: :func:`failkit.failures.failure_events` and
:func:`failkit.failures.summary_inputs`."""

MODED_TYPES: dict[str, str] = {
    **EVENT_TYPES,
    "template": "VARCHAR",
    "mode_id": "VARCHAR",
    "mode_label": "VARCHAR",
}
"""The events with their modes."""

_LABELS = "fk_labels"
_LABEL_FIELDS = ["fk_order", "span_id", "name", "comment"]
_PARTS = "part string, payload binary"


def _labels_of(table: pa.Table) -> pd.DataFrame:
    """The labels carried by the first step of each run, in their order in the lake."""
    if _LABELS not in table.column_names:
        return pd.DataFrame(columns=["trace_id", *_LABEL_FIELDS[1:]])
    lists = table[_LABELS].combine_chunks()
    flat = pc.list_flatten(lists)
    rows = {"trace_id": table["trace_id"].combine_chunks().take(pc.list_parent_indices(lists))}
    rows.update({f: flat.field(f) for f in _LABEL_FIELDS})
    frame = pa.table(rows).to_pandas().sort_values("fk_order", ignore_index=True)
    return frame.drop(columns="fk_order")


def _partition_events(
    parts: Iterator[pa.RecordBatch], label_names: Sequence[str], rules: Any
) -> Iterator[pa.RecordBatch]:
    """Step 1 on the whole runs of one partition."""
    table = from_batches(parts)
    if table is None:
        return
    st = steps_to_pandas(table.select(list(STEP_TYPES)))
    st = st.sort_values(["trace_id", "step"], ignore_index=True)
    ev = failure_events(st, _labels_of(table), label_names=label_names, rules=rules)
    if not ev.empty:
        yield from batches(summary_inputs(ev, st), EVENT_TYPES)


def _partition_modes(
    parts: Iterator[pa.RecordBatch], table: pd.DataFrame
) -> Iterator[pa.RecordBatch]:
    """Step 3: the events of one partition with their modes."""
    events = from_batches(parts)
    if events is not None:
        yield from batches(with_modes(to_pandas(events, EVENT_TYPES), table), MODED_TYPES)


def _partition_summary(
    parts: Iterator[pa.RecordBatch], mid: pd.Timestamp | None, n_examples: int
) -> Iterator[pa.RecordBatch]:
    """The summary's partial sums over the runs of one partition, as Arrow IPC payloads."""
    events = from_batches(parts)
    if events is None:
        return
    moded = to_pandas(events, MODED_TYPES).astype({"step": "int64"})
    done = summary_parts(moded, mid, n_examples=n_examples)
    payloads = [to_ipc(pa.Table.from_pandas(f, preserve_index=False)) for f in done.values()]
    yield pa.RecordBatch.from_pydict(
        {"part": list(done), "payload": payloads},
        schema=pa.schema([("part", pa.string()), ("payload", pa.binary())]),
    )


def run_table(st: Any) -> Any:
    """Per run of the steps (a Spark aggregate, to cache): ``s`` its first start time,
    ``fk_p0`` and ``fk_p1`` the first and last partition holding its steps, ``fk_events``
    whether a step can be a failure event (an unpropagated error, a located silent first
    failure)."""
    from pyspark.sql import functions as F

    can = ((F.col("status") == "error") & ~F.col("propagated")) | (
        F.col("is_first_failure") & F.col("heuristic").isNotNull()
    )
    return (
        st.select(
            "trace_id",
            "start_time",
            F.spark_partition_id().alias("fk_part"),
            F.coalesce(can, F.lit(False)).alias("fk_can"),
        )
        .groupBy("trace_id")
        .agg(
            F.min("start_time").alias("s"),
            F.min("fk_part").alias("fk_p0"),
            F.max("fk_part").alias("fk_p1"),
            F.max("fk_can").alias("fk_events"),
        )
    )


def _failed_runs(st: Any, runs: Any, labels: Any, label_names: Sequence[str]) -> Any:
    """The steps of the runs that can have events, whole runs per partition.

    A run has events when :func:`run_table` says so or a label named in ``label_names`` is
    on it. The other runs are left out, and the rest are shuffled by ``trace_id`` only when
    a run is split over partitions (the steps of :meth:`SparkBackend.steps` are not).
    """
    from pyspark.sql import functions as F

    failed = runs.where("fk_events").select("trace_id")
    if label_names:
        named = labels.where(F.col("name").isin(list(label_names)))
        failed = failed.union(named.select(F.lower("trace_id").alias("trace_id"))).distinct()
    kept = st.join(failed, "trace_id", "left_semi")
    split = runs.where(F.col("fk_p0") != F.col("fk_p1")).limit(1).count()
    return kept.repartition("trace_id") if split else kept


def events(
    st: Any,
    labels: Any,
    *,
    label_names: Sequence[str],
    rules: Sequence[StageRule] | None,
    runs: Any = None,
) -> Any:
    """Step 1 on Spark: the failure events of every run, with the summary's inputs.

    Args:
        st: Spark steps (:meth:`SparkBackend.steps`).
        labels: the lake's labels (a Spark DataFrame).
        label_names: as in :func:`failkit.failure_modes`.
        rules: as in :func:`failkit.failure_modes`.
        runs: :func:`run_table` of ``st`` (computed when None).

    Returns:
        A Spark DataFrame with the columns of :data:`EVENT_TYPES`, partitioned by run.
    """
    from pyspark.sql import functions as F

    st = _failed_runs(st, run_table(st) if runs is None else runs, labels, label_names)
    if label_names:
        fields = [F.col(f) for f in _LABEL_FIELDS]
        per_run = (
            labels.withColumn("fk_order", F.monotonically_increasing_id())
            .where(F.col("name").isin(list(label_names)))
            .groupBy(F.lower("trace_id").alias("trace_id"))
            .agg(F.collect_list(F.struct(*fields)).alias(_LABELS))
        )
        st = st.join(per_run, "trace_id", "left").withColumn(
            _LABELS, F.when(F.col("step") == 1, F.col(_LABELS))
        )
    names, rule_table = tuple(label_names), rules
    return st.mapInArrow(
        lambda parts: _partition_events(parts, names, rule_table), ddl(EVENT_TYPES)
    )


def modes_of(
    ev: Any, *, template_similarity: float, text_similarity: float, seed: int
) -> tuple[Any, pd.DataFrame]:
    """Steps 2 and 3 on Spark: the mode table of the events' signatures, joined back.

    Returns:
        The events with their modes (a Spark DataFrame, :data:`MODED_TYPES`) and the mode
        table (pandas, one row per signature).
    """
    sig_types = {c: EVENT_TYPES[c] for c in SIGNATURE_COLUMNS} | {"n": "BIGINT"}
    counted = ev.groupBy(*SIGNATURE_COLUMNS).count().withColumnRenamed("count", "n")
    sigs = to_pandas(counted.toArrow(), sig_types)
    table = mode_table(
        sigs,
        template_similarity=template_similarity,
        text_similarity=text_similarity,
        seed=seed,
    )
    moded = ev.mapInArrow(lambda parts: _partition_modes(parts, table), ddl(MODED_TYPES))
    return moded, table


def collect_modes(modes: Any) -> pd.DataFrame:
    """Spark failure modes as the frame :func:`failkit.failure_modes` returns."""
    types = {c: MODED_TYPES[c] for c in MODE_COLUMNS}
    out = to_pandas(modes.select(*MODE_COLUMNS).toArrow(), types)
    out = out.astype({"step": "int64", "category": object, "template": object})
    return out.sort_values(["trace_id", "step"], ignore_index=True)


def window(runs: Any) -> tuple[pd.Timestamp, int, int] | None:
    """Midpoint of the runs' start times and the runs started after it and not, from the
    :func:`run_table` of the steps."""
    from pyspark.sql import functions as F

    starts = runs.where(F.col("s").isNotNull())
    first, last, n = starts.agg(F.min("s"), F.max("s"), F.count("*")).first()
    if not n:
        return None
    mid = run_midpoint(pd.Timestamp(first), pd.Timestamp(last))
    cut = F.lit(mid.floor("us").isoformat(sep=" ")).cast("timestamp_ntz")  # starts are in µs
    late = starts.where(F.col("s") > cut).count()
    return mid, late, n - late


def summary(
    moded: Any, win: tuple[pd.Timestamp, int, int] | None, *, n_examples: int, n_tools: int
) -> pd.DataFrame:
    """The failure-mode summary from the moded events: partial sums per partition, added
    up on the driver."""
    mid = win[0] if win else None
    payloads = moded.mapInArrow(
        lambda parts: _partition_summary(parts, mid, n_examples), _PARTS
    ).toArrow()
    frames: dict[str, list[pd.DataFrame]] = {}
    for name, payload in zip(
        payloads["part"].to_pylist(), payloads["payload"].to_pylist(), strict=True
    ):
        frames.setdefault(name, []).append(from_ipc(payload).to_pandas())
    if not frames:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    parts = {name: pd.concat(listed, ignore_index=True) for name, listed in frames.items()}
    return summary_from_parts([parts], win, n_examples=n_examples, n_tools=n_tools)


def mode_summary(
    st: Any,
    labels: Any,
    *,
    label_names: Sequence[str],
    rules: Sequence[StageRule] | None,
    n_examples: int,
    n_tools: int,
    **mode_options: Any,
) -> pd.DataFrame:
    """The failure-mode summary of Spark steps: events (cached while needed), modes,
    partial sums per partition, added up on the driver."""
    runs = run_table(st).cache()
    ev = events(st, labels, label_names=label_names, rules=rules, runs=runs).cache()
    try:
        moded, _ = modes_of(ev, **mode_options)
        return summary(moded, window(runs), n_examples=n_examples, n_tools=n_tools)
    finally:
        ev.unpersist()
        runs.unpersist()
