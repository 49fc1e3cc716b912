"""Benchmark the what-if explorer: how long one lever change takes, kernel side.

Target (issue 7): every update under 100 ms — from a control's new value to the new chart spec
set on the chart widget (simulate with the exact method and no posterior draws, the waterfall,
the frames, the spec, the summary). The browser's redraw comes on top (see
``tests/test_browser.py``, which records it in ``tests/artifacts/browser_timings.json``).

Each design is timed on two controls: the retries slider of the middle stage moved back and
forth (1, 2, 3, 4, 1, …) and the model multiplier of the first stage moved to a new value every
time. Every update is timed, the first one included. The explorer as shipped
(``interactive=True``: single-precision SLO lattice, work on unchanged stages reused) is
compared with the baseline measured in the same run, ``interactive=False`` (simulate's default
exact method on every update). The largest SLO-attainment difference between the two over all
updates is printed too (the stated tolerance is 1e-5).

Run ``python benchmarks/explorer.py`` (``--check`` exits 1 when an update's p95 misses the
target; ``--repeat N`` updates per control, default 40).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import failkit as fk
from failkit.synth import FILE_NAMES

sys.path.insert(0, str(Path(__file__).parent))
from simulate import ten_stages

TARGET_S = 0.100
SLO = fk.SLO(max_seconds=35, max_cost_usd=0.05, target=0.6)
SAMPLE = Path(__file__).parent.parent / "data" / "sample"


def article() -> fk.Design:
    """The seed article's four 95 % steps, with latency and cost."""
    names = ("tool_selection", "parameter_extraction", "tool_execution", "response_synthesis")
    stages = [
        fk.Stage(name=n, p_success=0.95, latency_s=fk.Dist.lognormal(median=1.0, p95=3.0),
                 cost_usd=0.004)
        for n in names
    ]  # fmt: skip
    return fk.Design(name="article", stages=stages)


def sample_design() -> fk.Design:
    """The design ``Design.from_store`` estimates from the committed sample (15 stages)."""
    with fk.connect() as store:
        store.ingest(SAMPLE / (FILE_NAMES["jsonl"] + ".gz"))
        store.add_labels(SAMPLE / FILE_NAMES["labels"])
        return fk.Design.from_store(store)


def moves(design: fk.Design, repeat: int) -> dict[str, list[fk.whatif.LeverValue]]:
    """Control name → the values it is set to, one update each."""
    middle = design.stage_names[len(design.stages) // 2]
    first = design.stage_names[0]
    return {
        f"{middle}__max_attempts": [1 + i % 4 for i in range(repeat)],
        f"{first}__error_multiplier": np.linspace(0.9, 0.3, repeat).round(4).tolist(),
    }


def timed_updates(
    design: fk.Design, slo: fk.SLO | None, control: str, values: list, *, interactive: bool
) -> tuple[list[float], list[float]]:
    """Seconds per update, and SLO attainment of the current design after each."""
    explorer = fk.explore(design, slo=slo, interactive=interactive)
    times, slo_values = [], []
    for value in values:
        t0 = time.perf_counter()
        explorer.update(**{control: value})
        times.append(time.perf_counter() - t0)
        m = explorer.frames["metrics"].set_index("design")
        slo_values.append(float(m.loc["current", "slo_attainment"]))
    return times, slo_values


def p95(times: list[float]) -> float:
    return float(np.quantile(times, 0.95))


def main(argv: list[str]) -> int:
    repeat = int(argv[argv.index("--repeat") + 1]) if "--repeat" in argv else 40
    print(f"cpus={os.cpu_count()} load average={os.getloadavg()[0]:.2f} updates={repeat}")
    cases = {
        "sample, 15 stages": (sample_design(), None),
        "article, 4 stages": (article(), None),
        "10 stages": (ten_stages(), SLO),
        "10 stages, task spread 1": (ten_stages(spread=1.0), SLO),
    }
    head = f"{'design':<26}{'control':<34}{'median ms':>10}{'p95 ms':>8}{'max ms':>8}"
    print(f"{head}{'base med':>10}{'base p95':>10}{'speedup':>9}{'max |dSLO|':>12}")
    missed = []
    for name, (design, slo) in cases.items():
        for control, values in moves(design, repeat).items():
            fast, fast_slo = timed_updates(design, slo, control, values, interactive=True)
            base, base_slo = timed_updates(design, slo, control, values, interactive=False)
            med, base_med = statistics.median(fast), statistics.median(base)
            err = max(abs(a - b) for a, b in zip(fast_slo, base_slo, strict=True))
            print(
                f"{name:<26}{control:<34}{med * 1e3:>10.1f}{p95(fast) * 1e3:>8.1f}"
                f"{max(fast) * 1e3:>8.1f}{base_med * 1e3:>10.1f}{p95(base) * 1e3:>10.1f}"
                f"{base_med / med:>8.1f}x{err:>12.1e}"
            )
            if p95(fast) > TARGET_S:
                missed.append(f"{name} / {control}")
    print(f"target: every update < {TARGET_S * 1e3:.0f} ms (checked on the p95)")
    if missed:
        print(f"over target: {', '.join(missed)}")
    return 1 if missed and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
