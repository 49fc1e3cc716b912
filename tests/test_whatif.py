"""What-if compute (levers → design → frames) and the what-if charts' specs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import failkit as fk
from failkit import charts, whatif
from failkit.design import Checkpoint, Routing


def four(p: float = 0.95, **kw: object) -> fk.Design:
    return fk.Design(
        name="base", stages=[fk.Stage(name=f"s{i}", p_success=p) for i in range(4)], **kw
    )


def tooled() -> fk.Design:
    """Every lever has something to act on; s0 has a measured toolset, s2 is not idempotent."""
    return fk.Design(
        name="base",
        task_spread=0.9,
        stages=[
            fk.Stage(name="s0", p_success=0.9, n_tools=16, p_detectable=0.4, cost_usd=0.01),
            fk.Stage(name="s1", p_success=0.92, parse_failure_share=0.5, latency_s=1.0),
            fk.Stage(name="s2", p_success=0.95, idempotent=False, p_side_effect_on_failure=0.3,
                     p_transient=0.8, latency_s=fk.Dist.lognormal(median=0.5, p95=2.0)),
            fk.Stage(name="s3", p_success=0.97, p_detectable=0.1, cost_usd=0.02),
        ],
    )  # fmt: skip


def test_waterfall_reproduces_the_article() -> None:
    """Four 95 % steps give 81.5 % end to end, five give 77.4 %."""
    wf = whatif.waterfall(four())
    assert list(wf.columns) == whatif.WATERFALL_COLUMNS
    np.testing.assert_allclose(wf["end"], [0.95, 0.9025, 0.857375, 0.81450625, 0.81450625])
    np.testing.assert_allclose(wf["start"], [1.0, 0.95, 0.9025, 0.857375, 0.0])
    np.testing.assert_allclose(wf["loss"], [0.05, 0.0475, 0.045125, 0.04286875, 0.18549375])
    assert wf["label"].tolist() == ["1. s0", "2. s1", "3. s2", "4. s3", "end to end"]
    assert wf["kind"].tolist() == ["stage"] * 4 + ["end_to_end"]
    five = whatif.waterfall(four().add_stage(fk.Stage(name="s4", p_success=0.95)))
    assert round(float(five["end"].iloc[-1]), 4) == 0.7738


def test_waterfall_ends_at_simulated_success_with_levers_and_task_spread() -> None:
    """The per-stage engine outcomes compound to exactly what simulate() reports."""
    d = (
        tooled()
        .with_retries("s2", 3)
        .with_checkpoint("s0", catch_rate=0.7)
        .with_confidence_routing(0.7, stages=["s3"])
        .with_structured_outputs("s1")
    )
    wf = whatif.waterfall(d)
    sim = fk.simulate(d, ci_draws=0)
    success = sim.loc[sim["metric"] == "success_rate", "value"].item()
    assert wf["end"].iloc[-1] == pytest.approx(success, abs=1e-12)
    # With task spread, on-track shares exceed the product of the stages' own rates.
    assert wf["end"].iloc[-1] > np.prod(wf["stage_success"].iloc[:-1])


def test_waterfall_of_several_designs_and_of_none() -> None:
    wf = whatif.waterfall([four(), four(0.9).with_name("worse")])
    assert wf["design"].tolist() == ["base"] * 5 + ["worse"] * 5
    empty = whatif.waterfall([])
    assert empty.empty and list(empty.columns) == whatif.WATERFALL_COLUMNS


def test_settings_of_reads_every_lever() -> None:
    d = tooled().with_checkpoint("s1", catch_rate=0.6).with_confidence_routing(0.4, stages=["s3"])
    s = whatif.settings_of(d)
    assert list(s) == ["s0", "s1", "s2", "s3"]
    assert list(s["s0"]) == [lv.name for lv in whatif.LEVERS]
    assert "n_tools" not in s["s1"] and s["s0"]["n_tools"] == 16
    assert s["s1"]["checkpoint"] is True and s["s1"]["catch_rate"] == 0.6
    assert s["s0"]["checkpoint"] is False and s["s0"]["catch_rate"] == Checkpoint().catch_rate
    assert s["s3"]["routing_threshold"] == 0.4 and s["s2"]["routing_threshold"] == 0.0


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"s2": {"max_attempts": 3}}, lambda d: d.with_retries("s2", 3)),
        ({"s1": {"checkpoint": True}}, lambda d: d.with_checkpoint("s1")),
        ({"s1": {"checkpoint": True, "catch_rate": 0.5}},
         lambda d: d.with_checkpoint("s1", catch_rate=0.5)),
        ({"s3": {"routing_threshold": 0.6}},
         lambda d: d.with_confidence_routing(0.6, stages=["s3"])),
        ({"s0": {"n_tools": 4}}, lambda d: d.with_tools(4, stage="s0")),
        ({"s1": {"structured_outputs": True}}, lambda d: d.with_structured_outputs("s1")),
        ({"s3": {"error_multiplier": 0.5}}, lambda d: d.with_model("s3", 0.5)),
        ({"s2": {"max_attempts": 1, "catch_rate": 0.2}}, lambda d: d),  # unchanged / no checkpoint
    ],
)  # fmt: skip
def test_apply_levers_uses_the_design_levers(changes: dict, expected: object) -> None:
    base = tooled()
    assert whatif.apply_levers(base, changes) == expected(base)  # type: ignore[operator]


def test_apply_levers_turns_things_off_and_keeps_what_it_cannot_express() -> None:
    rates = Routing(p_flag_given_fail=0.5, p_flag_given_ok=0.1)  # no threshold
    base = tooled().with_checkpoint("s1").with_stage("s2", routing=rates)
    off = whatif.apply_levers(base, {"s1": {"checkpoint": False}, "s3": {"error_multiplier": 1.5}})
    assert off.stage("s1").checkpoint is None and off.stage("s2").routing == rates
    assert off.name == "base + checkpoint(s1) + no checkpoint(s1) + model(s3, x1.5)"
    no_routing = whatif.apply_levers(base, {"s2": {"routing_threshold": 0.0}})
    assert no_routing == base  # reads as 0 already: untouched
    routed = whatif.apply_levers(
        base.with_confidence_routing(0.5), {"s0": {"routing_threshold": 0}}
    )
    assert routed.stage("s0").routing is None and routed.stage("s1").routing is not None
    moved = whatif.apply_levers(base, {"s1": {"catch_rate": 0.3}})
    assert moved.stage("s1").checkpoint == Checkpoint(catch_rate=0.3)


def test_apply_levers_errors_name_the_valid_options() -> None:
    with pytest.raises(fk.FailkitError, match="no stage 'nope'; stages: s0, s1, s2, s3"):
        whatif.apply_levers(tooled(), {"nope": {"max_attempts": 2}})
    with pytest.raises(fk.FailkitError, match=r"unknown lever\(s\) n_tools for stage 's1'"):
        whatif.apply_levers(tooled(), {"s1": {"n_tools": 2}})


def test_flatten_and_unflatten_split_at_the_last_separator() -> None:
    settings = {"a__b": {"max_attempts": 2}, "c": {"checkpoint": True}}
    flat = whatif.flatten(settings)
    assert flat == {"a__b__max_attempts": 2, "c__checkpoint": True}
    assert whatif.unflatten(flat) == settings
    with pytest.raises(fk.FailkitError, match="lever among"):
        whatif.unflatten({"c__speed": 1})
    with pytest.raises(fk.FailkitError, match="is not '<stage>__<lever>'"):
        whatif.unflatten({"checkpoint": 1})


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    base = four()
    return fk.simulate([base, base.with_retries("s1", 3).with_name("retry")], ci_draws=0)


def test_metrics_pass_k_and_slo_frames(sim: pd.DataFrame) -> None:
    m = whatif.metrics(sim)
    assert list(m.columns) == whatif.METRIC_COLUMNS and m["design"].tolist() == ["base", "retry"]
    assert m["success_rate"].iloc[0] == pytest.approx(0.95**4)
    pk = whatif.pass_k(sim)
    assert list(pk.columns) == whatif.PASS_K_COLUMNS and len(pk) == 16
    assert pk.loc[(pk["design"] == "base") & (pk["k"] == 2), "pass_hat_k"].item() == pytest.approx(
        0.95**8
    )
    slo = whatif.slo_attainment(sim, fk.SLO(target=0.5))
    assert list(slo.columns) == whatif.SLO_COLUMNS
    assert slo["target"].tolist() == [0.5, 0.5] and slo["meets_target"].tolist() == [True, True]


def test_pass_k_takes_observed_runs_and_rejects_other_frames() -> None:
    runs = pd.DataFrame({"task_id": ["a", "a", "b", "b"],
                         "outcome": ["success", "failure", "success", "success"]})  # fmt: skip
    pk = whatif.pass_k(fk.pass_hat_k(runs, ks=[1, 2]))
    assert pk["design"].tolist() == ["observed"] * 2 and pk["pass_hat_k"].tolist() == [0.75, 0.5]
    with pytest.raises(fk.FailkitError, match=r"failkit\.simulate"):
        whatif.metrics(runs)


def test_describe_slo() -> None:
    assert whatif.describe(fk.SLO()) == "success, <= 10 s, no human, <= $0.05; target 95%"
    loose = fk.SLO(success=False, max_seconds=None, no_human=False, max_cost_usd=None, target=0.5)
    assert whatif.describe(loose) == "any run; target 50%"


# -- charts -------------------------------------------------------------------------------------
def _data(spec: dict, layer: int | None = None) -> list[dict]:
    node = spec if layer is None else spec["layer"][layer]
    return spec["datasets"][node.get("data", spec.get("data"))["name"]]


def test_chart_waterfall_spec() -> None:
    wf = whatif.waterfall([four(), four(0.9).with_name("worse")])
    spec = charts.chart_waterfall(wf).to_dict()
    bars, text = spec["layer"]
    assert bars["mark"]["type"] == "bar" and text["mark"]["type"] == "text"
    enc = bars["encoding"]
    assert (enc["y"]["field"], enc["y2"]["field"], enc["x"]["field"]) == ("end", "start", "label")
    assert enc["xOffset"]["field"] == "design" and enc["color"]["scale"]["domain"] == [
        "base",
        "worse",
    ]
    assert enc["color"]["scale"]["range"][:2] == list(charts.DESIGN_COLORS[:2])
    rows = _data(spec)
    assert len(rows) == 10 and rows[4]["label"] == "end to end" and rows[4]["start"] == 0


def test_chart_tradeoff_pass_k_and_slo_specs(sim: pd.DataFrame) -> None:
    trade = charts.chart_tradeoff(sim).to_dict()
    enc = trade["layer"][0]["encoding"]
    assert (enc["x"]["field"], enc["y"]["field"], enc["size"]["field"]) == (
        "cost_usd_mean",
        "success_rate",
        "latency_s_p95",
    )
    assert [r["design"] for r in _data(trade)] == ["base", "retry"]
    assert trade["layer"][1]["encoding"]["text"]["field"] == "design"
    many = pd.concat([sim.assign(design=sim["design"] + str(i)) for i in range(3)])
    assert len(charts.chart_tradeoff(many).to_dict()["layer"]) == 1  # 6 names: legend only
    pk = charts.chart_pass_k(sim).to_dict()
    assert pk["mark"]["type"] == "line" and len(_data(pk)) == 16
    slo = charts.chart_slo(sim, slo=fk.SLO(target=0.8)).to_dict()
    assert slo["title"] == "SLO: success, <= 10 s, no human, <= $0.05; target 80%"
    assert _data(slo, 2) == [{"target": 0.8}]
    assert [r["design"] for r in _data(slo, 0)] == ["base", "retry"]
