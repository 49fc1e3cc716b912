"""Benchmark failkit.simulate: 1M Monte Carlo runs of a 10-stage design, and exact evaluation.

Targets (issue 6): Monte Carlo 1M runs <= 1 s; exact evaluation <= 10 ms (what keeps the what-if
widgets instant). Run ``python benchmarks/simulate.py`` (add ``--check`` to exit 1 when a
target is missed). Timings are the median of repeated runs; the load average is printed because
a busy machine slows everything down.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

import failkit as fk
from failkit.design import Dist

MC_RUNS = 1_000_000
TARGETS = {"monte_carlo_1m_s": 1.0, "exact_s": 0.010}


def ten_stages(*, spread: float = 0.0, posterior: bool = False) -> fk.Design:
    """A realistic 10-stage agent: spread latencies and costs, retries, one checkpoint."""
    names = [
        "planning", "retrieval", "tool_selection", "parameter_extraction", "tool_execution",
        "tool_selection_2", "parameter_extraction_2", "tool_execution_2", "handoff",
        "response_synthesis",
    ]  # fmt: skip
    stages = []
    for i, name in enumerate(names):
        rate = {"alpha": 190.0 + i, "beta": 8.0} if posterior else {"p_success": 0.96}
        llm = "execution" not in name
        stages.append(
            fk.Stage(
                name=name,
                **rate,
                p_detectable=0.7 if llm else 0.95,
                p_transient=0.3 if llm else 0.8,
                max_attempts=1 if llm else 3,
                backoff_s=0.0 if llm else 0.5,
                idempotent=name != "tool_execution_2",
                p_side_effect_on_failure=0.3,
                latency_s=Dist.lognormal(median=0.8 if llm else 0.3, p95=2.5 if llm else 1.2),
                cost_usd=Dist.lognormal(median=0.002, p95=0.006, points=16) if llm else 0.0,
                n_tools=24 if name.startswith("tool_selection") else None,
                parse_failure_share=0.4 if name.startswith("parameter") else 0.0,
            )
        )
    design = fk.Design(name="ten stages", stages=stages, task_spread=spread)
    return design.with_checkpoint(
        "tool_execution_2", catch_rate=0.8, human_seconds=20, human_cost_usd=0.02
    )


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and best wall time of ``repeat`` calls, in seconds."""
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main(argv: list[str]) -> int:
    design = ten_stages()
    slo = fk.SLO(max_seconds=35, max_cost_usd=0.05, target=0.6)
    print(f"cpus={os.cpu_count()} load average={os.getloadavg()[0]:.2f}")
    results = {
        "monte_carlo_1m_s": timed(
            lambda: fk.simulate(design, method="monte_carlo", n=MC_RUNS, slo=slo), repeat=3
        ),
        "exact_s": timed(lambda: fk.simulate(design, slo=slo), repeat=50),
    }
    extra = {
        "exact_task_spread_s": timed(lambda: fk.simulate(ten_stages(spread=1.0), slo=slo), 10),
        "exact_posterior_ci_s": timed(lambda: fk.simulate(ten_stages(posterior=True), slo=slo), 3),
        "exact_task_spread_posterior_ci_s": timed(
            lambda: fk.simulate(ten_stages(spread=1.0, posterior=True), slo=slo), repeat=1
        ),
    }
    print(f"{'measure':<36}{'median s':>10}{'best s':>10}{'target':>8}{'ratio':>7}")
    for key, (median, best) in results.items():
        target = TARGETS[key]
        print(f"{key:<36}{median:>10.4f}{best:>10.4f}{target:>8.3f}{median / target:>7.2f}")
    for key, (median, best) in extra.items():
        print(f"{key:<36}{median:>10.4f}{best:>10.4f}{'-':>8}{'-':>7}")
    ex = fk.simulate(design, slo=slo).set_index("metric")
    mc = fk.simulate(design, method="monte_carlo", n=MC_RUNS, slo=slo).set_index("metric")
    print(f"\n{'metric':<26}{'exact':>12}{'monte carlo':>14}{'z':>8}")
    for metric in ("success_rate", "duplicate_action_rate", "cost_usd_mean", "slo_attainment"):
        se = (mc.loc[metric, "ci_high"] - mc.loc[metric, "ci_low"]) / (2 * 1.959964)
        e, m = ex.loc[metric, "value"], mc.loc[metric, "value"]
        z = (e - m) / se if se > 0 else float("nan")
        print(f"{metric:<26}{e:>12.6f}{m:>14.6f}{z:>8.2f}")
    missed = [k for k, (median, _) in results.items() if median > TARGETS[k]]
    if missed:
        print(f"\nover target: {', '.join(missed)}")
    return 1 if missed and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
