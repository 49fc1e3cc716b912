"""Running one contender of an ingest benchmark in a fresh Python process.

A contender is Python code run with ``python -c`` and the input file as its argument; its last
printed line is ``wall-seconds cpu-seconds rows``. Each runs in a process of its own, so that
its peak RSS (``ru_maxrss`` from ``os.wait4``) is its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FAILKIT = """
import failkit as fk, sys, time, tempfile, os
with tempfile.TemporaryDirectory() as tmp:
    t, c = time.perf_counter(), time.process_time()
    with fk.connect(os.path.join(tmp, "b.duckdb")) as store:
        r = store.ingest(sys.argv[1], progress=False)
    print(time.perf_counter() - t, time.process_time() - c, r.rows_loaded)
"""
"""failkit's ingest of the file into a database file, closed (committed) within the time."""


def run(name: str, code: str, path: Path) -> tuple[float, float, int, float]:
    """(wall seconds, CPU seconds, rows, peak RSS in MB) of contender ``name``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{name} failed with exit code {proc.returncode}")
    seconds, cpu, rows = stdout.split()[-3:]
    return float(seconds), float(cpu), int(rows), usage.ru_maxrss / 1024
