"""Benchmark: loading failkit JSONL, against the JSON parse floor measured in the same run.

Makes ~1M spans of failkit JSONL with ``failkit.synth`` (cached in ``benchmarks/out/``), then
times, each in a fresh subprocess so peak RSS is its own:

- ``failkit``: ``fk.connect(tmp.duckdb).ingest(file)`` — parse, type-check, quarantine, insert,
  rebuild ``traces``, commit to a file database;
- ``floor``: ``pyarrow.json.read_json`` on the same file (parse only, nothing validated or stored).

Goal (issue 2): failkit <= 3x the floor and <= 2 GB peak RSS. Both run in rounds, each round's
ratio against its own floor (this machine's speed drifts within minutes); the table shows
medians over the rounds.
Usage: ``python benchmarks/ingest_jsonl.py [--runs N] [--repeat R]`` (R rounds, default 3).
"""

from __future__ import annotations

import argparse
import os
from statistics import median

from contenders import FAILKIT, run
from synth_files import synth_file

CONTENDERS = {
    "floor": """
import pyarrow as pa, pyarrow.json as pj, sys, time
# Scalar columns typed, nested ones (tool_args, attributes, events) tokenized and skipped:
# pyarrow cannot infer them (their shape changes from line to line).
scalars = pa.schema([(c, pa.string()) for c in ("type", "trace_id", "span_id", "parent_id",
    "name", "kind", "start_time", "end_time", "status", "error_type", "error_message", "model",
    "input", "output")] + [("tokens_in", pa.int64()), ("cost_usd", pa.float64())])
t, c = time.perf_counter(), time.process_time()
table = pj.read_json(sys.argv[1], read_options=pj.ReadOptions(block_size=16 << 20),
                     parse_options=pj.ParseOptions(explicit_schema=scalars,
                                                   unexpected_field_behavior="ignore"))
print(time.perf_counter() - t, time.process_time() - c, table.num_rows)
""",
    "failkit": FAILKIT,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=145_000, help="synthetic runs (~7 spans each)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of both contenders")
    args = parser.parse_args()
    path, spans = synth_file(f"jsonl_{args.runs}", "jsonl", args.runs, seed=0)
    size_mb = path.stat().st_size / 1e6
    print(f"file: {path.name}, {spans:,} spans, {size_mb:,.0f} MB, {os.cpu_count()} cores")
    rounds = [
        {name: run(name, code, path) for name, code in CONTENDERS.items()}
        for _ in range(args.repeat)
    ]
    print(f"{'contender':<10} {'seconds':>8} {'x floor':>8} {'cpu s':>8} {'rows':>10} "
          f"{'peak MB':>8}   (medians of {args.repeat} rounds)")  # fmt: skip
    for name in CONTENDERS:
        seconds, cpu, rows, peak = (median(r[name][i] for r in rounds) for i in range(4))
        ratio = median(r[name][0] / r["floor"][0] for r in rounds)
        print(f"{name:<10} {seconds:>8.2f} {ratio:>8.2f} {cpu:>8.2f} {rows:>10,.0f} "
              f"{peak:>8.0f}")  # fmt: skip
    ratio = median(r["failkit"][0] / r["floor"][0] for r in rounds)
    each = ", ".join(f"{r['failkit'][0] / r['floor'][0]:.2f}x" for r in rounds)
    peak = max(r["failkit"][3] for r in rounds)
    print(
        f"goal: <= 3x floor ({'met' if ratio <= 3 else 'MISSED'}: {ratio:.2f}x; rounds {each}), "
        f"<= 2048 MB ({'met' if peak <= 2048 else 'MISSED'}: {peak:.0f} MB)"
    )


if __name__ == "__main__":
    main()
