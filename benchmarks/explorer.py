"""Benchmark the what-if explorer: how long one lever change takes, kernel side.

Target (issue 7): an update under 100 ms — from a control's new value to the new chart spec
set on the chart widget (simulate with the exact method and no posterior draws, the waterfall,
the frames, the spec, the summary). The browser's redraw comes on top (see
``tests/test_browser.py``, which records it in ``tests/artifacts/browser_timings.json``).
Run ``python benchmarks/explorer.py`` (``--check`` exits 1 when the target is missed).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import failkit as fk

sys.path.insert(0, str(Path(__file__).parent))
from simulate import ten_stages

TARGET_S = 0.100
SLO = fk.SLO(max_seconds=35, max_cost_usd=0.05, target=0.6)


def article() -> fk.Design:
    """The seed article's four 95 % steps, with latency and cost."""
    names = ("tool_selection", "parameter_extraction", "tool_execution", "response_synthesis")
    stages = [
        fk.Stage(name=n, p_success=0.95, latency_s=fk.Dist.lognormal(median=1.0, p95=3.0),
                 cost_usd=0.004)
        for n in names
    ]  # fmt: skip
    return fk.Design(name="article", stages=stages)


def timed_updates(design: fk.Design, slo: fk.SLO | None, repeat: int = 20) -> list[float]:
    """Seconds per update while a retries slider moves back and forth."""
    explorer = fk.explore(design, slo=slo)
    control = f"{design.stage_names[len(design.stages) // 2]}__max_attempts"
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        explorer.update(**{control: 1 + (i % 4)})
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str]) -> int:
    print(f"cpus={os.cpu_count()} load average={os.getloadavg()[0]:.2f}")
    cases = {
        "article, 4 stages": (article(), None),
        "10 stages": (ten_stages(), SLO),
        "10 stages, task spread 1": (ten_stages(spread=1.0), SLO),
    }
    print(f"{'design':<28}{'median ms':>11}{'max ms':>9}{'target ms':>11}")
    missed = []
    for name, (design, slo) in cases.items():
        times = timed_updates(design, slo)
        median = statistics.median(times)
        print(f"{name:<28}{median * 1000:>11.1f}{max(times) * 1000:>9.1f}{TARGET_S * 1000:>11.0f}")
        if median > TARGET_S:
            missed.append(name)
    if missed:
        print(f"\nover target: {', '.join(missed)}")
    return 1 if missed and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
