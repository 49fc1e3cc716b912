"""pass^k and task flakiness from observed runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import failkit as fk
from failkit.reliability import FLAKINESS_COLUMNS, PASS_HAT_K_COLUMNS
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
