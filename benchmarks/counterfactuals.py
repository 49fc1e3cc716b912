"""Counterfactuals against failkit.synth: does a lever predict what the changed agent really does?

For each lever: estimate the design from runs generated under design A (``Design.from_store``),
apply the lever to predict design B, generate runs of the same World under B, and compare
success rate, mean cost and mean latency (the bar of issue 6: success within 1 point, uplift
within 40 %, cost and latency within 5 %). Run ``python benchmarks/counterfactuals.py``
(``--runs N``, default 20 000; ``--check`` exits 1 when a lever misses the bar).

``synth`` has no confidence-routing knob: routing's "real" B is A's runs with the rule applied
to their logged confidences — an LLM output that went through (right or silently wrong) with
confidence below the threshold goes to a human who fixes it, at ``human_seconds`` /
``human_cost_usd`` (synth's later failures do not depend on earlier mistakes, so A's runs are a
sample of B's).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

import failkit as fk
from failkit import synth
from failkit.estimate import fit_tool_slope, stage_names
from failkit.schema import Outcome
from failkit.synth.catalog import MODES
from failkit.synth.engine import NO_MODE, ROLE_CALL, ROLE_FINAL, ROLE_PLAN

BASE = synth.AgentDesign(name="A")
ROUTING_THRESHOLD = 0.5
ROUTING_SECONDS, ROUTING_USD = 60.0, 0.5
TOOL_SIZES = (24, 32)
"""Toolset sizes of the extra runs the tool curve is fitted from, next to A's 16 (the lever
asks for 8: an extrapolation)."""
TOOL_ARM_TASKS = 4000
"""Tasks (of ``trials`` runs) behind each extra toolset size: a slope per doubling is a small
difference of failure rates, and tasks of different difficulty make them noisy."""
TASK_SPREAD = "fit"
"""The estimate's task spread: fitted to pass^k, ``from_store``'s default. Failures of one run
travel together (hard tasks fail at several stages), which is what removing retries tests:
with a spread of 0 the failures that retries rescue are predicted to cost 1.4 points more
success than they do (their runs would often have failed elsewhere)."""
COLUMNS = [
    "lever", "predicted", "real", "error_pp", "predicted_uplift", "real_uplift",
    "uplift_error", "cost_error", "latency_error", "meets_bar",
]  # fmt: skip


@dataclass(frozen=True)
class Observed:
    """What runs did: success rate, mean cost, mean latency."""

    success_rate: float
    cost_usd_mean: float
    latency_s_mean: float

    @classmethod
    def of(cls, truth: pd.DataFrame) -> Observed:
        """From a ground-truth frame (``outcome``, ``cost_usd``, ``duration_s``)."""
        return cls(
            float(truth["outcome"].eq(Outcome.SUCCESS.value).mean()),
            float(truth["cost_usd"].mean()),
            float(truth["duration_s"].mean()),
        )

    @classmethod
    def predicted(cls, design: fk.Design) -> Observed:
        """What the exact method predicts for ``design``."""
        r = fk.simulate(design, ci_draws=0, ks=[1]).set_index("metric")["value"]
        return cls(float(r["success_rate"]), float(r["cost_usd_mean"]), float(r["latency_s_mean"]))


def human_mean_seconds(world: synth.World) -> float:
    """Mean time of a synth human review (lognormal around ``world.human_seconds``)."""
    return world.human_seconds * math.exp(0.5**2 / 2)


def _each(design: fk.Design, stages: list[str], change: Callable[..., fk.Design]) -> fk.Design:
    for base in stages:
        for name in stage_names(design, base):
            design = change(design, name)
    return design


def _checkpoint(world: synth.World) -> Callable[[fk.Design], fk.Design]:
    """Humans review every tool call: they catch wrong calls, not misspelt tool names.

    synth's proposed call carries ``tool_selection`` and ``parameter_extraction``: the review's
    time goes on ``tool_selection`` (every attempt), which catches silent mistakes (a wrong tool
    or value; failkit attributes both to tool selection) but not unknown tool names, and
    ``parameter_extraction`` catches invalid arguments before they raise.
    """
    seconds = human_mean_seconds(world)
    usd = seconds / 3600 * world.human_usd_per_hour
    catch = BASE.catch_rate

    def lever(d: fk.Design) -> fk.Design:
        for name in stage_names(d, "tool_selection"):
            d = d.with_checkpoint(
                name,
                catch_rate=catch,
                catch_rate_detectable=0.0,
                human_seconds=seconds,
                human_cost_usd=usd,
            )
        for name in stage_names(d, "parameter_extraction"):
            d = d.with_checkpoint(name, catch_rate=catch, human_seconds=0.0, human_cost_usd=0.0)
        return d

    return lever


def _routing(d: fk.Design) -> fk.Design:
    """Route low-confidence LLM outputs (every round of the LLM stages)."""
    names = [
        n for b in ("planning", "tool_selection", "response_synthesis") for n in stage_names(d, b)
    ]
    return d.with_confidence_routing(
        ROUTING_THRESHOLD, stages=names, human_seconds=ROUTING_SECONDS, human_cost_usd=ROUTING_USD
    )


_LLM_STAGES = ["planning", "tool_selection", "parameter_extraction", "response_synthesis"]


def levers(
    world: synth.World, tool_slope: float | None = None
) -> dict[str, tuple[synth.AgentDesign | None, Callable]]:
    """Per lever: the synth design B (None: routing, derived from A) and the design lever.

    ``tool_slope``: the fitted tool curve (:attr:`Baseline.tool_slope`).
    """
    every = list(synth.STAGES)
    return {
        "no retries": (
            BASE.model_copy(update={"max_attempts": 1}),
            lambda d: _each(d, every, lambda x, n: x.with_retries(n, 1)),
        ),
        "4 attempts": (
            BASE.model_copy(update={"max_attempts": 4}),
            lambda d: _each(
                d, every, lambda x, n: x.with_retries(n, 4, backoff_s=x.stage(n).backoff_s)
            ),
        ),
        "checkpoint every call": (
            BASE.model_copy(
                update={"checkpoint_tools": tuple(t.name for t in synth.toolset(BASE.n_tools))}
            ),
            _checkpoint(world),
        ),
        f"routing <{ROUTING_THRESHOLD:g}": (None, _routing),
        "8 tools": (
            BASE.model_copy(update={"n_tools": 8}),
            lambda d: d.with_tools(8, slope=tool_slope),
        ),
        "structured outputs": (
            BASE.model_copy(update={"structured_outputs": True}),
            lambda d: _each(d, every, lambda x, n: x.with_structured_outputs(n)),
        ),
        "model x0.5": (
            BASE.model_copy(update={"model_quality": dict.fromkeys(_LLM_STAGES, 0.5)}),
            lambda d: _each(d, _LLM_STAGES, lambda x, n: x.with_model(n, 0.5)),
        ),
    }


def routed_truth(result: synth.SynthResult) -> pd.DataFrame:
    """A's ground truth as it would be with confidence routing (see the module docstring)."""
    spans = result.simulation.spans
    silent_modes = np.array([not m.detectable for m in MODES])
    mode = spans["mode"]
    llm = np.isin(spans["role"], [ROLE_PLAN, ROLE_CALL, ROLE_FINAL])
    through = llm & ((mode == NO_MODE) | silent_modes[np.maximum(mode, 0)] & (mode >= 0))
    flagged = through & (spans["confidence"] < ROUTING_THRESHOLD)
    wrong = through & (mode != NO_MODE)
    n = result.world.n_runs
    n_flag = np.bincount(spans["run"][flagged], minlength=n)
    missed = np.bincount(spans["run"][wrong & ~flagged], minlength=n)
    sim = result.simulation
    truth = result.truth.copy()
    ok = sim.completed & (missed == 0)
    truth["outcome"] = np.where(ok, Outcome.SUCCESS.value, Outcome.FAILURE.value)
    truth["cost_usd"] = truth["cost_usd"] + n_flag * ROUTING_USD
    truth["duration_s"] = truth["duration_s"] + n_flag * ROUTING_SECONDS
    return truth


def compare(
    lever: str, design_a: fk.Design, change: Callable, real_a: Observed, real_b: Observed
) -> dict[str, object]:
    """One row of the table: predicted vs real for one lever."""
    pred_a, pred_b = Observed.predicted(design_a), Observed.predicted(change(design_a))
    up_p = pred_b.success_rate - pred_a.success_rate
    up_r = real_b.success_rate - real_a.success_rate
    row = {
        "lever": lever,
        "predicted": pred_b.success_rate,
        "real": real_b.success_rate,
        "error_pp": 100 * (pred_b.success_rate - real_b.success_rate),
        "predicted_uplift": up_p,
        "real_uplift": up_r,
        "uplift_error": (up_p - up_r) / abs(up_r) if up_r else math.nan,
        "cost_error": pred_b.cost_usd_mean / real_b.cost_usd_mean - 1,
        "latency_error": pred_b.latency_s_mean / real_b.latency_s_mean - 1,
    }
    row["meets_bar"] = bool(
        abs(row["error_pp"]) <= 1.0
        and abs(row["uplift_error"]) <= 0.4
        and abs(row["cost_error"]) <= 0.05
        and abs(row["latency_error"]) <= 0.05
    )
    return row


@dataclass(frozen=True)
class Baseline:
    """Runs of design A, what was estimated from them, and the tool curve fitted with them."""

    result: synth.SynthResult
    design: fk.Design
    tool_slope: float


def _estimate(result: synth.SynthResult, name: str, task_spread: float | str) -> fk.Design:
    """Load a synth result's JSONL into a store and estimate its design."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = result.write(tmp, formats=("jsonl",))
        store = fk.connect()
        store.ingest(paths["jsonl"], progress=False)
    return fk.Design.from_store(store, name=name, task_spread=task_spread)


def estimate_a(world: synth.World, *, task_spread: float | str = TASK_SPREAD) -> Baseline:
    """Generate A and estimate its design; fit the tool curve from A and :data:`TOOL_SIZES`.

    The runs at the other toolset sizes see other tasks of the same population (world seed
    ``seed + size``), as an A/B arm would.
    """
    result = synth.generate(world, BASE)
    design = _estimate(result, "A", task_spread)
    others = [
        _estimate(
            synth.generate(
                world.model_copy(update={"seed": world.seed + n, "n_tasks": TOOL_ARM_TASKS}),
                BASE.model_copy(update={"n_tools": n, "name": f"A{n}"}),
            ),
            f"A{n}",
            task_spread,
        )
        for n in TOOL_SIZES
    ]
    return Baseline(result, design, fit_tool_slope([design, *others], at=BASE.n_tools))


def table(
    world: synth.World, names: list[str] | None = None, *, base: Baseline | None = None
) -> pd.DataFrame:
    """The lever table for ``world`` (all levers, or ``names``; ``base``: A, estimated here
    when not given)."""
    base = base or estimate_a(world)
    real_a = Observed.of(base.result.truth)
    rows = []
    for lever, (b, change) in levers(world, base.tool_slope).items():
        if names is not None and lever not in names:
            continue
        truth_b = routed_truth(base.result) if b is None else synth.generate(world, b).truth
        rows.append(compare(lever, base.design, change, real_a, Observed.of(truth_b)))
    return pd.DataFrame(rows, columns=COLUMNS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    world = synth.World(n_tasks=args.runs // 5, trials=5, seed=args.seed)
    base = estimate_a(world)
    out = table(world, base=base)
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print(f"{world.n_runs} runs per design, world seed {args.seed}")
        sizes = "/".join(str(n) for n in (BASE.n_tools, *TOOL_SIZES))
        print(f"tool curve fitted at {sizes} tools: {base.tool_slope:+.3f} per doubling at 16")
        print(out.to_string(index=False))
    return 1 if args.check and not out["meets_bar"].all() else 0


if __name__ == "__main__":
    sys.exit(main())
