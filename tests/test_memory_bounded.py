"""Memory (issues 2 and 8): loads committed in chunks, DuckDB's memory limit.

An adapter that stages a big file block by block calls ``Staging.flush`` between blocks; the
store then validates, inserts and commits what is staged as a chunk of the load. The result
must be the same as one big chunk: duplicates across chunks quarantined, run metadata and
labels from any chunk applied, all or nothing on failure (more in ``test_load_chunks.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import failkit as fk
from failkit import store as store_module
from failkit.ingest.base import SPAN_ROW_SCHEMA, Staging


def span(trace: str, span_id: str, second: int, parent: str | None = None) -> dict[str, object]:
    return {
        "trace_id": trace, "span_id": span_id, "parent_id": parent, "name": f"step {span_id}",
        "kind": "tool", "status": "ok", "source": "test",
        "start_time": pd.Timestamp(f"2026-01-01 00:00:{second:02d}"),
        "end_time": pd.Timestamp(f"2026-01-01 00:00:{second + 1:02d}"),
        "position": f"row {trace}/{span_id}",
    }  # fmt: skip


CHUNKS: list[dict[str, list[dict[str, object]]]] = [
    {
        "stage_spans": [span("r1", "a", 0), span("r1", "b", 1, "a"), span("r2", "a", 2)],
        "stage_traces": [{"trace_id": "r1", "name": "first run", "position": "meta r1"}],
    },
    {  # r1/b again: a duplicate of a span flushed before
        "stage_spans": [span("r2", "b", 3, "a"), span("r1", "b", 4, "a"), span("r3", "a", 5)],
        "stage_quarantine": [{"position": "line 9", "reason": "not JSON", "raw": "{"}],
    },
    {
        "stage_spans": [span("r1", "c", 6, "b")],
        "stage_labels": [{"trace_id": "r1", "name": "outcome", "value": "fail", "position": "l"}],
    },
]


def fill_with(
    chunks: list[dict[str, list[dict[str, object]]]],
    fail_at: int | None = None,
    *,
    arrow: bool = False,
) -> Callable[[Staging], None]:
    """A fill staging ``chunks`` one after the other, flushing after each; with ``arrow``,
    the spans as rows in Arrow (:meth:`Staging.add_spans`)."""

    def fill(stage: Staging) -> None:
        for i, chunk in enumerate(chunks):
            if i == fail_at:
                raise RuntimeError("the source went away")
            for table, rows in chunk.items():
                if arrow and table == "stage_spans":
                    data = {f.name: [row.get(f.name) for row in rows] for f in SPAN_ROW_SCHEMA}
                    stage.add_spans(pa.Table.from_pydict(data, schema=SPAN_ROW_SCHEMA))
                else:
                    stage.append(table, rows)
            stage.flush()

    return fill


def load(store: fk.TraceStore, fill: Callable[[Staging], None], name: str) -> dict[str, object]:
    return store._commit(name, hashlib.sha256(name.encode()).hexdigest(), "test", fill)


def tables(store: fk.TraceStore) -> dict[str, pd.DataFrame]:
    return {
        "spans": store.sql("SELECT * EXCLUDE (ingest_id) FROM spans ORDER BY trace_id, span_id"),
        "traces": store.traces_df(),
        "labels": store.sql("SELECT * EXCLUDE (ingest_id) FROM labels"),
        "quarantine": store.sql("SELECT position, reason FROM quarantine ORDER BY rowid"),
    }


@pytest.mark.parametrize("flush_rows", [1, 4])
def test_chunks_give_what_one_chunk_gives(monkeypatch: pytest.MonkeyPatch, flush_rows: int) -> None:
    monkeypatch.setattr(store_module, "FLUSH_ROWS", 10**9)
    single = fk.connect()
    load(single, fill_with(CHUNKS), "single")
    monkeypatch.setattr(store_module, "FLUSH_ROWS", flush_rows)
    chunked = fk.connect()
    report = load(chunked, fill_with(CHUNKS), "chunked")
    for name, frame in tables(single).items():
        pd.testing.assert_frame_equal(tables(chunked)[name], frame, check_like=True, obj=name)
    assert report["rows_read"] == 10
    assert (report["rows_loaded"], report["rows_quarantined"]) == (8, 2)
    reasons = tables(chunked)["quarantine"].set_index("position")["reason"]
    assert reasons["row r1/b"].startswith(
        "duplicate span: span_id b appears more than once in trace"
    )
    runs = chunked.traces_df().set_index("trace_id")
    assert runs.loc["r1", ["name", "n_spans", "outcome"]].tolist() == ["first run", 3, "failure"]
    assert runs.loc["r2", "n_spans"] == 2


@pytest.mark.parametrize("row_group", [2, 4])
def test_span_rows_in_arrow_give_what_rows_in_the_staging_table_give(
    monkeypatch: pytest.MonkeyPatch, row_group: int
) -> None:
    """Spans handed over in Arrow and committed in whole row groups, the rest carried to the
    next chunk (here a duplicate is carried past the chunk holding its first occurrence),
    load exactly as the same spans staged in the table in one chunk."""
    monkeypatch.setattr(store_module, "FLUSH_ROWS", 10**9)
    single = fk.connect()
    load(single, fill_with(CHUNKS), "single")
    monkeypatch.setattr(store_module, "ROW_GROUP_ROWS", row_group)
    chunks: list[int] = []
    flush = store_module._Load.flush

    def counted(self: store_module._Load, **kw: bool) -> None:
        flush(self, **kw)
        chunks.append(int(kw["commit"]))

    monkeypatch.setattr(store_module._Load, "flush", counted)
    chunked = fk.connect()
    report = load(chunked, fill_with(CHUNKS, arrow=True), "chunked")
    assert sum(chunks) >= 2
    for name, frame in tables(single).items():
        pd.testing.assert_frame_equal(tables(chunked)[name], frame, check_like=True, obj=name)
    assert (report["rows_read"], report["rows_loaded"], report["rows_quarantined"]) == (10, 8, 2)


def test_a_load_failing_after_flushes_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "FLUSH_ROWS", 1)
    store = fk.connect()
    with pytest.raises(RuntimeError, match="went away"):
        load(store, fill_with(CHUNKS, fail_at=2), "broken")
    counts = store.sql(
        "SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM traces) + "
        "(SELECT count(*) FROM quarantine) + (SELECT count(*) FROM ingests) AS n"
    )["n"].iloc[0]
    assert counts == 0
    report = load(store, fill_with(CHUNKS), "again")  # the same rows load afterwards
    assert report["rows_loaded"] == 8


def test_connect_memory_limit_and_temp_directory(tmp_path: Path) -> None:
    def setting(store: fk.TraceStore, name: str) -> str:
        return str(store.sql("SELECT current_setting(?) AS v", [name])["v"].iloc[0])

    assert setting(fk.connect(memory_limit="4GB"), "memory_limit") == "3.7 GiB"  # in GiB
    assert setting(fk.connect(memory_limit="500MB"), "memory_limit") == "476.8 MiB"
    spill = tmp_path / "spill"
    store = fk.connect(tmp_path / "t.duckdb", temp_directory=spill)
    assert setting(store, "temp_directory") == str(spill)
    with pytest.raises(fk.FailkitError, match="memory_limit"):
        fk.connect(memory_limit="plenty")
