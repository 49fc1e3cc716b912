"""Failure modes on Spark: per-run events in the partitions, the DuckDB path's results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _chain_frames import span, store
from conftest import REPO
from spark_fixtures import spark  # noqa: F401  (the fixture)

import failkit as fk
from failkit.failures import MODE_COLUMNS, SUMMARY_COLUMNS

pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning"
)

JUDGE = ("judge",)


@pytest.fixture(scope="module")
def judged(spark, tmp_path_factory):  # noqa: F811
    """The synthetic sample with its judge's verdicts, its lake and Spark steps."""
    from failkit.spark import SparkBackend

    store = fk.connect()
    store.ingest(REPO / "data" / "sample" / "traces.jsonl.gz", progress=False)
    store.add_labels(REPO / "data" / "sample" / "labels.csv")
    lake = tmp_path_factory.mktemp("lake") / "lake"
    store.export_parquet(lake)
    backend = SparkBackend(spark, lake)
    return store, backend, backend.steps(label_names=JUDGE).cache()


def test_judge_comments_give_the_duckdb_modes_and_summary(judged):
    """Comments on runs and on spans travel with their runs to the partitions."""
    store, backend, st = judged
    modes = backend.collect_modes(backend.failure_modes(st, label_names=JUDGE))
    expected = fk.failure_modes(store, label_names=JUDGE)
    assert expected["category"].eq("judged").sum() > 100
    pd.testing.assert_frame_equal(modes, expected)
    pd.testing.assert_frame_equal(
        backend.failure_mode_summary(st, label_names=JUDGE),
        fk.failure_mode_summary(store, label_names=JUDGE),
    )


def test_options_reach_every_step(judged):
    store, backend, st = judged
    options = {"template_similarity": 0.5, "text_similarity": 0.3, "seed": 1}
    got = backend.failure_mode_summary(st, label_names=JUDGE, n_examples=1, n_tools=1, **options)
    expected = fk.failure_mode_summary(store, label_names=JUDGE, n_examples=1, n_tools=1, **options)
    pd.testing.assert_frame_equal(got, expected)
    assert got["example_trace_ids"].map(len).eq(1).all()


def test_steps_in_any_partitioning_give_the_same_summary(judged):
    """Runs split over partitions are put back together before their events are made."""
    store, backend, st = judged
    scattered = st.repartition(5, "span_id")
    pd.testing.assert_frame_equal(
        backend.failure_mode_summary(scattered, label_names=JUDGE),
        fk.failure_mode_summary(store, label_names=JUDGE),
    )


def test_a_lake_without_failures_gives_empty_frames(spark, tmp_path: Path):  # noqa: F811
    from failkit.spark import SparkBackend

    rows = [span("ok", "root", None, "agent", 0), span("ok", "llm", "root", "llm", 1)]
    store(tmp_path, rows, outcomes={"ok": "success"}).export_parquet(tmp_path / "lake")
    backend = SparkBackend(spark, tmp_path / "lake")
    modes = backend.collect_modes(backend.failure_modes())
    assert modes.empty and list(modes.columns) == MODE_COLUMNS
    summary = backend.failure_mode_summary()
    assert summary.empty and list(summary.columns) == SUMMARY_COLUMNS
