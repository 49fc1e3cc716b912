"""Design.from_store: today's design estimated from synthetic runs, and the backtest."""

from __future__ import annotations

import math
import tempfile

import numpy as np
import pandas as pd
import pytest

import failkit as fk
from failkit import synth
from failkit.estimate import (
    BACKTEST_COLUMNS,
    OVERHEAD,
    fit_tool_slope,
    round_of,
    stage_names,
)
from failkit.synth.engine import NO_MODE, ROLE_CALL, ROLE_FINAL, ROLE_PLAN


@pytest.fixture(scope="module")
def runs() -> tuple[synth.SynthResult, fk.TraceStore]:
    world = synth.World(n_tasks=300, trials=5, seed=2)
    result = synth.generate(world, synth.AgentDesign(name="a"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = result.write(tmp, formats=("jsonl",))
        store = fk.connect()
        store.ingest(paths["jsonl"])
    return result, store


@pytest.fixture(scope="module")
def design(runs: tuple[synth.SynthResult, fk.TraceStore]) -> fk.Design:
    return fk.Design.from_store(runs[1], task_spread=0.0)


def test_layout_rounds_and_names(design: fk.Design) -> None:
    names = design.stage_names
    assert names[0] == "planning" and names[-2:] == ["response_synthesis", OVERHEAD]
    assert stage_names(design, "tool_execution")[:2] == ["tool_execution", "tool_execution_2"]
    assert [round_of(n) for n in ("planning", "tool_selection", "tool_execution_3")] == [0, 1, 3]
    assert design.name == "observed"


def test_estimates_what_synth_built(design: fk.Design) -> None:
    ts = design.stage("tool_selection")
    assert ts.n_tools == 16  # distinct tools executed
    assert ts.calibration is not None
    assert ts.max_attempts == 2 and design.stage("tool_execution").max_attempts == 3
    te = design.stage("tool_execution")
    assert not te.idempotent and 0.2 < te.p_side_effect_on_failure < 0.5
    assert 0.5 < te.p_recover < 0.9 and te.backoff_s == pytest.approx(0.5, abs=0.1)
    assert design.stage("planning").p_transient == 0.0  # context length: permanent
    assert design.stage("response_synthesis").parse_failure_share > 0.0
    assert design.stage("tool_selection").parse_failure_share == 0.0


def test_failed_attempts_have_their_own_laws(design: fk.Design) -> None:
    te = design.stage("tool_execution")
    assert te.latency_s_failed is not None and te.cost_usd_failed is not None
    # timeouts last the 30 s timeout: failed tool calls are slower on average than good ones
    assert te.latency_s_failed.mean > 3 * te.latency_s.mean
    assert max(te.latency_s_failed.values) > 25.0
    assert design.stage(OVERHEAD).latency_s_failed is None  # never fails


def test_reproduces_the_runs_it_was_estimated_from(
    runs: tuple[synth.SynthResult, fk.TraceStore], design: fk.Design
) -> None:
    truth = runs[0].truth
    got = fk.simulate(design, ci_draws=0, ks=[1]).set_index("metric")["value"]
    assert got["success_rate"] == pytest.approx(truth["outcome"].eq("success").mean(), abs=0.003)
    assert got["cost_usd_mean"] == pytest.approx(truth["cost_usd"].mean(), rel=0.01)
    assert got["latency_s_mean"] == pytest.approx(truth["duration_s"].mean(), rel=0.02)


def test_task_spread_fits_pass_hat_k(runs: tuple[synth.SynthResult, fk.TraceStore]) -> None:
    design = fk.Design.from_store(runs[1])
    assert design.task_spread > 0.3
    got = fk.simulate(design, ci_draws=0, ks=[2, 4]).set_index("metric")["value"]
    observed = fk.pass_hat_k(runs[1], ks=[2, 4])["pass_hat_k"].to_numpy()
    assert got["pass_hat_2"] == pytest.approx(observed[0], abs=0.02)
    assert got["pass_hat_4"] == pytest.approx(observed[1], abs=0.03)


def test_backtest_holds_out_half_the_tasks(runs: tuple[synth.SynthResult, fk.TraceStore]) -> None:
    got = fk.backtest(runs[1], seed=0)
    assert list(got.columns) == BACKTEST_COLUMNS
    assert got["metric"].tolist() == ["success_rate", "cost_usd_mean", "latency_s_mean"]
    assert got["within"].all(), got
    assert (got["pred_low"] < got["predicted"]).all() and (
        got["predicted"] < got["pred_high"]
    ).all()
    assert 600 < got["n_runs"].iloc[0] < 900


def test_round_shares(runs: tuple[synth.SynthResult, fk.TraceStore], design: fk.Design) -> None:
    got = fk.round_shares(runs[1])
    assert got["round"].tolist() == [1, 2, 3, 4]
    assert got["presence"].iloc[0] == 1.0
    assert got["presence"].is_monotonic_decreasing
    on_stages = [design.stage(n).presence for n in stage_names(design, "tool_selection")]
    assert on_stages == pytest.approx(got["presence"].tolist())
    assert design.stage("planning").presence == 1.0


def test_calibration_is_the_confidence_of_right_and_wrong_outputs(
    runs: tuple[synth.SynthResult, fk.TraceStore], design: fk.Design
) -> None:
    spans = runs[0].simulation.spans
    llm = np.isin(spans["role"], [ROLE_PLAN, ROLE_CALL, ROLE_FINAL])
    conf, right = spans["confidence"], spans["mode"] == NO_MODE
    cal = design.stage("tool_selection").calibration
    assert cal is not None and cal.ok_cdf is not None
    assert cal.p_flag_given_ok(0.5) == pytest.approx((conf[llm & right] < 0.5).mean(), abs=0.01)
    assert cal.p_flag_given_fail(0.5) == pytest.approx((conf[llm & ~right] < 0.5).mean(), abs=0.08)


def test_fit_tool_slope_recovers_a_line_in_log_size() -> None:
    def at(n: int) -> fk.Design:
        fails = 1000 * (0.02 + 0.01 * math.log2(n))  # failures of 1000 runs at risk
        s = fk.Stage(
            name="tool_selection",
            p_success=1 - fails / 1000,
            alpha=1000 - fails + 0.5,
            beta=fails + 0.5,
            n_tools=n,
        )
        return fk.Design(name=f"n{n}", stages=[s])

    designs = [at(16), at(8), at(32)]
    assert fit_tool_slope(designs) == pytest.approx(0.01 / (0.02 + 0.04), rel=1e-9)
    assert fit_tool_slope(designs, at=8) == pytest.approx(0.01 / (0.02 + 0.03), rel=1e-9)
    with pytest.raises(fk.FailkitError, match="two toolset sizes"):
        fit_tool_slope([at(16), at(16)])
    with pytest.raises(fk.FailkitError, match="no n_tools"):
        fit_tool_slope([fk.Design(stages=[fk.Stage(name="tool_selection", p_success=0.9)])])


def test_no_working_steps_is_an_error() -> None:
    with pytest.raises(fk.FailkitError, match="no working steps"):
        fk.Design.from_store(fk.connect())


def test_from_steps_frame_matches_store(
    runs: tuple[synth.SynthResult, fk.TraceStore], design: fk.Design
) -> None:
    from failkit.estimate import estimate_design

    store = runs[1]
    again = estimate_design(fk.steps(store), store.traces_df(), task_spread=0.0)
    pd.testing.assert_series_equal(
        pd.Series([s.p_success for s in again.stages]),
        pd.Series([s.p_success for s in design.stages]),
    )


def test_runs_in_partitions_give_the_same_design(
    runs: tuple[synth.SynthResult, fk.TraceStore],
) -> None:
    """Partial rows of 7 partitions of runs merge into the one-partition design (up to the
    order of float sums), the spread fit included."""
    from failkit.estimate import confidences, estimate_design

    store = runs[1]
    st, traces, conf = fk.steps(store), store.traces_df(), confidences(store)
    whole = estimate_design(st, traces, confidence=conf)
    parts = estimate_design(st, traces, confidence=conf, runs_per_part=len(traces) // 7 + 1)
    assert whole.task_spread > 0 and whole.stage("tool_selection").calibration is not None
    a, b = whole.model_dump(), parts.model_dump()
    assert a.keys() == b.keys()
    flat_a, flat_b = pd.json_normalize(a["stages"]), pd.json_normalize(b["stages"])
    pd.testing.assert_frame_equal(flat_a, flat_b, check_exact=False, rtol=1e-9)
    assert parts.task_spread == pytest.approx(whole.task_spread, rel=1e-9)
