"""Counterfactuals against failkit.synth: a lever applied to the design estimated from A's runs
predicts what the agent built as B really does (issue 6: success within 1 point, uplift within
40 %, mean cost and latency within 5 %).

At 5 000 runs a design's success rate, and more so a small uplift, carries sampling noise of
about a point, so each check allows ``max(bar, 3 standard errors)``; the standard errors are
computed over tasks (A and B share their tasks, so the uplift's is that of paired differences).
``benchmarks/counterfactuals.py`` prints the same table at 20 000 runs, where the bar decides.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks import counterfactuals as cf
from failkit import synth
from failkit.schema import Outcome

WORLD = synth.World(n_tasks=1000, trials=5, seed=3)


@pytest.fixture(scope="module")
def baseline() -> cf.Baseline:
    return cf.estimate_a(WORLD)


def _per_task(truth: pd.DataFrame) -> pd.DataFrame:
    ok = truth["outcome"].eq(Outcome.SUCCESS.value).astype(float)
    frame = truth.assign(ok=ok)
    return frame.groupby("task_id")[["ok", "cost_usd", "duration_s"]].mean()


def _se(x: pd.Series) -> float:
    return float(x.std(ddof=1) / math.sqrt(len(x)))


@pytest.mark.parametrize("lever", list(cf.levers(WORLD)))
def test_lever_predicts_the_real_design(baseline: cf.Baseline, lever: str) -> None:
    b, change = cf.levers(WORLD, baseline.tool_slope)[lever]
    truth_b = cf.routed_truth(baseline.result) if b is None else synth.generate(WORLD, b).truth
    real_a = cf.Observed.of(baseline.result.truth)
    row = cf.compare(lever, baseline.design, change, real_a, cf.Observed.of(truth_b))
    a, bb = _per_task(baseline.result.truth), _per_task(truth_b)
    se_success = _se(bb["ok"])
    se_uplift = _se(bb["ok"] - a["ok"])
    assert abs(row["error_pp"]) <= max(1.0, 300 * se_success), row
    uplift_gap = abs(row["predicted_uplift"] - row["real_uplift"])
    assert uplift_gap <= max(0.4 * abs(row["real_uplift"]), 3 * se_uplift), row
    for metric, column in (("cost_error", "cost_usd"), ("latency_error", "duration_s")):
        rel_se = _se(bb[column]) / float(bb[column].mean())
        assert abs(row[metric]) <= max(0.05, 3 * rel_se), (metric, row)


def test_routed_truth_only_adds_fixes_and_human_time(baseline: cf.Baseline) -> None:
    a = baseline.result.truth
    b = cf.routed_truth(baseline.result)
    assert (b["outcome"].eq("success") >= a["outcome"].eq("success")).all()
    extra = (b["duration_s"] - a["duration_s"]) / cf.ROUTING_SECONDS
    np.testing.assert_allclose(extra, np.round(extra), atol=1e-9)
    assert ((b["cost_usd"] - a["cost_usd"]) >= 0).all()
