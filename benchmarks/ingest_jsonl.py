"""Benchmark: loading failkit JSONL, against the JSON parse floor measured in the same run.

Makes ~1M spans of failkit JSONL with ``failkit.synth`` (cached in ``benchmarks/out/``), then
times, each in a fresh subprocess so peak RSS is its own:

- ``failkit``: ``fk.connect(tmp.duckdb).ingest(file)`` — parse, type-check, quarantine, insert,
  rebuild ``traces``, commit to a file database;
- ``floor``: ``pyarrow.json.read_json`` on the same file (parse only, nothing validated or stored).

Goal (issue 2): failkit <= 3x the floor and <= 2 GB peak RSS.
Usage: ``python benchmarks/ingest_jsonl.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
from pathlib import Path

from synth_files import synth_file

CONTENDERS = {
    "failkit": """
import failkit as fk, sys, time, tempfile, os
with tempfile.TemporaryDirectory() as tmp:
    t = time.perf_counter()
    with fk.connect(os.path.join(tmp, "b.duckdb")) as store:
        r = store.ingest(sys.argv[1], progress=False)
    print(time.perf_counter() - t, r.rows_loaded, r.rows_quarantined)
""",
    "floor": """
import pyarrow as pa, pyarrow.json as pj, sys, time
# Scalar columns typed, nested ones (tool_args, attributes, events) tokenized and skipped:
# pyarrow cannot infer them (their shape changes from line to line).
scalars = pa.schema([(c, pa.string()) for c in ("type", "trace_id", "span_id", "parent_id",
    "name", "kind", "start_time", "end_time", "status", "error_type", "error_message", "model",
    "input", "output")] + [("tokens_in", pa.int64()), ("cost_usd", pa.float64())])
t = time.perf_counter()
table = pj.read_json(sys.argv[1], read_options=pj.ReadOptions(block_size=16 << 20),
                     parse_options=pj.ParseOptions(explicit_schema=scalars,
                                                   unexpected_field_behavior="ignore"))
print(time.perf_counter() - t, table.num_rows, 0)
""",
}


def run(name: str, path: Path) -> tuple[float, int, float]:
    """(seconds, rows, peak RSS in MB) of one contender in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run(
        [sys.executable, "-c", CONTENDERS[name], str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds, rows, _ = out.stdout.split()
    # ru_maxrss of children is the max over all children so far: run the biggest last or
    # read it per process; here each contender's is reported only when it raised the max.
    return float(seconds), int(rows), max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=145_000, help="synthetic runs (~7 spans each)")
    args = parser.parse_args()
    path, spans = synth_file(f"jsonl_{args.runs}", "jsonl", args.runs, seed=0)
    size_mb = path.stat().st_size / 1e6
    print(f"file: {path.name}, {spans:,} spans, {size_mb:,.0f} MB, {os.cpu_count()} cores")
    results = {name: run(name, path) for name in ("floor", "failkit")}
    floor = results["floor"][0]
    print(f"{'contender':<10} {'seconds':>8} {'x floor':>8} {'rows':>10} {'peak MB':>8}")
    for name, (seconds, rows, peak) in results.items():
        print(f"{name:<10} {seconds:>8.2f} {seconds / floor:>8.2f} {rows:>10,} {peak:>8.0f}")
    ratio = results["failkit"][0] / floor
    print(
        f"goal: <= 3x floor ({'met' if ratio <= 3 else 'MISSED'}: {ratio:.2f}x), "
        f"<= 2048 MB ({'met' if results['failkit'][2] <= 2048 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
