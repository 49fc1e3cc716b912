"""The Spark backend gives the DuckDB path's results, row for row (PySpark local mode)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, sample
from spark_fixtures import spark  # noqa: F401  (the fixture)
from test_spark_design import assert_close

import failkit as fk
from failkit.errors import FailkitError

pytestmark = pytest.mark.filterwarnings(
    # PySpark 4 warns about pandas 3 whenever it starts Arrow UDFs; failkit's Spark code
    # exchanges Arrow tables only and converts them to pandas itself.
    "ignore:PySpark does not yet fully support pandas:FutureWarning"
)

REAL_SAMPLES = [
    "otel_genai_agent.otlp.jsonl",
    "openinference_agent.otlp.jsonl",
    "pydantic_ai_genai.otlp.jsonl",
    "smolagents_openinference.otlp.jsonl",
    "langgraph_openinference.otlp.jsonl",
    "langfuse_otel.otlp.jsonl",
    "js_genai_agent.otlp-http.json",
    "langsmith_runs.merged.jsonl",
    "openai_agents_trace.jsonl",
    "inspect_ai_weather.eval",
]


def _synthetic() -> fk.TraceStore:
    store = fk.connect()
    store.ingest(REPO / "data" / "sample" / "traces.jsonl.gz")
    store.add_labels(REPO / "data" / "sample" / "labels.csv")
    return store


def _real() -> fk.TraceStore:
    store = fk.connect()
    store.ingest([sample(name) for name in REAL_SAMPLES])
    return store


class World:
    """A store, its lake, the Spark backend over it and its steps (computed once)."""

    def __init__(self, store: fk.TraceStore, lake: Path, spark_session: object) -> None:
        from failkit.spark import SparkBackend

        self.store = store
        store.export_parquet(lake)
        self.backend = SparkBackend(spark_session, lake)
        self.steps = self.backend.steps().cache()
        self.reference = fk.steps(store)


@pytest.fixture(scope="module", params=["synthetic", "real"])
def world(request, spark, tmp_path_factory) -> World:  # noqa: F811
    store = _synthetic() if request.param == "synthetic" else _real()
    return World(store, tmp_path_factory.mktemp("lake") / "lake", spark)


def test_steps_are_the_duckdb_steps(world):
    got = world.backend.collect_steps(world.steps)
    assert len(got) == len(world.reference) > 0
    pd.testing.assert_frame_equal(got, world.reference)


def test_first_failures_are_the_duckdb_ones(world):
    ff = world.backend.first_failures(world.steps)
    got = world.backend.collect_steps(world.steps)  # the same rows: check the public filter
    expected = fk.first_failures(world.reference)
    table = ff.toArrow().to_pandas().sort_values("trace_id", ignore_index=True)
    assert len(table) == len(expected) > 0
    assert table["trace_id"].tolist() == expected["trace_id"].tolist()
    assert table["span_id"].tolist() == expected["span_id"].tolist()
    assert table["silent"].tolist() == expected["silent"].tolist()
    pd.testing.assert_frame_equal(fk.first_failures(got), expected)


@pytest.mark.parametrize("by", [None, "tool_name"])
def test_stage_reliability_is_the_duckdb_table(world, by):
    got = world.backend.stage_reliability(world.steps, by=by)
    pd.testing.assert_frame_equal(got, fk.stage_reliability(world.store, by=by))


def test_failure_modes_and_summary_are_the_duckdb_ones(world):
    modes = world.backend.collect_modes(world.backend.failure_modes(world.steps))
    expected = fk.failure_modes(world.store)
    assert len(modes) == len(expected) > 0
    pd.testing.assert_frame_equal(modes, expected)
    pd.testing.assert_frame_equal(
        world.backend.failure_mode_summary(world.steps), fk.failure_mode_summary(world.store)
    )


def test_only_distinct_signatures_reach_the_driver(world):
    """The modes are made from one row per distinct signature, not from the events."""
    from failkit.failures import failure_events, signatures
    from failkit.spark import failures as spark_failures

    ev = spark_failures.events(
        world.steps, world.backend.table("labels"), label_names=(), rules=None
    )
    _, table = spark_failures.modes_of(ev, template_similarity=0.7, text_similarity=0.1, seed=0)
    local = failure_events(world.reference, world.store.labels_df())
    assert ev.count() == len(local)
    assert len(table) == len(signatures(local)) <= len(local)


@pytest.mark.parametrize("task_spread", [0.0, "fit"])
def test_design_is_the_duckdb_design(world, task_spread):
    """Equal up to the order of float sums (see ``test_spark_design.REL``)."""
    got = world.backend.design(world.steps, task_spread=task_spread)
    expected = fk.Design.from_store(world.store, task_spread=task_spread)
    assert_close(got.model_dump(), expected.model_dump())


def test_label_names_locate_silent_failures_alike(spark, tmp_path):  # noqa: F811
    """Labels pointing at a step travel with the spans to the partition of their run."""
    from failkit.spark import SparkBackend

    store = _synthetic()
    truth = pd.read_csv(REPO / "data" / "sample" / "failure_events.csv")
    silent = truth.loc[truth["silent"]].drop_duplicates("trace_id").head(40)
    store.add_labels(
        pd.DataFrame(
            {
                "trace_id": silent["trace_id"],
                "span_id": silent["span_id"],
                "name": "mistake_step",
                "value": "1",
                "comment": "the answer is wrong: " + silent["failure_mode"],
            }
        )
    )
    store.export_parquet(tmp_path / "lake")
    backend = SparkBackend(spark, tmp_path / "lake")
    options = {"label_names": ("mistake_step",)}
    st = backend.steps(**options)
    got = backend.collect_steps(st)
    expected = fk.steps(store, **options)
    pd.testing.assert_frame_equal(got, expected)
    assert expected["heuristic"].eq("label:mistake_step").sum() > 0
    pd.testing.assert_frame_equal(
        backend.collect_modes(backend.failure_modes(st, **options)),
        fk.failure_modes(store, **options),
    )


def _bad_lines(tmp_path: Path) -> Path:
    good = {"type": "span", "trace_id": "t9", "span_id": "s1", "kind": "llm", "status": "ok"}
    path = tmp_path / "partly_bad.jsonl"
    path.write_text(json.dumps(good) + "\n{not json\n")
    return path


@pytest.mark.parametrize("which", ["synthetic", "real"])
def test_ingest_to_lake_gives_the_tables_of_store_ingest(spark, tmp_path, which):  # noqa: F811
    """Files normalized on Spark make the lake that a store's ingest and export make."""
    from failkit.spark import SparkBackend, ingest_to_lake

    if which == "synthetic":
        files = [
            REPO / "data" / "sample" / "traces.jsonl.gz",
            REPO / "data" / "sample" / "labels.csv",
        ]
    else:
        files = [*(sample(name) for name in REAL_SAMPLES), _bad_lines(tmp_path)]
    store = fk.connect()
    store.ingest(files)
    report = ingest_to_lake(spark, files, tmp_path / "lake")
    lake = fk.connect_parquet(tmp_path / "lake")
    for table in ("spans", "traces", "labels"):
        query = f"SELECT * FROM {table} ORDER BY ALL"  # fixed table names
        pd.testing.assert_frame_equal(lake.sql(query), store.sql(query))
    # spans an earlier file loaded: same reason, but their position in the file is unknown
    query = "SELECT ingest_id, path, reason FROM quarantine ORDER BY ALL"
    pd.testing.assert_frame_equal(lake.sql(query), store.sql(query))
    pd.testing.assert_frame_equal(lake.labels_df(), store.labels_df())
    counts = ["path", "format", "sha256", "rows_read", "rows_loaded", "rows_quarantined"]

    def by_path(frame: pd.DataFrame) -> pd.DataFrame:  # files load in parallel on Spark
        return frame[counts].sort_values("path", ignore_index=True)

    pd.testing.assert_frame_equal(by_path(report), by_path(store.ingests_df()))
    pd.testing.assert_frame_equal(by_path(lake.ingests_df()), by_path(store.ingests_df()))
    assert len(lake.traces_df()) > 0
    backend = SparkBackend(spark, tmp_path / "lake")  # a lake Spark wrote, read by Spark
    pd.testing.assert_frame_equal(backend.collect_steps(backend.steps()), fk.steps(store))


def test_options_with_given_steps_are_refused(world):
    with pytest.raises(FailkitError, match=r"pass them to SparkBackend\.steps"):
        world.backend.first_failures(world.steps, label_names=("x",))


def test_a_session_not_in_utc_is_refused(spark, tmp_path):  # noqa: F811
    from failkit.spark import SparkBackend

    fk.connect().export_parquet(tmp_path / "lake")
    spark.conf.set("spark.sql.session.timeZone", "Europe/Paris")
    try:
        with pytest.raises(FailkitError, match="timeZone=UTC"):
            SparkBackend(spark, tmp_path / "lake")
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_an_empty_lake_gives_empty_steps(spark, tmp_path):  # noqa: F811
    from failkit.spark import SparkBackend

    fk.connect().export_parquet(tmp_path / "lake")
    backend = SparkBackend(spark, tmp_path / "lake")
    got = backend.collect_steps(backend.steps())
    assert got.empty
    assert list(got.columns) == list(fk.steps(fk.connect()).columns)
