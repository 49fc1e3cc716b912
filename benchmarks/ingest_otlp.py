"""Benchmark: loading OTLP JSON lines, against the JSON parse floor measured in the same run.

Makes ~1M spans of OTLP JSON lines with ``failkit.synth`` (what the Collector's file exporter
writes: one ExportTraceServiceRequest per line; cached in ``benchmarks/out/``), then times,
each in a fresh subprocess so that its peak RSS is its own:

- ``failkit``: ``fk.connect(tmp.duckdb).ingest(file)`` — parse, map every attribute, quarantine,
  insert, rebuild ``traces``, commit to a file database;
- ``failkit_staging``: the part of that which is the OTLP adapter's: parse and map into span
  rows in Arrow (no validation, insert or commit);
- ``floor``: ``pyarrow.json.read_json`` on the same file (parse only, nothing mapped or stored);
- ``duckdb_read_json``: DuckDB's ``read_json`` with inferred nested structs (parse only);
- ``pandas``: ``pandas.read_json(lines=True)`` + ``json_normalize`` of the spans and their
  attributes, on a slice of the file when it is big, extrapolated by span count (marked ``*``).

Seconds are wall time of the work in the child (imports excluded); ``cpu s`` is its CPU time
over all threads, the steadier figure on a shared machine. Goals: failkit <= 3x the floor,
>= 10x faster than pandas, peak RSS <= 2 GB.
The contenders run in rounds, each round against its own floor (this machine's speed drifts
within minutes); the table shows medians over the rounds.
Usage: ``python benchmarks/ingest_otlp.py [--spans N] [--repeat R]`` (R rounds, default 3).
"""

from __future__ import annotations

import argparse
import os
from math import ceil
from pathlib import Path
from statistics import median

from contenders import FAILKIT, run
from synth_files import synth_file

SPANS_PER_RUN = 6.9  # failkit.synth's default design
PANDAS_MAX_SPANS = 100_000

CONTENDERS = {
    "failkit": FAILKIT,
    "failkit_staging": """
import duckdb, sys, time
from pathlib import Path
from failkit.ingest.base import STAGE_TABLES, Staging
from failkit.ingest.otlp import OtlpAdapter
from failkit.schema import create_table_sql
con = duckdb.connect()
for table, columns in STAGE_TABLES.items():
    con.execute(create_table_sql(table, columns, temp=True))
stage, taken = Staging(con, Path(sys.argv[1])), [0]
def take():  # what the store takes at each flush: the span rows mapped into Arrow
    taken[0] += sum(rows.num_rows for rows in stage.spans)
    stage.spans.clear()
stage.on_flush = take
t, c = time.perf_counter(), time.process_time()
OtlpAdapter().load(stage)
take()
n = taken[0] + con.execute("SELECT count(*) FROM stage_spans").fetchone()[0]
print(time.perf_counter() - t, time.process_time() - c, n)
""",
    "floor": """
import pyarrow.json as pj, sys, time
t, c = time.perf_counter(), time.process_time()
table = pj.read_json(sys.argv[1], read_options=pj.ReadOptions(block_size=16 << 20))
print(time.perf_counter() - t, time.process_time() - c, table.num_rows)
""",
    "duckdb_read_json": """
import duckdb, sys, time
t, c = time.perf_counter(), time.process_time()
n = duckdb.connect().execute(
    "SELECT sum(list_sum(flatten(list_transform(resourceSpans, "
    "lambda r: list_transform(r.scopeSpans, lambda s: len(s.spans)))))) "
    "FROM read_json(?, format='newline_delimited', maximum_object_size=1000000000)",
    [sys.argv[1]]).fetchone()[0]
print(time.perf_counter() - t, time.process_time() - c, n)
""",
    "pandas": """
import pandas as pd, sys, time
t, c = time.perf_counter(), time.process_time()
lines = pd.read_json(sys.argv[1], lines=True)
spans = pd.json_normalize(lines.to_dict("records"), record_path=["resourceSpans", "scopeSpans",
                                                                 "spans"])
attrs = pd.json_normalize([{a["key"]: next(iter(a["value"].values()), None)
                            for a in s} for s in spans["attributes"]])
frame = pd.concat([spans.drop(columns=["attributes"]), attrs], axis=1)
print(time.perf_counter() - t, time.process_time() - c, len(frame))
""",
}


def make_file(spans: int) -> tuple[Path, int]:
    """OTLP JSON lines of about ``spans`` synthetic spans (written once, then reused)."""
    runs = max(1, ceil(spans / SPANS_PER_RUN))
    return synth_file(f"otlp_{runs}", "otlp", runs, seed=0)


def head_file(path: Path, spans: int, total: int) -> tuple[Path, float]:
    """The first lines of ``path`` holding about ``spans`` spans, and the share they hold."""
    if total <= spans:
        return path, 1.0
    out = path.with_name(f"head_{spans}.otlp.jsonl")
    size = path.stat().st_size * spans / total
    with open(path, "rb") as src, open(out, "wb") as dst:
        while dst.tell() < size and (line := src.readline()):
            dst.write(line)
    return out, out.stat().st_size / path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=1_000_000, help="about this many spans")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of all contenders")
    args = parser.parse_args()
    path, spans = make_file(args.spans)
    size_mb = path.stat().st_size / 1e6
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"file: {path}, {spans:,} spans, {size_mb:,.0f} MB; {os.cpu_count()} cores, "
          f"load average {load}")  # fmt: skip
    # rounds of every contender in turn: this machine's speed drifts by more than 10 % within
    # minutes, so each round's ratios are taken against that round's floor
    targets = {name: (path, 1.0) for name in CONTENDERS}
    targets["pandas"] = head_file(path, PANDAS_MAX_SPANS, spans)
    rounds = [
        {name: run(name, CONTENDERS[name], target) for name, (target, _) in targets.items()}
        for _ in range(args.repeat)
    ]
    print(f"{'contender':<18} {'seconds':>8} {'x floor':>8} {'cpu s':>8} {'x floor':>8} "
          f"{'rows':>10} {'peak MB':>8}   (medians of {args.repeat} rounds)")  # fmt: skip
    ratios: dict[str, float] = {}
    for name, (_, share) in targets.items():
        seconds, cpu, rows, peak = (median(r[name][i] for r in rounds) for i in range(4))
        ratios[name] = median(r[name][0] / r["floor"][0] for r in rounds) / share
        cpu_ratio = median(r[name][1] / r["floor"][1] for r in rounds) / share
        note = "" if share == 1.0 else f"* {share:.0%} of the file, x{1 / share:.1f}"
        print(f"{name:<18} {seconds / share:>8.2f} {ratios[name]:>8.2f} {cpu / share:>8.2f} "
              f"{cpu_ratio:>8.2f} {rows:>10,.0f} {peak:>8.0f} {note}")  # fmt: skip
    ratio, fk_peak = ratios["failkit"], max(r["failkit"][3] for r in rounds)
    speedup = median(r["pandas"][0] / targets["pandas"][1] / r["failkit"][0] for r in rounds)
    print(
        f"goals: <= 3x floor {'met' if ratio <= 3 else 'MISSED'} ({ratio:.2f}x); "
        f">= 10x faster than pandas {'met' if speedup >= 10 else 'MISSED'} ({speedup:.1f}x); "
        f"<= 2048 MB {'met' if fk_peak <= 2048 else 'MISSED'} ({fk_peak:.0f} MB)"
    )


if __name__ == "__main__":
    main()
