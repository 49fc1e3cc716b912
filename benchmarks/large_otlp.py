"""Benchmark: a multi-GB OTLP JSON-lines file through ``store.ingest`` — memory and speed.

Makes an OTLP file of the requested size (default 5 GB) by repeating a batch of
``failkit.synth`` runs (~20k spans, made once and cached in ``benchmarks/out/``) with fresh
trace ids per repetition, streamed to disk. Then loads it into a new database file in a child
process, sampling the child's resident memory (``VmRSS``) every 0.2 s, and reports:

- seconds, MB/s and spans/s of the load (imports excluded);
- peak RSS (the child's own ``ru_maxrss``) and the RSS over time, so that one can see whether
  memory stays flat or grows with the file;
- the database size.

Several sizes (``--gb 0.5 1 5``) show how peak RSS scales with the input: bounded memory
means it stays flat. ``--memory-limit 2GB`` passes ``memory_limit`` to ``fk.connect`` (DuckDB
then spills past it, next to the database); without it DuckDB's default (80 % of the RAM).
Results also go to ``benchmarks/out/large_otlp.json``.

Usage: ``python benchmarks/large_otlp.py [--gb 5 ...] [--dir DIR] [--keep] [--memory-limit M]``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from synth_files import OUT, synth_file

UNIT_RUNS = 2_900  # ~20k spans, ~25 MB of OTLP JSON lines
_TRACE_ID = re.compile(rb'("traceId":")[0-9a-f]{8}')

CHILD = """
import json, resource, sys, time
import failkit as fk
path, db, limit = sys.argv[1:4]
t, c = time.perf_counter(), time.process_time()
with fk.connect(db, memory_limit=limit or None) as store:
    r = store.ingest(path, progress=False)
    used = store.sql("SELECT current_setting('memory_limit') AS m")["m"].iloc[0]
print(json.dumps({
    "memory_limit": used,
    "seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c,
    "rows_read": r.rows_read, "rows_loaded": r.rows_loaded,
    "rows_quarantined": r.rows_quarantined,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def unit_batch() -> tuple[bytes, int]:
    """The repeated batch: OTLP JSON lines of ``UNIT_RUNS`` synthetic runs, and its spans."""
    path, spans = synth_file(f"large_otlp_unit_{UNIT_RUNS}", "otlp", UNIT_RUNS, trials=5, seed=7)
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        data += b"\n"
    return data, spans


def make_file(path: Path, gigabytes: float) -> tuple[int, int]:
    """Write about ``gigabytes`` GB of OTLP lines to ``path``; (bytes, spans) written.

    Each repetition of the batch gets trace ids whose first 8 hex digits are the repetition
    number, so every run (and every span) is new; span ids stay unique within their run.
    """
    unit, unit_spans = unit_batch()
    target = int(gigabytes * 1e9)
    written = spans = 0
    with open(path, "wb") as f:
        rep = 0
        while written < target:
            block = _TRACE_ID.sub(rb"\g<1>" + f"{rep:08x}".encode(), unit)
            f.write(block)
            written += len(block)
            spans += unit_spans
            rep += 1
    return written, spans


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def load(path: Path, db: Path, memory_limit: str = "") -> dict[str, object]:
    """Ingest ``path`` into ``db`` in a child process; its report with RSS samples."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(db), memory_limit],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    samples: list[tuple[float, float]] = []
    t0 = time.perf_counter()

    def sample() -> None:
        while proc.poll() is None:
            rss = _rss_mb(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter() - t0, rss))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"the load failed:\n{err[-4000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["rss_samples"] = samples
    return result


def timeline(samples: list[tuple[float, float]], points: int = 10) -> str:
    """RSS at evenly spaced moments of the load, e.g. ``0.3 s 410 MB · 5.1 s 1,020 MB …``."""
    if not samples:
        return "-"
    step = max(1, len(samples) // points)
    picked = [*samples[::step][:points], samples[-1]]
    return " · ".join(f"{t:.0f}s {rss:,.0f}" for t, rss in picked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, nargs="+", default=[5.0], help="file sizes in GB")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the files and databases")
    parser.add_argument(
        "--memory-limit",
        default="",
        help="memory_limit for fk.connect, e.g. 2GB (default: DuckDB's)",
    )
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="failkit-large-otlp-"))
    work.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(exist_ok=True)
    results = []
    try:
        for gb in args.gb:
            path, db = work / f"large_{gb:g}gb.otlp.jsonl", work / f"large_{gb:g}gb.duckdb"
            t = time.perf_counter()
            size, spans = make_file(path, gb)
            made = time.perf_counter() - t
            print(f"{gb:g} GB: wrote {size / 1e9:.2f} GB, {spans:,} spans in {made:.0f} s")
            r = load(path, db, args.memory_limit)
            seconds = float(r["seconds"])  # type: ignore[arg-type]
            row = {
                "gb": round(size / 1e9, 2), "spans": spans, **r,
                "mb_per_s": size / 1e6 / seconds, "spans_per_s": spans / seconds,
                "db_gb": db.stat().st_size / 1e9,
            }  # fmt: skip
            results.append(row)
            print(
                f"  loaded {row['rows_loaded']:,} rows ({row['rows_quarantined']:,} quarantined) "
                f"in {seconds:.0f} s (cpu {float(r['cpu_seconds']):.0f} s): "  # type: ignore[arg-type]
                f"{row['mb_per_s']:.0f} MB/s, {row['spans_per_s']:,.0f} spans/s; "
                f"peak RSS {float(r['peak_rss_mb']):,.0f} MB (memory_limit {r['memory_limit']}); "
                f"db {row['db_gb']:.2f} GB"  # type: ignore[arg-type]
            )
            print(f"  RSS (MB) over time: {timeline(r['rss_samples'])}")  # type: ignore[arg-type]
            if not args.keep:
                path.unlink()
                for leftover in work.glob(f"{db.name}*"):
                    leftover.unlink()
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    (OUT / "large_otlp.json").write_text(json.dumps(results, indent=1))
    print("\n| file GB | spans | seconds | MB/s | spans/s | peak RSS MB | db GB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in results:
        print(
            f"| {row['gb']} | {row['spans']:,} | {float(row['seconds']):.0f} | "  # type: ignore[arg-type]
            f"{row['mb_per_s']:.0f} | {row['spans_per_s']:,.0f} | "
            f"{float(row['peak_rss_mb']):,.0f} | {row['db_gb']:.2f} |"  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()
