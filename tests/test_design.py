"""Design, Stage, Dist: validation, lever semantics, copies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats

import failkit as fk
from failkit.design import Calibration, Checkpoint, Dist, tool_error_curve, tool_error_ratio


def stage(name: str, **kw: object) -> fk.Stage:
    return fk.Stage(name=name, **{"p_success": 0.9, **kw})  # type: ignore[arg-type]


@pytest.fixture
def design() -> fk.Design:
    return fk.Design(
        name="base",
        stages=[
            stage("tool_selection", n_tools=16),
            stage("parameter_extraction", parse_failure_share=0.4),
            stage("tool_execution", idempotent=False, p_side_effect_on_failure=0.2),
        ],
    )


def test_stage_from_posterior_takes_its_mean() -> None:
    s = fk.Stage(name="x", alpha=9, beta=3)
    assert s.p_success == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({}, "give p_success"),
        ({"alpha": 2.0}, "both alpha and beta"),
        ({"p_success": 1.5}, "less than or equal to 1"),
        ({"p_success": 0.9, "n_tools_measured": 4}, "needs n_tools"),
        ({"p_success": 0.9, "max_attempts": 0}, "greater than or equal to 1"),
    ],
)
def test_stage_rejects_bad_input(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        fk.Stage(name="x", **kw)  # type: ignore[arg-type]


def test_stage_takes_numbers_as_fixed_distributions() -> None:
    s = stage("x", latency_s=1.5, cost_usd=0.002)
    assert s.latency_s == Dist.fixed(1.5)
    assert s.cost_usd.mean == 0.002


def test_dist_validation() -> None:
    with pytest.raises(ValidationError, match="sum to 1"):
        Dist(values=(1.0, 2.0), probs=(0.5, 0.6))
    with pytest.raises(ValidationError, match=">= 0"):
        Dist(values=(-1.0,), probs=(1.0,))
    with pytest.raises(ValidationError, match="differ in length"):
        Dist(values=(1.0, 2.0), probs=(1.0,))


def test_lognormal_keeps_the_mean_exactly() -> None:
    d = Dist.lognormal(median=2.0, p95=6.0, points=32)
    sigma = math.log(3.0) / stats.norm.ppf(0.95)
    assert d.mean == pytest.approx(2.0 * math.exp(sigma**2 / 2), rel=1e-12)
    assert len(d.values) == 32
    assert np.all(np.diff(d.values) > 0)
    with pytest.raises(fk.FailkitError, match="median <= p95"):
        Dist.lognormal(median=2.0, p95=1.0)


def test_from_sample_keeps_the_mean() -> None:
    x = np.random.default_rng(0).exponential(2.0, 10_001)
    d = Dist.from_sample(x, points=64)
    assert len(d.values) == 64
    assert d.mean == pytest.approx(x.mean(), rel=1e-12)
    small = Dist.from_sample([1.0, 1.0, 3.0, np.nan])
    assert small == Dist(values=(1.0, 3.0), probs=(2 / 3, 1 / 3))
    with pytest.raises(fk.FailkitError, match="empty"):
        Dist.from_sample([np.nan])


def test_design_rejects_repeated_stage_names() -> None:
    with pytest.raises(ValidationError, match="repeated: a"):
        fk.Design(stages=[stage("a"), stage("a")])


def test_unknown_stage_names_the_valid_ones(design: fk.Design) -> None:
    with pytest.raises(fk.FailkitError, match="tool_selection, parameter_extraction"):
        design.with_retries("tool_exec", max_attempts=3)


def test_levers_return_changed_copies(design: fk.Design) -> None:
    d = design.with_retries("tool_execution", max_attempts=3, backoff_s=0.5)
    assert d.stage("tool_execution").max_attempts == 3
    assert d.stage("tool_execution").backoff_s == 0.5
    assert design.stage("tool_execution").max_attempts == 1
    assert d.name == "base + retries(tool_execution, 3)"

    d = design.with_checkpoint("tool_execution", catch_rate=0.5, human_seconds=10)
    assert d.stage("tool_execution").checkpoint == Checkpoint(catch_rate=0.5, human_seconds=10)

    d = design.with_model("parameter_extraction", error_multiplier=0.5)
    assert d.stage("parameter_extraction").p_effective == pytest.approx(0.95)
    d = d.with_model("parameter_extraction", error_multiplier=0.5)  # sets, does not compound
    assert d.stage("parameter_extraction").p_effective == pytest.approx(0.95)

    d = design.with_structured_outputs("parameter_extraction")
    assert d.stage("parameter_extraction").p_effective == pytest.approx(1 - 0.1 * 0.6)


def test_with_tools_follows_the_curve(design: fk.Design) -> None:
    d = design.with_tools(4)
    ratio = tool_error_curve(4) / tool_error_curve(16)
    assert ratio == pytest.approx((1 + 0.5 * 2) / (1 + 0.5 * 4))
    assert d.stage("tool_selection").p_effective == pytest.approx(1 - 0.1 * ratio)
    assert d.stage("tool_selection").n_tools_measured == 16
    assert design.with_tools(16).stage("tool_selection").p_effective == pytest.approx(0.9)
    with pytest.raises(fk.FailkitError, match="no stage has n_tools"):
        design.remove_stage("tool_selection").with_tools(4)
    with pytest.raises(fk.FailkitError, match="at least 1"):
        tool_error_curve(0)


def test_with_tools_follows_a_fitted_slope(design: fk.Design) -> None:
    assert tool_error_ratio(8, 16, slope=0.5) == pytest.approx(0.5)
    assert tool_error_ratio(64, 16, slope=0.25) == pytest.approx(1.5)
    assert tool_error_ratio(2, 16, slope=0.5) == 0.0  # a failure rate is never negative
    assert tool_error_ratio(4, 16) == pytest.approx(tool_error_curve(4) / tool_error_curve(16))
    d = design.with_tools(8, slope=0.5)
    assert d.stage("tool_selection").tool_slope == 0.5
    assert d.stage("tool_selection").p_effective == pytest.approx(1 - 0.1 * 0.5)
    assert d.with_tools(32).stage("tool_selection").p_effective == pytest.approx(1 - 0.1 * 1.5)
    with pytest.raises(fk.FailkitError, match="at least 1"):
        tool_error_ratio(0, 16, slope=0.5)


def test_confidence_routing_uses_the_calibration(design: fk.Design) -> None:
    cal = Calibration(ok_alpha=8, ok_beta=2, fail_alpha=2, fail_beta=2)
    d = design.with_confidence_routing(0.5, stages=["tool_execution"], calibration=cal)
    r = d.stage("tool_execution").routing
    assert r is not None
    assert r.p_flag_given_fail == pytest.approx(0.5)
    assert r.p_flag_given_ok == pytest.approx(stats.beta.cdf(0.5, 8, 2))
    assert d.stage("tool_selection").routing is None
    everywhere = design.with_confidence_routing(0.7)
    assert all(s.routing is not None for s in everywhere.stages)
    with pytest.raises(fk.FailkitError, match=r"\[0, 1\]"):
        design.with_confidence_routing(1.5)


def test_empirical_calibration_is_the_share_below_the_threshold() -> None:
    rng = np.random.default_rng(0)
    ok = np.round(0.7 * rng.beta(9, 2, 5000) + 0.3 * rng.random(5000), 3)
    wrong = np.round(rng.beta(2, 4, 800), 3)
    cal = Calibration.from_samples(ok, wrong)
    for t in (0.0, 0.25, 0.5, 0.73, 1.0):
        assert cal.p_flag_given_ok(t) == pytest.approx((ok < t).mean(), abs=1e-12)
        assert cal.p_flag_given_fail(t) == pytest.approx((wrong < t).mean(), abs=1e-12)
    assert 0 < cal.p_flag_given_ok(0.505) - cal.p_flag_given_ok(0.5) < 0.01  # interpolated
    assert Calibration(ok_cdf=cal.ok_cdf).p_flag_given_fail(0.5) == pytest.approx(
        stats.beta.cdf(0.5, 5, 3)
    )
    with pytest.raises(ValidationError):
        Calibration(ok_cdf=(0.0, 1.0))


def test_add_and_remove_stages(design: fk.Design) -> None:
    d = design.add_stage(stage("planning"), before="tool_selection")
    assert d.stage_names[0] == "planning"
    d = design.add_stage(stage("retrieval"), after="tool_selection")
    assert d.stage_names[1] == "retrieval"
    assert design.add_stage(stage("answer")).stage_names[-1] == "answer"
    with pytest.raises(ValidationError, match="repeated"):
        design.add_stage(stage("tool_selection"))
    assert design.remove_stage("tool_selection").stage_names == [
        "parameter_extraction",
        "tool_execution",
    ]
    with pytest.raises(fk.FailkitError, match="at least one stage"):
        fk.Design(stages=[stage("a")]).remove_stage("a")


def test_design_is_immutable(design: fk.Design) -> None:
    with pytest.raises(ValidationError):
        design.name = "other"  # type: ignore[misc]
