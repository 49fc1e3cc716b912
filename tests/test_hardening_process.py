"""Interrupted and concurrent loads against a database file (issue 8).

A load runs in a child process. Killing it with SIGKILL, inside its final transaction, at a
random point of a big load or after some of its chunks were committed, must leave the file
consistent once reopened: tables readable, earlier loads intact, nothing of the killed load,
and the next load completes. A second process opening
the file while a load runs gets a clear :class:`failkit.StoreLockedError`, never a
corrupted file.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

import failkit as fk
from failkit.synth import sample

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL and fork")

# The child: load a file into a database; with "pause", stop inside the load's final
# transaction (after the spans were inserted, before COMMIT) until a line arrives on stdin;
# with "chunks", read OTLP in small blocks and stop after its third committed chunk.
CHILD = """
import sys
import failkit as fk
from failkit.ingest import otlp
from failkit.store import _Load

db, path, mode = sys.argv[1:4]
if mode == "pause":
    finish = _Load.finish

    def paused(self):
        finish(self)
        print("in-transaction", flush=True)
        sys.stdin.readline()

    _Load.finish = paused
if mode == "chunks":
    otlp.BLOCK_BYTES = 1 << 18
    flush = _Load.flush
    committed = []

    def counted(self, *, commit, **kw):
        flush(self, commit=commit, **kw)
        committed.append(commit)
        if sum(committed) == 3:
            print("chunks-committed", flush=True)
            sys.stdin.readline()

    _Load.flush = counted
store = fk.connect(db)
print("loading", flush=True)
report = store.ingest(path, progress=False)
store.close()
print("done", report.rows_loaded, flush=True)
"""


def write_spans(path: Path, n: int, trace_prefix: str = "run") -> Path:
    """A failkit JSONL file of ``n`` spans in runs of 10, with a label per run."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            run = f"{trace_prefix}-{i // 10}"
            parent = None if i % 10 == 0 else f"s{i - i % 10}"
            f.write(
                json.dumps({
                    "type": "span", "trace_id": run, "span_id": f"s{i}", "parent_id": parent,
                    "kind": "tool" if i % 3 else "llm", "name": f"step {i % 10}",
                    "start_time": f"2026-01-01T00:{(i // 60) % 60:02d}:{i % 60:02d}Z",
                    "status": "error" if i % 7 == 0 else "ok",
                    "input": "x" * 200, "attributes": {"i": i},
                }) + "\n"
            )  # fmt: skip
    return path


class Child:
    """A child process loading a file into a database, its stdout lines read by a thread."""

    def __init__(self, db: Path, path: Path, mode: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), str(path), mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")
        self.errors.append(self.proc.stderr.read())

    def expect(self, word: str, timeout: float = 90) -> str:
        """The next stdout line, which must start with ``word``."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"child said nothing for {timeout} s, expected {word!r}")
        if not line.startswith(word):
            self.proc.kill()
            self.proc.wait(timeout=30)
            time.sleep(0.1)
            pytest.fail(f"child said {line!r}, expected {word!r}; stderr: {self.stderr()[-3000:]}")
        return line

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def finish(self, timeout: float = 120) -> int:
        """Wait for the child to exit (after its output was read); its return code."""
        code = self.proc.wait(timeout=timeout)
        while not self.errors and self.proc.stderr is not None:
            time.sleep(0.01)
        return code

    def stderr(self) -> str:
        return "".join(self.errors)

    def close(self) -> None:
        """Kill the child if it still runs and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.reader.join(timeout=30)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with suppress(BrokenPipeError):
                    pipe.close()


@contextmanager
def child(
    db: Path, path: Path, mode: str = "run", env: dict[str, str] | None = None
) -> Iterator[Child]:
    """A :class:`Child` loading ``path`` into ``db``; killed on exit if still running."""
    proc = Child(db, path, mode, env)
    try:
        yield proc
    finally:
        proc.close()


def assert_consistent(db: Path) -> dict[str, int]:
    """The file opens, every table reads, and spans match committed loads exactly."""
    with fk.connect(db) as store:
        spans, ingests = store.spans_df(), store.ingests_df()
        store.traces_df(), store.labels_df(), store.quarantine_df()
        assert set(spans["ingest_id"]) <= set(ingests["ingest_id"])
        per_ingest = spans.groupby("ingest_id").size()
        for row in ingests.itertuples():
            assert per_ingest.get(row.ingest_id, 0) == row.rows_loaded, row
        assert not spans.duplicated(["trace_id", "span_id"]).any()
        assert store.sql("SELECT count(*) AS n FROM traces")["n"].iloc[0] == (
            spans["trace_id"].nunique()
        )
        return {str(k): int(v) for k, v in per_ingest.items()}


@pytest.fixture
def db_with_a_load(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A database file holding one committed load."""
    db = tmp_path / "traces.duckdb"
    with fk.connect(db) as store:
        store.ingest(write_spans(tmp_path / "first.jsonl", 50, "first"), progress=False)
    return db, assert_consistent(db)


def test_sigkill_inside_the_transaction_loses_only_that_load(
    tmp_path: Path, db_with_a_load: tuple[Path, dict[str, int]]
) -> None:
    db, before = db_with_a_load
    big = write_spans(tmp_path / "big.jsonl", 20_000)
    with child(db, big, "pause") as proc:
        proc.expect("loading")
        proc.expect("in-transaction")  # spans inserted, COMMIT not yet run
        os.kill(proc.proc.pid, signal.SIGKILL)
        assert proc.finish() == -signal.SIGKILL
    assert assert_consistent(db) == before  # nothing of the killed load
    with fk.connect(db) as store:
        report = store.ingest(big, progress=False)
        assert (report.rows_loaded, report.rows_quarantined) == (20_000, 0)
    after = assert_consistent(db)
    assert sum(after.values()) == sum(before.values()) + 20_000


def test_sigkill_after_committed_chunks_is_rolled_back_by_the_next_connect(
    tmp_path: Path, db_with_a_load: tuple[Path, dict[str, int]]
) -> None:
    """A big load commits chunk by chunk: killed after three chunks, its rows are in the file
    (a read-only view says they are partial) until the next writable connect deletes them."""
    db, before = db_with_a_load
    otlp = sample(300, seed=1).write(tmp_path / "otlp", formats=("otlp",))["otlp"]
    with fk.connect(tmp_path / "reference.duckdb") as store:
        reference = store.ingest(otlp, progress=False)
        runs = len(store.traces_df())
    with child(db, otlp, "chunks", env={"FAILKIT_FLUSH_ROWS": "100"}) as proc:
        proc.expect("loading")
        proc.expect("chunks-committed")
        os.kill(proc.proc.pid, signal.SIGKILL)
        assert proc.finish() == -signal.SIGKILL
    ingest_id = str(reference.files["ingest_id"].iloc[0])  # the same file: the same id
    with (
        pytest.warns(fk.store.UnfinishedLoadWarning, match="holds part of a load that did not"),
        fk.connect(db, read_only=True) as view,
    ):
        partial = view.sql("SELECT count(*) AS n FROM spans WHERE ingest_id = ?", [ingest_id])
    assert 300 <= partial["n"].iloc[0] < reference.rows_loaded  # three chunks, not all
    with pytest.warns(fk.store.UnfinishedLoadWarning, match=f"rolled back .*{ingest_id}"):
        fk.connect(db).close()
    assert assert_consistent(db) == before  # nothing of the killed load
    with fk.connect(db) as store:
        report = store.ingest(otlp, progress=False)
        assert len(store.traces_df()) == runs + 5  # and the 5 runs of the first load
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (
        reference.rows_read, reference.rows_loaded, reference.rows_quarantined
    )  # fmt: skip
    after = assert_consistent(db)
    assert after == {**before, ingest_id: reference.rows_loaded}


@pytest.mark.parametrize("delay", [0.0, 0.1])
def test_sigkill_while_a_big_load_writes(
    tmp_path: Path, db_with_a_load: tuple[Path, dict[str, int]], delay: float
) -> None:
    """Killed ``delay`` s after the file starts growing: while the load's transaction writes
    its rows, during the commit's checkpoint, or after it; it landed whole or not at all."""
    db, before = db_with_a_load
    big = write_spans(tmp_path / "big.jsonl", 60_000)
    size = db.stat().st_size
    with child(db, big) as proc:
        proc.expect("loading")
        deadline = time.monotonic() + 60
        while proc.proc.poll() is None and time.monotonic() < deadline:
            if db.stat().st_size > size:
                break
            time.sleep(0.001)
        time.sleep(delay)
        if proc.proc.poll() is None:
            os.kill(proc.proc.pid, signal.SIGKILL)
        proc.finish()
    now = assert_consistent(db)
    assert now == before or sum(now.values()) == sum(before.values()) + 60_000
    with fk.connect(db) as store:
        report = store.ingest(big, progress=False)
    assert report.rows_loaded == (60_000 if now == before else 0)
    assert sum(assert_consistent(db).values()) == sum(before.values()) + 60_000


def test_second_process_gets_a_clear_error_while_a_load_runs(
    tmp_path: Path, db_with_a_load: tuple[Path, dict[str, int]]
) -> None:
    db, before = db_with_a_load
    big = write_spans(tmp_path / "big.jsonl", 5_000)
    with child(db, big, "pause") as proc:
        proc.expect("loading")
        proc.expect("in-transaction")
        for read_only in (False, True):
            with pytest.raises(fk.StoreLockedError, match="open for writing in another process"):
                fk.connect(db, read_only=read_only)
        # a second writer process fails the same way and leaves the file alone
        other = write_spans(tmp_path / "other.jsonl", 100, "other")
        with child(db, other) as second:
            assert second.finish() != 0 and "StoreLockedError" in second.stderr()
        proc.send("go\n")
        proc.expect("done 5000")
        assert proc.finish() == 0
    after = assert_consistent(db)
    assert sum(after.values()) == sum(before.values()) + 5_000
    with fk.connect(db) as store:  # and the refused load now goes through
        assert store.ingest(other, progress=False).rows_loaded == 100


def test_two_processes_loading_at_once_never_corrupt(tmp_path: Path) -> None:
    """Two writers race for one new file: one loads, the other is refused clearly."""
    db = tmp_path / "race.duckdb"
    files = [write_spans(tmp_path / f"part{i}.jsonl", 3_000, f"p{i}") for i in range(2)]
    with child(db, files[0]) as a, child(db, files[1]) as b:
        ok = [p.finish() == 0 for p in (a, b)]
        errors = [p.stderr() for p in (a, b)]
    assert any(ok)
    for err, fine in zip(errors, ok, strict=True):
        assert fine or "StoreLockedError" in err, err[-2000:]
    loaded = assert_consistent(db)
    assert sum(loaded.values()) == 3_000 * sum(ok)
    with fk.connect(db) as store:
        store.ingest(files, progress=False)
    assert sum(assert_consistent(db).values()) == 6_000
