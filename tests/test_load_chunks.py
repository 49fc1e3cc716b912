"""Loads committed chunk by chunk (issue 8): same result as one transaction, in-process safety.

A big file is committed in chunks (so that memory stays bounded) and recorded in
``loads_pending`` until its final transaction. These tests check, in one process, that the
result equals a one-chunk load (run ids included, across loads too), that a failed load
leaves nothing, that another connection to the same file leaves a running load alone, and
that DuckDB's ``memory_limit`` is what it was after a load. The process-kill cases are in
``tests/test_hardening_process.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import failkit as fk
from failkit import store as store_module
from failkit.ingest import otlp
from failkit.ingest.base import SPAN_ROW_SCHEMA, Staging, create_stage_tables
from failkit.synth import sample


def tables(store: fk.TraceStore) -> dict[str, pd.DataFrame]:
    """The user tables, in a fixed order, without load ids."""
    return {
        "spans": store.sql("SELECT * EXCLUDE (ingest_id) FROM spans ORDER BY trace_id, span_id"),
        "traces": store.sql("SELECT * FROM traces ORDER BY trace_id"),
        "labels": store.sql(
            "SELECT * EXCLUDE (ingest_id) FROM labels ORDER BY trace_id, name, value"
        ),
        "quarantine": store.sql("SELECT position, reason FROM quarantine ORDER BY position"),
    }


def assert_same_tables(got: fk.TraceStore, want: fk.TraceStore) -> None:
    for name, frame in tables(want).items():
        pd.testing.assert_frame_equal(tables(got)[name], frame, obj=name)


@pytest.fixture(scope="module")
def otlp_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OTLP JSON lines of 300 synthetic runs (~2,000 spans, 2.5 MB)."""
    out = tmp_path_factory.mktemp("otlp")
    return sample(300, seed=1).write(out, formats=("otlp",))["otlp"]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTLP read in 64 KiB blocks, each committed as a chunk of its own."""
    monkeypatch.setattr(otlp, "BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(store_module, "FLUSH_ROWS", 1)


def load_in_one_chunk(path: Path, monkeypatch: pytest.MonkeyPatch) -> fk.TraceStore:
    with monkeypatch.context() as m:
        m.setattr(store_module, "FLUSH_ROWS", 10**9)
        store = fk.connect()
        store.ingest(path, progress=False)
    return store


def test_chunked_load_of_a_file_equals_one_chunk(
    otlp_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_chunks: None
) -> None:
    chunks: list[bool] = []
    flush = store_module._Load.flush

    def counted(self: store_module._Load, *, commit: bool, **kw: bool) -> None:
        flush(self, commit=commit, **kw)
        chunks.append(commit)

    monkeypatch.setattr(store_module._Load, "flush", counted)
    with fk.connect(tmp_path / "chunked.duckdb") as chunked:
        chunked.ingest(otlp_file, progress=False)
        assert sum(chunks) > 10  # many chunks were committed
        assert chunked.sql("SELECT count(*) AS n FROM loads_pending")["n"].iloc[0] == 0
        assert_same_tables(chunked, load_in_one_chunk(otlp_file, monkeypatch))


def test_span_rows_staged_in_arrow_are_committed_in_whole_row_groups(
    otlp_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the span rows staged in Arrow fill a row group, the store commits as many whole
    row groups as they fill and keeps the rest for the next chunk; the last chunk takes what
    is left. The result is that of one chunk."""
    monkeypatch.setattr(otlp, "BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(store_module, "ROW_GROUP_ROWS", 100)
    monkeypatch.setattr(store_module, "FLUSH_ROWS", 10**9)
    loaded: list[int] = []
    flush = store_module._Load.flush

    def counted(self: store_module._Load, **kw: bool) -> None:
        flush(self, **kw)
        loaded.append(count(self.store, "spans"))

    monkeypatch.setattr(store_module._Load, "flush", counted)
    with fk.connect(tmp_path / "t.duckdb") as store:
        total = store.ingest(otlp_file, progress=False).rows_loaded
        chunks = np.diff([0, *loaded])
        assert len(chunks) > 5 and loaded[-1] == total
        assert all(n % 100 == 0 for n in chunks[:-1]) and chunks[-1] % 100
        assert_same_tables(store, load_in_one_chunk(otlp_file, monkeypatch))


@pytest.mark.parametrize("bound", ["1MB", "64MB"])
def test_runs_of_a_chunked_load_are_rebuilt_in_bounded_memory_or_without_bound(
    otlp_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_chunks: None,
    bound: str,
) -> None:
    """After chunks, the runs are rebuilt with DuckDB's memory bounded; when that bound is too
    small for the rebuild (1 MB), it is done again without it. The result is the same."""
    monkeypatch.setattr(store_module, "_REBUILD_MEMORY", bound)
    limits: list[str] = []
    rebuild = store_module._Load._rebuild

    def spied(self: store_module._Load) -> None:
        limits.append(self.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
        rebuild(self)

    monkeypatch.setattr(store_module._Load, "_rebuild", spied)
    with fk.connect(tmp_path / "t.duckdb") as store:
        default = store.sql("SELECT current_setting('memory_limit') AS m")["m"].iloc[0]
        store.ingest(otlp_file, progress=False)
        assert limits == (["976.5 KiB", default] if bound == "1MB" else ["61.0 MiB"])
        assert_same_tables(store, load_in_one_chunk(otlp_file, monkeypatch))


def rebuilt_from_spans(store: fk.TraceStore) -> pd.DataFrame:
    """The store's runs rebuilt from all their spans at once (as the Spark ingest does)."""
    fresh = fk.connect()
    fresh.con.register("src", store.spans_df())
    fresh.con.execute("INSERT INTO spans SELECT * FROM src")
    fresh.con.execute("CREATE TEMP TABLE affected AS SELECT DISTINCT trace_id FROM spans")
    create_stage_tables(fresh.con, ["stage_traces"])
    fresh.con.execute(store_module._sql("rebuild_traces.sql"))
    return fresh.sql("SELECT * FROM traces ORDER BY trace_id")


def test_run_ids_from_chunks_equal_a_rebuild_from_all_spans(
    otlp_file: Path, small_chunks: None
) -> None:
    """Run ids are taken chunk by chunk from the new spans and combined at the end; the
    result equals ``rebuild_traces.sql`` reading them from every span of the runs."""
    store = fk.connect()
    store.ingest(otlp_file, progress=False)
    got = store.sql("SELECT * FROM traces ORDER BY trace_id")
    assert got["session_id"].notna().any() and got["task_id"].notna().all()
    pd.testing.assert_frame_equal(got, rebuilt_from_spans(store))


def write_runs(path: Path, spans: list[dict[str, object]]) -> Path:
    """failkit JSONL of the given span fields (times and kinds filled in)."""
    with open(path, "w", encoding="utf-8") as f:
        for i, fields in enumerate(spans):
            at = f"2026-01-01T00:00:{i:02d}Z"
            record = {"type": "span", "kind": "llm", "status": "ok", "start_time": at}
            f.write(json.dumps(record | fields) + "\n")
    return path


def fingerprint(text: str) -> str:
    return "fp_" + hashlib.md5(text.encode()).hexdigest()[:12]


def test_ids_of_a_later_load_fill_only_what_a_run_lacks(tmp_path: Path) -> None:
    """A run's ids from an earlier load stay; a later load's spans fill those still missing."""
    first = write_runs(tmp_path / "a.jsonl", [
        {"trace_id": "r1", "span_id": "a"},  # no ids, no input yet
        {"trace_id": "r2", "span_id": "a", "input": "task two",
         "attributes": {"session.id": "s2"}},
        {"trace_id": "r3", "span_id": "a", "attributes": {"failkit.task_id": "k3"}},
    ])  # fmt: skip
    second = write_runs(tmp_path / "b.jsonl", [
        {"trace_id": "r1", "span_id": "b", "parent_id": "a", "input": "task one",
         "attributes": {"user.id": "u1", "gen_ai.conversation.id": "c1"}},
        {"trace_id": "r2", "span_id": "b", "input": "another", "attributes": {"session.id": "s0"}},
        {"trace_id": "r3", "span_id": "b", "attributes": {"failkit.task_id": "k0"}},
        {"trace_id": "r4", "span_id": "a", "input": "task four", "attributes": {"user.id": "u4"}},
    ])  # fmt: skip
    store = fk.connect()
    store.ingest([first, second], progress=False)
    got = store.sql("SELECT trace_id, session_id, user_id, task_id FROM traces ORDER BY trace_id")
    assert got.replace({np.nan: None}).values.tolist() == [
        ["r1", "c1", "u1", fingerprint("task one")],
        ["r2", "s2", None, fingerprint("task two")],
        ["r3", None, None, "k3"],
        ["r4", None, "u4", fingerprint("task four")],
    ]


CHUNKS = [
    [{"trace_id": "r1", "span_id": "a", "source": "test", "kind": "tool", "status": "ok"}],
    [{"trace_id": "r1", "span_id": "b", "source": "test", "kind": "tool", "status": "ok"}],
    [{"trace_id": "r2", "span_id": "a", "source": "test", "kind": "tool", "status": "ok"}],
]


def fill_chunks(between: Callable[[int], None]) -> Callable[[Staging], None]:
    """A fill staging :data:`CHUNKS`, flushing after each and calling ``between(i)``."""

    def fill(stage: Staging) -> None:
        for i, rows in enumerate(CHUNKS):
            stage.append("stage_spans", rows)
            stage.flush()
            between(i)

    return fill


def commit(store: fk.TraceStore, fill: Callable[[Staging], None]) -> dict[str, object]:
    return store._commit("chunks", hashlib.sha256(b"chunks").hexdigest(), "test", fill)


def count(store: fk.TraceStore, table: str) -> int:
    return int(store.sql(f"SELECT count(*) AS n FROM {table}")["n"].iloc[0])


def test_another_connection_of_the_process_leaves_a_running_load_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second ``connect`` to the file while a load runs (a notebook thread) shares DuckDB's
    database: it sees the committed chunks, must not roll them back, and cannot load the
    same file at the same time."""
    monkeypatch.setattr(store_module, "FLUSH_ROWS", 1)
    db = tmp_path / "t.duckdb"
    store = fk.connect(db)
    seen: list[tuple[int, int]] = []

    def look(i: int) -> None:
        if i != 1:
            return
        other = fk.connect(db)  # no warning (warnings are errors here), nothing deleted
        seen.append((count(other, "spans"), count(other, "loads_pending")))
        with pytest.raises(fk.FailkitError, match=r"being loaded .* by another connection"):
            commit(other, fill_chunks(lambda i: None))
        other.close()

    report = commit(store, fill_chunks(look))
    assert seen == [(2, 1)]
    assert (report["rows_loaded"], count(store, "spans"), count(store, "loads_pending")) == (
        3,
        3,
        0,
    )
    store.close()
    with fk.connect(db) as again:
        assert count(again, "spans") == 3


def test_a_load_in_a_thread_while_another_connection_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same from another thread: the opener waits for nothing and deletes nothing."""
    monkeypatch.setattr(store_module, "FLUSH_ROWS", 1)
    db = tmp_path / "t.duckdb"
    store = fk.connect(db)
    chunk_done, opened = threading.Event(), threading.Event()

    def wait_for_opener(i: int) -> None:
        if i == 0:
            chunk_done.set()
            assert opened.wait(60)

    results: list[dict[str, object]] = []
    loader = threading.Thread(
        target=lambda: results.append(commit(store, fill_chunks(wait_for_opener)))
    )
    loader.start()
    assert chunk_done.wait(60)
    with fk.connect(db) as other:
        pending = count(other, "loads_pending")
    opened.set()
    loader.join(60)
    assert pending == 1 and results and results[0]["rows_loaded"] == 3
    assert count(store, "spans") == 3 and count(store, "loads_pending") == 0


def test_a_failing_load_deletes_its_committed_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "FLUSH_ROWS", 1)
    db = tmp_path / "t.duckdb"

    def fail_late(i: int) -> None:
        if i == 2:
            raise RuntimeError("the source went away")

    with fk.connect(db) as store:
        with pytest.raises(RuntimeError, match="went away"):
            commit(store, fill_chunks(fail_late))
        for table in ("spans", "traces", "quarantine", "ingests", "loads_pending"):
            assert count(store, table) == 0, table
    with fk.connect(db) as store:  # no warning: nothing was left to roll back
        assert commit(store, fill_chunks(lambda i: None))["rows_loaded"] == 3


@pytest.mark.parametrize("limit", [None, "1GB"])
def test_memory_limit_is_as_before_after_a_chunked_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str | None
) -> None:
    """Between chunks the store lowers DuckDB's memory_limit for a moment (so that DuckDB
    drops the blocks it caches); the setting is then what ``connect`` or a SET made it."""
    monkeypatch.setattr(store_module, "FLUSH_ROWS", 1)

    def setting(store: fk.TraceStore) -> str:
        return str(store.sql("SELECT current_setting('memory_limit') AS m")["m"].iloc[0])

    with fk.connect(tmp_path / "t.duckdb", memory_limit=limit) as store:
        before = setting(store)
        commit(store, fill_chunks(lambda i: None))
        assert setting(store) == before
        store.con.execute("SET memory_limit = '3GB'")
        set_by_user = setting(store)
        store._commit("more", hashlib.sha256(b"more").hexdigest(), "test", fill_more)
        assert setting(store) == set_by_user


def fill_more(stage: Staging) -> None:
    for span_id in ("x", "y"):
        stage.append("stage_spans", [{**CHUNKS[0][0], "span_id": span_id}])
        stage.flush()


def test_a_big_file_is_staged_while_it_is_hashed_and_skipped_when_known(
    otlp_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_chunks: None
) -> None:
    """A file above ``_HASH_AHEAD_BYTES`` is hashed in a thread while its first blocks are
    staged; nothing is committed before the hash is checked, and a file loaded before is
    skipped although its staging had begun."""
    monkeypatch.setattr(store_module, "_HASH_AHEAD_BYTES", 0)
    claiming = threading.Event()
    staged_before_hash: list[int] = []
    sha256, claim = store_module.file_sha256, store_module._Load.claim

    def hash_once_claimed(path: Path) -> str:
        assert claiming.wait(60)  # the hash is ready only when the store asks for it
        return sha256(path)

    def claim_and_record(self: store_module._Load) -> None:
        if not claiming.is_set():
            staged_before_hash.append(self._staged())
            claiming.set()
        claim(self)

    monkeypatch.setattr(store_module, "file_sha256", hash_once_claimed)
    monkeypatch.setattr(store_module._Load, "claim", claim_and_record)
    with fk.connect(tmp_path / "t.duckdb") as store:
        first = store.ingest(otlp_file, progress=False).files
        assert staged_before_hash and staged_before_hash[0] > 0
        claiming.clear()
        again = store.ingest(otlp_file, progress=False).files
        assert len(staged_before_hash) == 2 and staged_before_hash[1] > 0
        assert again[["status", "rows_loaded", "ingest_id"]].values.tolist() == [
            ["skipped", 0, first["ingest_id"].iloc[0]]
        ]
        assert count(store, "spans") == first["rows_loaded"].iloc[0]
        assert count(store, "loads_pending") == 0
        assert_same_tables(store, load_in_one_chunk(otlp_file, monkeypatch))


@pytest.mark.parametrize("reader", ["pyarrow", "duckdb"])
def test_small_blocks_read_into_a_ring_of_buffers_load_as_one_block(
    otlp_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    """Blocks prepared ahead while one is staged share a ring of buffers: none is
    overwritten while still in use (hundreds of 16 KiB blocks against one block), also when
    DuckDB stages the lines of each block (times as JSON numbers, which pyarrow refuses)."""
    path = otlp_file
    if reader == "duckdb":
        path = tmp_path / "numbers.otlp.jsonl"
        path.write_bytes(
            re.sub(rb'"((?:start|end)TimeUnixNano)":"(\d+)"', rb'"\1":\2', otlp_file.read_bytes())
        )
    whole = fk.connect()
    whole.ingest(path, progress=False)
    monkeypatch.setattr(otlp, "BLOCK_BYTES", 1 << 14)
    blocks = fk.connect()
    blocks.ingest(path, progress=False)
    assert_same_tables(blocks, whole)
    assert count(blocks, "spans") > 1000


def test_a_failure_while_staging_stops_the_reading_thread(
    otlp_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_chunks: None
) -> None:
    """When staging fails, the thread that reads and prepares blocks ahead is gone with the
    load, the store keeps nothing of it, and loading again works."""
    add_spans, staged = Staging.add_spans, []

    def fail_third(stage: Staging, rows: pa.Table) -> None:
        staged.append(1)
        if len(staged) == 3:
            raise RuntimeError("boom")
        add_spans(stage, rows)

    threads = threading.active_count()
    with fk.connect(tmp_path / "t.duckdb") as store:
        monkeypatch.setattr(Staging, "add_spans", fail_third)
        with pytest.raises(RuntimeError, match="boom"):
            store.ingest(otlp_file, progress=False)
        assert threading.active_count() == threads
        assert (count(store, "spans"), count(store, "loads_pending")) == (0, 0)
        monkeypatch.setattr(Staging, "add_spans", add_spans)
        assert store.ingest(otlp_file, progress=False).rows_loaded > 1000


def test_a_known_small_file_is_skipped_before_any_staging(
    otlp_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below ``_HASH_AHEAD_BYTES`` the hash comes first: a file loaded before is skipped
    without creating a staging table (re-loading a folder of known files stays cheap)."""
    with fk.connect(tmp_path / "t.duckdb") as store:
        first = store.ingest(otlp_file, progress=False).files

        def no_staging(self: store_module._Load) -> None:
            raise AssertionError("staging tables created for a known file")

        monkeypatch.setattr(store_module._Load, "create_tables", no_staging)
        again = store.ingest(otlp_file, progress=False).files
        assert again[["status", "ingest_id"]].values.tolist() == [
            ["skipped", first["ingest_id"].iloc[0]]
        ]


def test_span_rows_in_arrow_need_the_columns_of_stage_spans_with_their_types() -> None:
    """Rows handed over in Arrow are checked up front: a missing column, or JSON given as
    plain text (which DuckDB would take as JSON without checking it), is named."""
    stage = Staging(duckdb.connect(), Path("x.jsonl"))
    good = SPAN_ROW_SCHEMA.empty_table()
    stage.add_spans(good)
    with pytest.raises(ValueError, match=r"span_id \(missing"):
        stage.add_spans(good.drop_columns(["span_id"]))
    text = good.set_column(
        good.schema.get_field_index("attributes"), "attributes", pa.array([], pa.string())
    )
    with pytest.raises(ValueError, match=r"attributes \(string, not extension<arrow.json>"):
        stage.add_spans(text)
    assert len(stage.spans) == 1
