"""Stage reliability, compounding, pass^k and task flakiness from observed runs."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from scipy import stats

import failkit as fk
from failkit import synth
from failkit.reliability import (
    COMPOUNDING_COLUMNS,
    FLAKINESS_COLUMNS,
    GAP_COLUMNS,
    PASS_HAT_K_COLUMNS,
    STAGE_RELIABILITY_COLUMNS,
)
from tests._chain_frames import span
from tests._chain_frames import store as chain_store
from tests.conftest import shared_path


def runs(outcomes: dict[str, str]) -> pd.DataFrame:
    """One row per run: ``{"A": "ssfu"}`` is task A with success, success, failure, unknown."""
    code = {"s": "success", "f": "failure", "u": "unknown"}
    rows = [(task, code[c]) for task, seq in outcomes.items() for c in seq]
    return pd.DataFrame(rows, columns=["task_id", "outcome"])


def test_pass_hat_k_by_hand() -> None:
    # A: n=4, c=2; B: n=3, c=3; C: n=1, c=1 (its unknown run is left out).
    got = fk.pass_hat_k(runs({"A": "sffs", "B": "sss", "C": "su"}), ks=[1, 2, 3, 4, 5])
    assert list(got.columns) == PASS_HAT_K_COLUMNS
    expected = [(2 / 4 + 1 + 1) / 3, (1 / 6 + 1) / 2, (0 + 1) / 2, 0.0, np.nan]
    np.testing.assert_allclose(got["pass_hat_k"], expected, rtol=1e-12)
    assert got["n_tasks"].tolist() == [3, 2, 2, 1, 0]
    ok = got["n_tasks"] > 0
    assert (got.loc[ok, "ci_low"] <= got.loc[ok, "pass_hat_k"]).all()
    assert (got.loc[ok, "pass_hat_k"] <= got.loc[ok, "ci_high"]).all()


def test_pass_hat_k_is_seeded() -> None:
    df = runs({f"t{i}": "sfsf"[: 2 + i % 3] for i in range(20)})
    pd.testing.assert_frame_equal(fk.pass_hat_k(df, seed=3), fk.pass_hat_k(df, seed=3))


def test_pass_hat_k_tau_bench() -> None:
    """The tau-bench leaderboard numbers for gpt-4o airline, from the raw records."""
    records = json.loads(shared_path("datasets", "tau-bench", "gpt-4o-airline.json").read_text())
    df = pd.DataFrame(
        {
            "task_id": [r["task_id"] for r in records],
            "outcome": ["success" if float(r["reward"]) == 1 else "failure" for r in records],
        }
    )
    got = fk.pass_hat_k(df, ks=range(1, 5))
    assert got["pass_hat_k"].round(3).tolist() == [0.420, 0.273, 0.220, 0.200]
    assert got["n_tasks"].tolist() == [50] * 4


def test_empty_input_gives_empty_frames_with_columns() -> None:
    empty = pd.DataFrame({"task_id": [], "outcome": []})
    assert list(fk.pass_hat_k(empty).columns) == PASS_HAT_K_COLUMNS
    assert fk.pass_hat_k(empty).empty
    assert list(fk.task_flakiness(empty).columns) == FLAKINESS_COLUMNS
    only_unknown = runs({"A": "uu"})
    assert fk.pass_hat_k(only_unknown).empty


def test_missing_columns_are_named() -> None:
    with pytest.raises(fk.FailkitError, match="task_id"):
        fk.pass_hat_k(pd.DataFrame({"outcome": ["success"]}))
    with pytest.raises(fk.FailkitError, match="positive"):
        fk.pass_hat_k(runs({"A": "s"}), ks=[0])


def test_task_flakiness() -> None:
    got = fk.task_flakiness(runs({"B": "sf", "A": "sss", "C": "ffu"}))
    expected = pd.DataFrame(
        {
            "task_id": ["A", "B", "C"],
            "n_runs": [3, 2, 2],
            "n_successes": [3, 1, 0],
            "success_rate": [1.0, 0.5, 0.0],
            "flaky": [False, True, False],
        }
    )
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_reads_a_store(tmp_path: Path) -> None:
    lines = []
    for i, outcome in enumerate(["success", "failure", "success"]):
        trace = f"t{i}"
        lines.append(
            {
                "type": "span", "trace_id": trace, "span_id": "root", "kind": "agent",
                "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:02Z",
                "status": "ok", "attributes": {"failkit.task_id": "k1"},
            }
        )  # fmt: skip
        lines.append({"type": "label", "trace_id": trace, "name": "outcome", "value": outcome})
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    store = fk.connect()
    store.ingest(path)
    got = fk.pass_hat_k(store, ks=[1, 2])
    np.testing.assert_allclose(got["pass_hat_k"], [2 / 3, 1 / 3])
    assert fk.task_flakiness(store)["flaky"].tolist() == [True]


# -- stage_reliability and compounding ---------------------------------------------------------


def _two_runs(tmp_path: Path) -> fk.TraceStore:
    """Run a: plan, a timed-out call retried to success, answer. Run b: plan, answer (wrong)."""
    rows = [
        span("a", "r", None, "agent", 0, duration_s=40),
        span("a", "p", "r", "llm", 0, duration_s=2, cost_usd=0.01),
        span("a", "t1", "r", "tool", 2, duration_s=30, status="error", tool_name="get_weather",
             error_type="TimeoutError", error_message="request timed out"),
        span("a", "t2", "r", "tool", 33, duration_s=1, tool_name="get_weather"),
        span("a", "f", "r", "llm", 34, duration_s=4, cost_usd=0.03),
        span("b", "r", None, "agent", 0, duration_s=6),
        span("b", "p", "r", "llm", 0, duration_s=2, cost_usd=0.01, confidence=0.9),
        span("b", "f", "r", "llm", 2, duration_s=4, cost_usd=0.03, confidence=0.2),
    ]  # fmt: skip
    return chain_store(tmp_path, rows, outcomes={"a": "success", "b": "failure"})


def test_stage_reliability_by_hand(tmp_path: Path) -> None:
    got = fk.stage_reliability(_two_runs(tmp_path)).set_index("stage")
    assert list(got.reset_index().columns) == STAGE_RELIABILITY_COLUMNS
    te = got.loc["tool_execution"]
    assert (te["n_attempts"], te["n_failures"], te["n_detectable"], te["n_transient"]) == (
        2,
        1,
        1,
        1,
    )
    assert te["n_recovered"] == 1 and te["latency_s_mean"] == pytest.approx(15.5)
    rs = got.loc["response_synthesis"]
    assert (rs["n_attempts"], rs["n_silent"], rs["silent_share"]) == (2, 1, 1.0)
    assert rs["success_rate"] == 0.5
    # Jeffreys: Beta(1.5, 1.5)
    assert rs["ci_low"] == pytest.approx(stats.beta.ppf(0.025, 1.5, 1.5))
    assert got.loc["planning", "n_failures"] == 0


def test_stage_reliability_by_tool_and_empty(tmp_path: Path) -> None:
    got = fk.stage_reliability(_two_runs(tmp_path), by="tool_name")
    assert got.columns[1] == "tool_name"
    assert set(got["tool_name"]) == {"get_weather", "(none)"}
    empty = fk.stage_reliability(pd.DataFrame({"trace_id": [], "span_id": []}), by="model")
    assert empty.empty and list(empty.columns)[:2] == ["stage", "model"]
    with pytest.raises(fk.FailkitError, match="by must be"):
        fk.stage_reliability(_two_runs(tmp_path), by="stage")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def synth_store() -> fk.TraceStore:
    world = synth.World(n_tasks=200, trials=5, seed=4)
    result = synth.generate(world, synth.AgentDesign(name="a"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = result.write(tmp, formats=("jsonl",))
        store = fk.connect()
        store.ingest(paths["jsonl"], progress=False)
    return store


def test_compounding_per_shape(synth_store: fk.TraceStore) -> None:
    got = fk.compounding(synth_store)
    assert list(got.columns) == COMPOUNDING_COLUMNS
    assert got["shape"].iloc[-1] == "all"
    shapes = got.iloc[:-1]
    assert shapes["n_runs"].sum() == got["n_runs"].iloc[-1] == 1000
    assert shapes["implied"].is_monotonic_decreasing
    # longer tasks are harder: they fail more than independent stages imply
    assert shapes["gap"].iloc[-1] < 0 < shapes["gap"].iloc[0]
    overall = got.iloc[-1]
    assert overall["ci_low"] <= overall["observed"] <= overall["ci_high"]


def test_compounding_gap_adds_up(synth_store: fk.TraceStore) -> None:
    got = fk.compounding_gap(synth_store)
    assert list(got.columns) == GAP_COLUMNS
    assert got["component"].tolist() == [
        "average run", "runs of different length", "harder tasks", "observed",
    ]  # fmt: skip
    total = got["success_rate"].iloc[0] + got["delta"].iloc[1:].sum()
    assert total == pytest.approx(got["success_rate"].iloc[-1])
    observed = fk.task_flakiness(synth_store)
    assert got["success_rate"].iloc[-1] == pytest.approx(
        observed["n_successes"].sum() / observed["n_runs"].sum()
    )


def test_stage_reliability_merges_partitions_of_runs() -> None:
    """Partial sums of three partitions of runs, summed, give the table of all runs."""
    from failkit.reliability import (
        RELIABILITY_SUMS,
        finalize_reliability,
        reliability_partials,
        stage_attempts,
    )

    store = fk.connect()
    store.ingest(REPO / "data" / "sample" / "traces.jsonl.gz")
    st = fk.steps(store)
    keys = ["stage", "tool_name"]
    part = pd.factorize(st["trace_id"])[0] % 3
    sums = pd.concat(
        [reliability_partials(stage_attempts(st.loc[part == i], keys), keys) for i in range(3)]
    )
    merged = sums.groupby(keys, as_index=False, sort=False)[RELIABILITY_SUMS].sum()
    frame = stage_attempts(st, keys)
    q = frame.groupby(keys)[["lat", "cost"]].quantile([0.5, 0.95]).unstack()
    q.columns = ["latency_s_p50", "latency_s_p95", "cost_usd_p50", "cost_usd_p95"]
    got = finalize_reliability(merged, q.reset_index(), keys=keys)
    expected = fk.stage_reliability(st, by="tool_name")
    assert len(got) == len(expected) > 5
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)
