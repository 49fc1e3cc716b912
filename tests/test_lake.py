"""The Parquet lake: export, layout, and analyses on it equal to the store's."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _chain_frames import span, store

import failkit as fk
from failkit.errors import FailkitError
from failkit.lake import MANIFEST
from failkit.schema import TABLES

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


@pytest.fixture(scope="module")
def synthetic() -> fk.TraceStore:
    s = fk.connect()
    s.ingest(SAMPLE / "traces.jsonl.gz")
    s.add_labels(SAMPLE / "labels.csv")
    return s


def _table(s: fk.TraceStore, table: str) -> pd.DataFrame:
    return s.sql(f"SELECT * FROM {table} ORDER BY ALL")  # fixed table names


def test_every_table_comes_back_equal(synthetic, tmp_path):
    lake = fk.connect_parquet(synthetic.export_parquet(tmp_path / "lake"))
    for table in TABLES:
        pd.testing.assert_frame_equal(_table(lake, table), _table(synthetic, table))
    assert len(_table(lake, "spans")) > 10_000


def test_analyses_on_the_lake_equal_the_store(synthetic, tmp_path):
    lake = fk.connect_parquet(fk.export_parquet(synthetic, tmp_path / "lake"))
    pd.testing.assert_frame_equal(fk.steps(lake), fk.steps(synthetic))
    pd.testing.assert_frame_equal(fk.stage_reliability(lake), fk.stage_reliability(synthetic))
    pd.testing.assert_frame_equal(fk.failure_modes(lake), fk.failure_modes(synthetic))
    pd.testing.assert_frame_equal(lake.traces_df(), synthetic.traces_df())


def test_spans_and_traces_are_partitioned_by_source_and_day(tmp_path):
    s = store(tmp_path, [span("t1", "a", None, "agent", 0), span("t1", "b", "a", "llm", 90_000)])
    untimed = {"type": "span", "trace_id": "t2", "span_id": "c", "kind": "tool", "status": "ok"}
    (tmp_path / "untimed.jsonl").write_text(json.dumps(untimed) + "\n")
    s.ingest(tmp_path / "untimed.jsonl")
    root = s.export_parquet(tmp_path / "lake")
    days = sorted(p.name for p in (root / "spans" / "source=failkit_jsonl").iterdir())
    assert days == ["day=2026-01-01", "day=2026-01-02", "day=__HIVE_DEFAULT_PARTITION__"]
    assert (root / "traces" / "source=failkit_jsonl" / "day=2026-01-01").is_dir()
    assert json.loads((root / MANIFEST).read_text())["rows"]["spans"] == 3
    pd.testing.assert_frame_equal(_table(fk.connect_parquet(root), "spans"), _table(s, "spans"))


def test_duckdb_prunes_by_directory_when_asked(synthetic, tmp_path):
    """The layout is plain hive partitioning: a reader can filter on source and day."""
    root = synthetic.export_parquet(tmp_path / "lake")
    n = (
        fk.connect()
        .sql(
            "SELECT count(*) AS n FROM read_parquet(?, hive_partitioning = true) "
            "WHERE source = 'failkit_jsonl' AND day = DATE '2026-01-01'",
            [str(root / "spans" / "**" / "*.parquet")],
        )["n"]
        .iloc[0]
    )
    expected = synthetic.sql(
        "SELECT count(*) AS n FROM spans WHERE CAST(start_time AS DATE) = DATE '2026-01-01'"
    )["n"].iloc[0]
    assert n == expected > 0


def test_an_empty_store_gives_empty_tables(tmp_path):
    lake = fk.connect_parquet(fk.connect().export_parquet(tmp_path / "lake"))
    for table, columns in TABLES.items():
        got = _table(lake, table)
        assert got.empty
        assert list(got.columns) == [c.name for c in columns]
    assert fk.steps(lake).empty


def test_a_lake_is_read_only(synthetic, tmp_path):
    lake = fk.connect_parquet(synthetic.export_parquet(tmp_path / "lake"))
    with pytest.raises(FailkitError, match="read_only"):
        lake.ingest(SAMPLE / "labels.csv")


def test_export_refuses_to_mix_with_other_files(synthetic, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FailkitError, match="not empty"):
        synthetic.export_parquet(tmp_path)
    with pytest.raises(FailkitError, match="not a failkit lake"):
        synthetic.export_parquet(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_a_lake(synthetic, tmp_path):
    fk.connect().export_parquet(tmp_path / "lake")
    root = synthetic.export_parquet(tmp_path / "lake", overwrite=True)
    assert len(fk.connect_parquet(root).traces_df()) == len(synthetic.traces_df())


def test_connect_parquet_names_what_is_wrong(tmp_path):
    with pytest.raises(FailkitError, match="not a failkit lake"):
        fk.connect_parquet(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"schema_version": 999, "rows": {}}))
    with pytest.raises(FailkitError, match="newer failkit"):
        fk.connect_parquet(tmp_path)
