"""Benchmark: what the failure-mode summary on Spark brings to the driver, and how fast.

On the lake of ``benchmarks/spark.py`` (built there and cached under ``benchmarks/out``),
Spark ``local[2]``, steps computed once and cached, two ways to the same summary:

- baseline (the previous ``SparkBackend``): collect the steps the local functions read —
  failure events, every step of a failed run, the first step of every other run — and the
  labels, then run :func:`failkit.failure_mode_summary` on the driver;
- :meth:`failkit.spark.SparkBackend.failure_mode_summary`: events per partition, distinct
  signatures to the driver, partial sums per partition (:mod:`failkit.spark.failures`).

Reported: rows and Arrow bytes of every ``toArrow()`` result (what reaches the driver), wall
seconds, and the peak resident memory of the driver's Python process after each (a high-water
mark, so the small path runs first); both summaries must be equal. Results go to
``benchmarks/out/spark_modes_<spans>.json``.

Usage: ``python benchmarks/spark_modes.py [--spans 1000000]`` (under
``flock /tmp/failkit-bench.lock`` on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings
from typing import Any

import pandas as pd
from spark import OUT, build_lake  # benchmarks/spark.py, beside this file

import failkit as fk
from failkit.spark.frames import STEP_TYPES

_COLLECTED: list[tuple[int, int]] = []


def _recording(to_arrow: Any) -> Any:
    """``DataFrame.toArrow`` that records the rows and bytes of each result."""

    def wrapped(self: Any) -> Any:
        table = to_arrow(self)
        _COLLECTED.append((table.num_rows, table.nbytes))
        return table

    return wrapped


def _collected_since(start: int) -> dict[str, int]:
    done = _COLLECTED[start:]
    rows, size = sum(r for r, _ in done), sum(b for _, b in done)
    return {"collects": len(done), "rows": rows, "bytes": size}


def baseline_summary(sb: Any, st: Any) -> pd.DataFrame:
    """The previous path: the steps the local summary reads, collected, then local."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    in_run = Window.partitionBy("trace_id")
    keep = (
        st.withColumn("fk_failed", F.max("is_first_failure").over(in_run))
        .withColumn("fk_start", F.min("start_time").over(in_run))
        .where(
            F.col("fk_failed")
            | ((F.col("status") == "error") & ~F.col("propagated"))
            | (F.col("start_time") == F.col("fk_start"))
        )
        .select(*STEP_TYPES)
    )
    return fk.failure_mode_summary(sb.collect_steps(keep), labels=sb.labels())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)  # PySpark 4 about pandas 3
    from failkit.spark import SparkBackend, local_session

    lake = build_lake(args.spans)
    partitions = max(4, args.spans // 250_000)
    spark = local_session(
        cores=2, shuffle_partitions=partitions, driver_memory="8g", max_result_size="6g"
    )
    sb = SparkBackend(spark, lake)
    frame_class = type(sb.table("labels"))  # PySpark's classic DataFrame
    frame_class.toArrow = _recording(frame_class.toArrow)
    st = sb.steps().cache()
    n_steps = st.count()
    result: dict[str, Any] = {"spans": args.spans, "steps": n_steps, "partitions": partitions}
    summaries = {}
    for name, run in (  # the small one first: the driver's peak memory only grows
        ("spark_signatures", lambda: sb.failure_mode_summary(st)),
        ("baseline_collect_steps", lambda: baseline_summary(sb, st)),
    ):
        start, t0 = len(_COLLECTED), time.perf_counter()
        summaries[name] = run()
        result[name] = {
            "seconds": time.perf_counter() - t0,
            **_collected_since(start),
            "driver_python_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        r = result[name]
        print(
            f"{name:>24}: {r['seconds']:6.1f} s, {r['collects']} collects, "
            f"{r['rows']:,} rows, {r['bytes'] / 1e6:,.2f} MB to the driver; driver Python "
            f"peak RSS so far {r['driver_python_peak_mb']:,.0f} MB"
        )
    pd.testing.assert_frame_equal(*summaries.values())
    b, s = result["baseline_collect_steps"], result["spark_signatures"]
    print(
        f"signatures / baseline: {s['rows'] / b['rows']:.4f}x rows, "
        f"{s['bytes'] / b['bytes']:.4f}x bytes, {s['seconds'] / b['seconds']:.2f}x time "
        f"({len(summaries['spark_signatures'])} modes, equal summaries)"
    )
    OUT.mkdir(exist_ok=True)
    (OUT / f"spark_modes_{args.spans}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
