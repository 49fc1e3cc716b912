"""Benchmark: the same failkit pipeline on DuckDB and on Spark local mode, 1M and 10M spans.

The lake: the committed synthetic sample (``data/sample``: 1,500 runs, ~10.5k spans, outcome
labels) repeated with fresh trace ids until it holds the requested spans, written once per
size with ``store.export_parquet`` under ``benchmarks/out/spark_lake_<n>`` (cached).

The pipeline, on each engine, in a child process of its own:

- ``duckdb``: ``fk.connect_parquet(lake)`` (views over the files), ``fk.steps``,
  ``fk.first_failures``, ``fk.stage_reliability``, ``fk.failure_mode_summary``,
  ``estimate_design`` (what ``Design.from_store`` runs) — the notebook path;
- ``spark``: :class:`failkit.spark.SparkBackend` over the same lake in ``local[2]``: steps
  (cached), first failures (counted on Spark), stage reliability, failure mode summary and
  design — DuckDB and failkit's pandas code inside the Spark partitions, partial aggregates
  merged on Spark, small tables to the driver. Stage reliability and the design also report
  the rows and Arrow bytes that reached the driver (``collected``).
- ``collect-all`` (not in the default engines): the steps, runs and logged confidences
  collected as Arrow tables on Spark — what ``SparkBackend.design`` collected before it
  aggregated per partition — to report their rows and bytes.

Reported per engine and size: wall seconds per step and in all, and the peak resident memory
of the whole process tree (driver, JVM and Python workers for Spark), sampled every 0.2 s.
The DuckDB run is the baseline of the ratio. Results go to ``benchmarks/out/spark.json``.

Usage: ``python benchmarks/spark.py [--spans 1000000 10000000] [--engines duckdb spark]``
(run it under ``flock /tmp/failkit-bench.lock`` on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
SAMPLE = REPO / "data" / "sample"

CHILD = """
import json, sys, time
import failkit as fk
from failkit.estimate import confidences, estimate_design
engine, lake, partitions = sys.argv[1:4]
times, collected = {}, {}
def lap(name, t0):
    times[name] = time.perf_counter() - t0
    print(name, round(times[name], 1), file=sys.stderr, flush=True)
    return time.perf_counter()
def sizes(what, log):
    collected[what] = {"rows": sum(c["rows"] for c in log), "bytes": sum(c["bytes"] for c in log)}
t = start = time.perf_counter()
if engine == "duckdb":
    store = fk.connect_parquet(lake)
    st = fk.steps(store)
    t = lap("steps", t)
    n_first = len(fk.first_failures(st))
    t = lap("first_failures", t)
    rel = fk.stage_reliability(st)
    t = lap("stage_reliability", t)
    summary = fk.failure_mode_summary(st, labels=store.labels_df())
    t = lap("failure_mode_summary", t)
    design = estimate_design(st, store.traces_df(), confidence=confidences(store))
    t = lap("design", t)
    n_steps = len(st)
else:
    import warnings
    warnings.simplefilter("ignore", FutureWarning)  # PySpark 4 about pandas 3
    from pyspark.sql import functions as F
    from failkit.spark import SparkBackend, local_session
    from failkit.spark.aggregates import collect
    spark = local_session(
        cores=2, shuffle_partitions=int(partitions), driver_memory="8g", max_result_size="6g"
    )
    t = lap("session", t)
    sb = SparkBackend(spark, lake)
    st = sb.steps().cache()
    n_steps = st.count()
    t = lap("steps", t)
    if engine == "collect-all":
        log = []
        collect(st, "steps", log)
        collect(sb.table("traces"), "traces", log)
        conf = sb.table("spans").where(F.col("confidence").isNotNull())
        collect(conf.select("trace_id", "span_id", "confidence"), "confidences", log)
        sizes("design", log)
        times["total"] = time.perf_counter() - start
        print(json.dumps({"times": times, "n_steps": n_steps, "collected": collected}))
        sys.exit()
    n_first = sb.first_failures(st).count()
    t = lap("first_failures", t)
    log = []
    rel = sb.stage_reliability(st, collected=log)
    sizes("stage_reliability", log)
    t = lap("stage_reliability", t)
    summary = sb.failure_mode_summary(st)
    t = lap("failure_mode_summary", t)
    log = []
    design = sb.design(st, collected=log)
    sizes("design", log)
    t = lap("design", t)
times["total"] = time.perf_counter() - start
print(json.dumps({"times": times, "n_steps": n_steps, "n_first_failures": n_first,
                  "n_stages": len(rel), "n_modes": len(summary),
                  "n_design_stages": len(design.stages), "collected": collected,
                  "design": design.model_dump()}))
"""


def build_lake(n_spans: int) -> Path:
    """The synthetic sample repeated to about ``n_spans`` spans, as a lake (cached)."""
    import failkit as fk

    root = OUT / f"spark_lake_{n_spans}"
    if (root / "failkit_lake.json").exists():
        return root
    base = fk.connect()
    base.ingest(SAMPLE / "traces.jsonl.gz", progress=False)
    base.add_labels(SAMPLE / "labels.csv")
    unit = int(base.sql("SELECT count(*) AS n FROM spans")["n"].iloc[0])
    reps = max(1, round(n_spans / unit))
    db = OUT / f"spark_lake_{n_spans}.duckdb"
    db.unlink(missing_ok=True)
    with fk.connect(db) as store:
        con = store.con
        con.execute("ATTACH ':memory:' AS unit")
        for table in ("spans", "traces", "labels"):
            frame = base.con.sql(f"SELECT * FROM {table}").arrow()  # fixed table names
            con.register("unit_rows", frame)
            con.execute(
                f"INSERT INTO {table} SELECT * EXCLUDE (k) "
                "REPLACE (trace_id || '-' || k AS trace_id) FROM unit_rows, range(?) r(k)",
                [reps],
            )
            con.unregister("unit_rows")
        store.export_parquet(root, overwrite=True)
    db.unlink()
    return root


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (from /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(x.split()[1]) for x in f if x.startswith("VmRSS")), 0)
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run(engine: str, lake: Path, partitions: int) -> dict:
    """One pipeline run in a child process, with the peak RSS of its process tree."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    log = OUT / f"{lake.name}_{engine}.log"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, engine, str(lake), str(partitions)],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        env=env,
        text=True,
    )
    peak = 0

    def sample() -> None:
        nonlocal peak
        while child.poll() is None:
            peak = max(peak, _tree_rss_kb(child.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, _ = child.communicate()
    sampler.join()
    if child.returncode:
        raise SystemExit(f"{engine} run failed (exit {child.returncode}), see {log}")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_mb": peak / 1024}


def _max_rel_diff(a: object, b: object) -> float:
    """Largest relative difference between the numbers of two equal-shaped JSON values."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys()
        return max((_max_rel_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b)
        return max((_max_rel_diff(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(a, float) and isinstance(b, float) and a != b:
        return abs(a - b) / max(abs(a), abs(b))
    assert a == b, (a, b)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", default=["duckdb", "spark"])
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    results = []
    for n in args.spans:
        t = time.perf_counter()
        lake = build_lake(n)
        print(f"lake of ~{n:,} spans ready in {time.perf_counter() - t:.0f} s: {lake}")
        partitions = max(4, n // 250_000)  # ~250k spans per Spark task
        by_engine = {}
        for engine in args.engines:
            r = run(engine, lake, partitions)
            by_engine[engine] = r
            steps = ", ".join(f"{k} {v:.1f}" for k, v in r["times"].items() if k != "total")
            print(
                f"{engine:>6} {r['n_steps']:>11,} steps: {r['times']['total']:7.1f} s "
                f"({steps}), peak RSS {r['peak_rss_mb']:,.0f} MB"
            )
            for what, c in r.get("collected", {}).items():
                print(f"{'':>6} {what} collected {c['rows']:,} rows, {c['bytes'] / 1e6:,.2f} MB")
        if {"duckdb", "spark"} <= set(by_engine):
            d, s = by_engine["duckdb"], by_engine["spark"]
            assert d["n_steps"] == s["n_steps"] and d["n_first_failures"] == s["n_first_failures"]
            gap = _max_rel_diff(d["design"], s["design"])
            print(f"designs: largest relative difference {gap:.1e}")
            assert gap < 1e-9
            print(
                f"spark/duckdb: {s['times']['total'] / d['times']['total']:.2f}x time, "
                f"{s['peak_rss_mb'] / d['peak_rss_mb']:.2f}x peak memory"
            )
        results.append({"spans": n, "partitions": partitions, **by_engine})
    (OUT / "spark.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
