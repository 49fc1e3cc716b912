"""simulate: the article's numbers, hand-computed cases, exact vs Monte Carlo, SLOs."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special, stats

import failkit as fk
from failkit.design import Checkpoint, Dist, Routing
from failkit.simulate import COLUMNS, SLO, SLO_COLUMNS, metric_names

RATES = ["success_rate", "autonomous_success_rate", "human_touch_rate", "duplicate_action_rate"]
Z95 = stats.norm.ppf(0.975)


def chain(n: int, p: float = 0.95, **kw: Any) -> fk.Design:
    return fk.Design(
        name=f"{n} stages", stages=[fk.Stage(name=f"s{i}", p_success=p, **kw) for i in range(n)]
    )


def values(df: pd.DataFrame) -> dict[str, float]:
    return dict(zip(df["metric"], df["value"], strict=True))


def se(df: pd.DataFrame) -> dict[str, float]:
    """Standard errors behind Monte Carlo's ±1.96 SE intervals."""
    return dict(zip(df["metric"], (df["ci_high"] - df["ci_low"]) / (2 * Z95), strict=True))


def exact(design: fk.Design, **kw: Any) -> dict[str, float]:
    return values(fk.simulate(design, **kw))


# -- the article ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "expected"), [(4, 0.81450625), (5, 0.7737809375)])
def test_article_numbers(n: int, expected: float) -> None:
    design = chain(n)
    got = exact(design)
    assert got["success_rate"] == pytest.approx(expected, abs=1e-12)
    assert round(got["success_rate"], 4) == round(expected, 4)
    assert got["pass_hat_2"] == pytest.approx(expected**2, abs=1e-12)
    mc = fk.simulate(design, method="monte_carlo", n=100_000, seed=0)
    assert abs(values(mc)["success_rate"] - expected) <= 3 * se(mc)["success_rate"]


def test_long_frame() -> None:
    df = fk.simulate([chain(2), chain(3)], ks=[1, 2])
    assert list(df.columns) == COLUMNS
    assert df["metric"].tolist() == metric_names([1, 2]) * 2
    assert df["design"].unique().tolist() == ["2 stages", "3 stages"]
    assert df[["ci_low", "ci_high"]].isna().all().all()  # no posteriors: no intervals
    empty = fk.simulate([])
    assert list(empty.columns) == COLUMNS
    assert empty.empty


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"method": "markov"}, "method must be"),
        ({"ks": [0, 1]}, "positive"),
        ({"n": 1}, "at least 2"),
        ({"ci_draws": -1}, "ci_draws"),
    ],
)
def test_bad_options(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(fk.FailkitError, match=message):
        fk.simulate(chain(2), **kw)


def test_design_names_must_differ() -> None:
    with pytest.raises(fk.FailkitError, match="with_name"):
        fk.simulate([chain(2), chain(2)])


# -- hand-computed cases -------------------------------------------------------------------------
@pytest.mark.parametrize("retry_permanent", [False, True])
def test_retries_transient_and_permanent_by_hand(retry_permanent: bool) -> None:
    s = fk.Stage(
        name="x", p_success=0.9, p_detectable=0.8, p_transient=0.5, p_recover=0.6,
        max_attempts=3, backoff_s=1.0, latency_s=2.0, cost_usd=0.01,
        retry_permanent=retry_permanent,
    )  # fmt: skip
    got = exact(fk.Design(stages=[s]))
    ok2, ok3 = 0.1 * 0.8 * 0.5 * 0.6, 0.1 * 0.8 * 0.5 * 0.4 * 0.6
    exhausted, permanent = 0.1 * 0.8 * 0.5 * 0.4**2, 0.1 * 0.8 * 0.5
    assert got["success_rate"] == pytest.approx(0.9 + ok2 + ok3, abs=1e-12)
    # Runs ending after 1, 2 or 3 attempts (latency 2, 2 + 2 + 1 and 3 * 2 + 1 + 2 seconds).
    third = ok3 + exhausted + (permanent if retry_permanent else 0.0)
    first = 1 - ok2 - third
    attempts = first + 2 * ok2 + 3 * third
    assert got["cost_usd_mean"] == pytest.approx(0.01 * attempts, abs=1e-12)
    assert got["latency_s_mean"] == pytest.approx(2 * first + 5 * ok2 + 9 * third, abs=1e-12)
    assert got["latency_s_p50"] == pytest.approx(2.0, abs=1e-9)
    p95 = 9.0 if first + ok2 < 0.95 else 2.0
    assert got["latency_s_p95"] == pytest.approx(p95, abs=1e-9)
    independent = exact(fk.Design(stages=[fk.Stage(name="x", p_success=0.9, max_attempts=3)]))
    assert independent["success_rate"] == pytest.approx(1 - 0.1**3, abs=1e-12)


def test_duplicates_by_hand() -> None:
    s = fk.Stage(
        name="pay", p_success=0.8, p_recover=0.5, max_attempts=2, idempotent=False,
        p_side_effect_on_failure=0.3,
    )  # fmt: skip
    got = exact(fk.Design(stages=[s]))
    # First attempt fails and acted (0.2 * 0.3); the retry acts when it succeeds or acts anyway.
    assert got["duplicate_action_rate"] == pytest.approx(0.2 * 0.3 * (0.5 + 0.5 * 0.3))
    assert exact(fk.Design(stages=[s.model_copy(update={"idempotent": True})]))[
        "duplicate_action_rate"
    ] == pytest.approx(0.0)


def test_checkpoint_by_hand() -> None:
    s = fk.Stage(name="x", p_success=0.8, p_detectable=0.5, cost_usd=0.01)
    d = fk.Design(stages=[s]).with_checkpoint(
        "x", catch_rate=0.75, human_seconds=30, human_cost_usd=0.2
    )
    got = exact(d)
    assert got["success_rate"] == pytest.approx(0.8 + 0.2 * 0.75)
    assert got["human_touch_rate"] == pytest.approx(0.2 * 0.75)
    assert got["autonomous_success_rate"] == pytest.approx(0.8)
    # a caught attempt is redone and reviewed again: two attempts, two reviews
    assert got["cost_usd_mean"] == pytest.approx(0.85 * 0.21 + 0.15 * 0.42)
    assert got["latency_s_mean"] == pytest.approx(30.0 * (0.85 + 0.15 * 2))


def test_checkpoint_reviews_every_attempt_and_catches_by_kind() -> None:
    s = fk.Stage(name="x", p_success=0.8, p_detectable=0.5, p_recover=1.0, max_attempts=2)
    d = fk.Design(stages=[s]).with_checkpoint(
        "x", catch_rate=0.9, catch_rate_detectable=0.0, human_seconds=30, human_cost_usd=0.2
    )
    got = exact(d)
    assert got["success_rate"] == pytest.approx(1 - 0.2 * 0.5 * 0.1)  # loud ones are retried
    assert got["human_touch_rate"] == pytest.approx(0.2 * 0.5 * 0.9)
    # reviews: one per attempt; the retry of a loud mistake and the redo of a caught one
    assert got["cost_usd_mean"] == pytest.approx(0.2 * (1 + 0.1 + 0.09))
    mc = values(fk.simulate(d, method="monte_carlo", n=200_000, seed=1))
    assert mc["cost_usd_mean"] == pytest.approx(got["cost_usd_mean"], rel=0.01)
    assert mc["success_rate"] == pytest.approx(got["success_rate"], abs=0.003)


def test_routing_by_hand() -> None:
    routing = Routing(p_flag_given_fail=0.6, p_flag_given_ok=0.1, human_seconds=60)
    s = fk.Stage(name="x", p_success=0.8, p_detectable=0.0, routing=routing)
    got = exact(fk.Design(stages=[s]))
    assert got["success_rate"] == pytest.approx(0.8 + 0.2 * 0.6)
    assert got["human_touch_rate"] == pytest.approx(0.8 * 0.1 + 0.2 * 0.6)
    assert got["autonomous_success_rate"] == pytest.approx(0.8 * 0.9)
    assert got["latency_s_mean"] == pytest.approx(60 * (0.8 * 0.1 + 0.2 * 0.6))


def test_failed_attempts_take_their_own_laws() -> None:
    s = fk.Stage(
        name="x", p_success=0.8, p_recover=0.5, max_attempts=2, latency_s=1.0,
        latency_s_failed=10.0, cost_usd=0.01, cost_usd_failed=0.0,
    )  # fmt: skip
    got = exact(fk.Design(stages=[s]))
    # ok at once; failed then ok; failed twice (the run ends)
    assert got["latency_s_mean"] == pytest.approx(0.8 * 1 + 0.1 * 11 + 0.1 * 20)
    assert got["cost_usd_mean"] == pytest.approx(0.8 * 0.01 + 0.1 * 0.01)
    assert got["latency_s_p95"] == pytest.approx(20.0, abs=1e-3)
    slo = SLO(success=False, max_seconds=11.0, no_human=False, max_cost_usd=None)
    assert exact(fk.Design(stages=[s]), slo=slo)["slo_attainment"] == pytest.approx(0.9)
    same = s.model_copy(update={"latency_s_failed": None, "cost_usd_failed": None})
    assert not same.splits_failed
    assert exact(fk.Design(stages=[same]))["latency_s_mean"] == pytest.approx(1.2)


def test_presence_scales_only_human_work() -> None:
    routing = Routing(p_flag_given_fail=0.6, p_flag_given_ok=0.1, human_seconds=60)
    s = fk.Stage(name="x", p_success=0.8, p_detectable=0.0, routing=routing, presence=0.5)
    got = exact(fk.Design(stages=[s]).with_checkpoint("x", catch_rate=0.0, human_seconds=30))
    assert got["success_rate"] == pytest.approx(0.8 + 0.2 * 0.6)
    assert got["human_touch_rate"] == pytest.approx(0.8 * 0.1 * 0.5 + 0.2 * 0.6)
    assert got["latency_s_mean"] == pytest.approx(30 * 0.5 + 60 * (0.8 * 0.1 * 0.5 + 0.2 * 0.6))


def test_a_detectable_failure_ends_the_run() -> None:
    d = fk.Design(
        stages=[
            fk.Stage(name="a", p_success=0.9, cost_usd=0.01, latency_s=1.0),
            fk.Stage(name="b", p_success=1.0, cost_usd=1.0, latency_s=3.0),
        ]
    )
    got = exact(d)
    assert got["cost_usd_mean"] == pytest.approx(0.01 + 0.9 * 1.0)
    assert got["latency_s_p50"] == pytest.approx(4.0, abs=1e-3)
    assert got["cost_usd_p95"] == pytest.approx(1.01, abs=1e-3)


def test_task_spread_pass_hat_k_by_quadrature() -> None:
    """pass^k = E[p_task^k] with logit(p_task) ~ N(c, spread^2), c keeping the mean at p."""
    p, spread = 0.7, 1.2
    d = fk.Design(stages=[fk.Stage(name="x", p_success=p)], task_spread=spread)

    def moment(c: float, k: int) -> float:
        f = lambda z: special.expit(c + spread * z) ** k * stats.norm.pdf(z)  # noqa: E731
        return integrate.quad(f, -12, 12, epsabs=1e-13, epsrel=1e-12)[0]

    c = optimize.brentq(lambda c: moment(c, 1) - p, -10, 10, xtol=1e-14)
    got = exact(d)
    assert got["success_rate"] == pytest.approx(p, abs=1e-9)
    for k in (2, 4, 8):
        assert got[f"pass_hat_{k}"] == pytest.approx(moment(c, k), abs=1e-8)
        assert got[f"pass_hat_{k}"] > p**k


def test_posterior_intervals() -> None:
    d = fk.Design(stages=[fk.Stage(name=f"s{i}", alpha=96, beta=6) for i in range(4)])
    df = fk.simulate(d, seed=1).set_index("metric")
    p = 96 / 102
    assert df.loc["success_rate", "value"] == pytest.approx(p**4)
    for metric in ("success_rate", "pass_hat_3", "slo_attainment"):
        lo, value, hi = df.loc[metric, ["ci_low", "value", "ci_high"]]
        assert lo < value < hi
    # Beta(96, 6): sd of p about 0.023, so p^4 has roughly a ±0.17 95 % interval.
    assert 0.1 < df.loc["success_rate", "ci_high"] - df.loc["success_rate", "ci_low"] < 0.3
    pd.testing.assert_frame_equal(fk.simulate(d, seed=1), fk.simulate(d, seed=1))


# -- SLOs on simulated designs -------------------------------------------------------------------
def test_slo_totals_on_the_limit_meet_it() -> None:
    d = chain(4, latency_s=2.5, cost_usd=0.0125)
    success = 0.95**4
    for slo, expected in [
        (SLO(max_seconds=10.0, max_cost_usd=0.05), success),
        (SLO(max_seconds=10.0, max_cost_usd=None), success),
        (SLO(max_seconds=9.99, max_cost_usd=None), 0.0),
        (SLO(max_seconds=10.0, max_cost_usd=0.0499), 0.0),
        (SLO(success=False, max_seconds=10.0, max_cost_usd=None), 1.0),
    ]:
        got = exact(d, slo=slo)
        assert got["slo_attainment"] == pytest.approx(expected, abs=1e-9), slo
        assert got["slo_met"] == float(expected >= 0.95)


def test_slo_no_human() -> None:
    d = chain(2, p=0.8).with_checkpoint("s0", catch_rate=1.0, human_seconds=0, human_cost_usd=0)
    assert exact(d, slo=SLO(no_human=False))["slo_attainment"] == pytest.approx(0.8)
    assert exact(d, slo=SLO(no_human=True))["slo_attainment"] == pytest.approx(0.8 * 0.8)


def test_smooth_design_quantiles_and_slo_match_monte_carlo() -> None:
    stages = [
        fk.Stage(
            name=f"s{i}",
            p_success=0.92,
            p_detectable=0.8,
            p_transient=0.7,
            max_attempts=2,
            backoff_s=0.5,
            latency_s=Dist.lognormal(median=1.0, p95=2.5),
            cost_usd=Dist.lognormal(median=0.002, p95=0.005, points=16),
        )
        for i in range(5)
    ]
    d = fk.Design(stages=stages).with_checkpoint("s2", catch_rate=0.5, human_seconds=4)
    slo = SLO(max_seconds=7.0, max_cost_usd=0.013, no_human=False)
    ex = exact(d, slo=slo)
    mc = fk.simulate(d, method="monte_carlo", n=200_000, slo=slo, seed=3)
    got, err = values(mc), se(mc)
    for metric in ("latency_s_p50", "latency_s_p95", "cost_usd_p50", "cost_usd_p95"):
        width = ex[metric.replace("_p50", "_mean").replace("_p95", "_mean")] / 1000
        assert abs(ex[metric] - got[metric]) <= 4 * err[metric] + width, metric
    assert abs(ex["slo_attainment"] - got["slo_attainment"]) <= 4 * err["slo_attainment"] + 1e-3


# -- SLOs on observed runs -----------------------------------------------------------------------
def test_slo_on_observed_runs() -> None:
    runs = pd.DataFrame(
        {
            "trace_id": list("abcdef"),
            "outcome": ["success", "success", "failure", "unknown", "success", "failure"],
            "duration_s": [3.0, 12.0, 1.0, 1.0, 2.0, 2.0],
            "cost_usd": [0.01, 0.01, 0.01, 0.01, np.nan, np.nan],
            "human_touched": [False, False, False, False, False, True],
        }
    )
    met = SLO().met(runs)
    assert met.tolist() == [True, False, False, pd.NA, pd.NA, False]
    assert met.index.tolist() == list("abcdef")
    summary = SLO(target=0.2).evaluate(runs)
    assert list(summary.columns) == SLO_COLUMNS
    row = summary.iloc[0]
    assert (row["n_runs"], row["n_judged"], row["n_met"]) == (6, 4, 1)
    assert row["slo_attainment"] == 0.25
    assert row["ci_low"] < 0.25 < row["ci_high"]
    assert bool(row["meets_target"])
    loose = SLO(max_cost_usd=None, no_human=False).met(runs)
    assert loose.tolist() == [True, False, False, pd.NA, True, False]


def test_slo_reads_human_spans_from_a_store(tmp_path: Path) -> None:
    def span(trace: str, span_id: str, kind: str) -> dict[str, Any]:
        return {
            "type": "span", "trace_id": trace, "span_id": span_id, "kind": kind,
            "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:02Z",
            "status": "ok", "cost_usd": 0.001,
        }  # fmt: skip

    lines = [span("t1", "r", "llm"), span("t2", "r", "llm"), span("t2", "h", "human")]
    lines += [{"type": "label", "trace_id": t, "name": "outcome", "value": "success"} for t in ("t1", "t2")]  # fmt: skip  # noqa: E501
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    store = fk.connect()
    store.ingest(path)
    met = SLO().met(store)
    assert met.to_dict() == {"t1": True, "t2": False}


# -- properties over random designs --------------------------------------------------------------
@st.composite
def stages(draw: st.DrawFn, name: str) -> fk.Stage:
    checkpoint = draw(
        st.none()
        | st.builds(Checkpoint, catch_rate=st.floats(0, 1), human_seconds=st.just(5.0),
                    human_cost_usd=st.just(0.05))
    )  # fmt: skip
    routing = draw(
        st.none()
        | st.builds(Routing, p_flag_given_fail=st.floats(0, 1), p_flag_given_ok=st.floats(0, 0.3),
                    human_seconds=st.just(3.0), human_cost_usd=st.just(0.02))
    )  # fmt: skip
    return fk.Stage(
        name=name,
        p_success=draw(st.floats(0.5, 0.99)),
        p_detectable=draw(st.floats(0, 1)),
        p_transient=draw(st.floats(0, 1)),
        p_recover=draw(st.none() | st.floats(0.2, 0.9)),
        max_attempts=draw(st.integers(1, 3)),
        backoff_s=draw(st.sampled_from([0.0, 0.5])),
        retry_permanent=draw(st.booleans()),
        idempotent=draw(st.booleans()),
        p_side_effect_on_failure=draw(st.floats(0, 0.5)),
        latency_s=draw(st.sampled_from([Dist.fixed(1.0), Dist.lognormal(median=1, p95=3)])),
        cost_usd=draw(st.sampled_from([0.001, 0.004])),
        latency_s_failed=draw(
            st.sampled_from([None, Dist.fixed(4.0), Dist.lognormal(median=3, p95=5)])
        ),
        cost_usd_failed=draw(st.sampled_from([None, 0.0])),
        parse_failure_share=draw(st.floats(0, 1)),
        checkpoint=checkpoint,
        routing=routing,
        presence=draw(st.sampled_from([1.0, 0.6])),
    )


@st.composite
def designs(draw: st.DrawFn) -> fk.Design:
    n = draw(st.integers(1, 4))
    return fk.Design(
        name="random",
        stages=[draw(stages(f"s{i}")) for i in range(n)],
        task_spread=draw(st.sampled_from([0.0, 0.0, 0.8])),
    )


FEW = settings(
    max_examples=12, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
SOME = settings(max_examples=40, derandomize=True, deadline=None)


@FEW
@given(designs())
def test_exact_and_monte_carlo_agree(design: fk.Design) -> None:
    n = 20_000
    ex = exact(design)
    mc = fk.simulate(design, method="monte_carlo", n=n, seed=7)
    got, err = values(mc), se(mc)
    for metric in RATES:
        p = ex[metric]
        floor = math.sqrt(max(p * (1 - p), 1e-12) / n)
        assert abs(p - got[metric]) <= 4 * max(err[metric], floor) + 1e-9, metric
    tol = 4 * err["cost_usd_mean"] + 1e-4 * ex["cost_usd_mean"]  # rare paths MC may not see
    assert abs(ex["cost_usd_mean"] - got["cost_usd_mean"]) <= tol


@SOME
@given(designs())
def test_exact_probabilities_are_probabilities(design: fk.Design) -> None:
    got = exact(design, ks=range(1, 9))
    probs = [got[m] for m in [*RATES, "slo_attainment"]] + [
        got[f"pass_hat_{k}"] for k in range(1, 9)
    ]
    assert all(-1e-12 <= p <= 1 + 1e-12 for p in probs)
    passes = [got[f"pass_hat_{k}"] for k in range(1, 9)]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(passes))


@SOME
@given(designs(), st.data())
def test_retries_never_lower_success(design: fk.Design, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(design.stage_names))
    more = design.with_retries(name, design.stage(name).max_attempts + 1)
    assert exact(more)["success_rate"] >= exact(design)["success_rate"] - 1e-12


@SOME
@given(designs(), st.data())
def test_a_checkpoint_that_catches_nothing_only_costs(
    design: fk.Design, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(design.stage_names))
    base = design.with_stage(name, checkpoint=None)
    checked = base.with_checkpoint(name, catch_rate=0.0, human_seconds=7, human_cost_usd=0.1)
    a, b = exact(base), exact(checked)
    changed = {m for m in a if m.startswith(("cost_usd", "latency_s", "slo_"))}
    for metric in set(a) - changed:
        assert b[metric] == pytest.approx(a[metric], abs=1e-12), metric
    # Every attempt of a run reaching the stage pays 7 s and 0.10 USD of review, nothing else.
    extra_cost = b["cost_usd_mean"] - a["cost_usd_mean"]
    assert 0 < extra_cost <= 0.1 * design.stage(name).max_attempts + 1e-12
    assert b["latency_s_mean"] - a["latency_s_mean"] == pytest.approx(70 * extra_cost)


@SOME
@given(designs(), st.data())
def test_structured_outputs_without_parse_failures_change_nothing(
    design: fk.Design, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(design.stage_names))
    base = design.with_stage(name, parse_failure_share=0.0)
    assert exact(base.with_structured_outputs(name)) == pytest.approx(exact(base), abs=1e-12)


def test_monte_carlo_is_seeded() -> None:
    d = chain(3, p=0.9, max_attempts=2)
    a = fk.simulate(d, method="monte_carlo", n=5_000, seed=1)
    pd.testing.assert_frame_equal(a, fk.simulate(d, method="monte_carlo", n=5_000, seed=1))
    assert not a.equals(fk.simulate(d, method="monte_carlo", n=5_000, seed=2))
