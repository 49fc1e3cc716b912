"""Benchmark: failure modes — grouping speed, agreement with the truth, stability, TRAIL.

Speed: 100k failure events (synthetic agent with every failure rate tripled, failkit JSONL
cached in a DuckDB file under the system temp directory; ``--rebuild`` after synth changes)
grouped by ``fk.failure_modes`` on the steps frame, from the traces alone and with the
judge's verdicts; goal: at most 30 s. The baseline, timed in the same run, templates every
message on its own as a naive log pipeline does: Drain3's ``TemplateMiner`` with failkit's
masks as its masking instructions, one call per message (on a sample, scaled up).

Truth: adjusted Rand index between the modes and synth's true failure modes, 3 seeds. From
the traces alone: on the events that raised an error, on all events, and on all events with
the silent true modes merged by stage (what the traces can tell apart). With synth's LLM
judge verdicts (``label_names=("judge",)``: comments on the run or the blamed span): on the
errors, on all events, and on the silent failures with and without a verdict. Plus
bootstrap stability of both.

TRAIL: agreement between the modes of annotated spans and the human error categories, from
the traces alone and with the annotators' comments as judge text.

Usage: ``python benchmarks/modes.py [--only speed|truth|trail] [--events 100000]
[--runs 50000] [--rebuild]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import failkit as fk
from failkit import synth
from failkit.evaluate import compare_to_labels, labelled_steps, synth_mode_labels
from failkit.failures import failure_mode_stability
from failkit.synth.catalog import MODES
from failkit.templates import MASKS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
GOAL_S = 30.0
RATE_FACTOR = 3.0
EVENTS_PER_RUN = 1.2
"""About how many failure events a synthetic run has with every rate tripled."""
BASELINE_SAMPLE = 20_000
JUDGE = ("judge",)
"""Label names of synth's LLM judge verdicts (comments on the run or the blamed span)."""


def _load(path: Path, result: synth.SynthResult) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = result.write(tmp, formats=("jsonl",))
        with fk.connect(path) as store:
            store.ingest(files["jsonl"], progress=False)


def _baseline_seconds(messages: pd.Series) -> float:
    """Seconds a per-message Drain3 TemplateMiner (same masks, Python ``re``) would take."""
    from drain3 import TemplateMiner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.drain_sim_th = 0.7
    config.masking_instructions = [MaskingInstruction(m.pattern, m.name) for m in MASKS]
    miner = TemplateMiner(config=config)
    sample = messages.sample(min(BASELINE_SAMPLE, len(messages)), random_state=0).tolist()
    t0 = time.perf_counter()
    for message in sample:
        miner.add_log_message(message)
    return (time.perf_counter() - t0) * len(messages) / len(sample)


@dataclass
class _Modes:
    """A store's steps and failure modes, from the traces alone and with the judge, timed."""

    steps: pd.DataFrame
    steps_judged: pd.DataFrame
    labels: pd.DataFrame
    modes: pd.DataFrame
    judged: pd.DataFrame
    t_steps: float
    t_modes: float
    t_judged: float


def _modes(path: Path) -> _Modes:
    with fk.connect(path, read_only=True) as store:
        t0 = time.perf_counter()
        st = fk.steps(store)
        t_steps = time.perf_counter() - t0
        st_judged = fk.steps(store, label_names=JUDGE)
        labels = store.labels_df()
    t0 = time.perf_counter()
    modes = fk.failure_modes(st)
    t_modes = time.perf_counter() - t0
    t0 = time.perf_counter()
    judged = fk.failure_modes(st_judged, label_names=JUDGE, labels=labels)
    t_judged = time.perf_counter() - t0
    return _Modes(st, st_judged, labels, modes, judged, t_steps, t_modes, t_judged)


def trail_store(traces: Path, annotations: Path) -> fk.TraceStore:
    """TRAIL traces and annotations in an in-memory store; every annotated run failed."""
    store = fk.connect()
    store.ingest(traces, progress=False)
    store.ingest(annotations, progress=False)
    located = labelled_steps(store.labels_df(), fk.steps(store), name="error_category")
    store.add_labels(pd.DataFrame({"trace_id": located["trace_id"].unique(), "name": "outcome",
                                   "value": "failure"}))  # fmt: skip
    return store


def speed(n_events: int, seed: int, rebuild: bool) -> bool:
    """Time failure_modes over about ``n_events`` events; True when within the goal."""
    n_runs = int(n_events / EVENTS_PER_RUN)
    path = Path(tempfile.gettempdir()) / f"failkit-bench-modes-{n_runs}-{seed}.duckdb"
    if rebuild or not path.exists():
        path.unlink(missing_ok=True)
        world = synth.World(
            n_tasks=n_runs // 5, seed=seed, mode_rates={m.name: m.rate * RATE_FACTOR for m in MODES}
        )
        t0 = time.perf_counter()
        _load(path, synth.generate(world))
        print(f"built {path.name} in {time.perf_counter() - t0:.1f} s")
    m = _modes(path)
    st, modes, judged = m.steps, m.modes, m.judged
    t_steps, t_modes, t_judged = m.t_steps, m.t_modes, m.t_judged
    t0 = time.perf_counter()
    fk.failure_mode_summary(st, modes=modes)
    t_summary = time.perf_counter() - t0
    n = len(modes)
    messages = modes[["trace_id", "span_id"]].merge(st, on=["trace_id", "span_id"])
    messages = messages["error_message"].dropna()
    t_base = _baseline_seconds(messages)
    print(
        f"{n:,} failure events ({messages.nunique():,} distinct messages, "
        f"{modes['template'].nunique()} templates, {modes['mode_id'].nunique()} modes) "
        f"from {st['trace_id'].nunique():,} runs / {len(st):,} steps"
    )
    print(f"  steps (for context):        {t_steps:6.2f} s")
    print(f"  failure_modes:              {t_modes:6.2f} s = {n / t_modes:,.0f} events/s")
    print(f"  failure_mode_summary:       {t_summary:6.2f} s")
    n_text = int((judged["category"] == "judged").sum())
    print(
        f"  failure_modes with the judge's verdicts ({len(judged):,} events, {n_text:,} "
        f"comments): {t_judged:6.2f} s"
    )
    print(
        f"  baseline per-message Drain3 (templates only, {len(messages):,} messages): "
        f"{t_base:6.2f} s = {len(messages) / t_base:,.0f} messages/s; "
        f"failure_modes is {t_base / t_modes:.1f}x faster"
    )
    ok = max(t_modes, t_judged) <= GOAL_S and n >= 0.9 * n_events
    print(f"  goal: {n_events:,} events in <= {GOAL_S:.0f} s: {'met' if ok else 'NOT met'}")
    return ok


def _coarse(truth: pd.DataFrame) -> pd.DataFrame:
    """The truth with the silent modes merged into what the traces can tell apart: stage."""
    stage = {m.name: f"silent {m.stage}" for m in MODES if not m.detectable}
    return truth.assign(value=truth["value"].map(stage).fillna(truth["value"]))


def truth(n_runs: int) -> bool:
    """ARI against synth's truth for 3 seeds, from the traces alone and with the synthetic
    judge's verdicts, and bootstrap stability; True when ARI >= 0.9 on the events that
    raised an error and, with the judge, on all events."""
    ok = True
    rows = []
    for seed in (0, 1, 2):
        result = synth.sample(n_runs, seed=seed)
        path = Path(tempfile.gettempdir()) / f"failkit-bench-modes-truth-{n_runs}-{seed}.duckdb"
        path.unlink(missing_ok=True)
        _load(path, result)
        m = _modes(path)
        st, st_judged, labels, modes, judged = m.steps, m.steps_judged, m.labels, m.modes, m.judged
        seconds, seconds_judged = m.t_modes, m.t_judged
        truth_labels = synth_mode_labels(result)
        on_steps = truth_labels.loc[truth_labels["span_id"].notna()]
        silent = truth_labels.loc[truth_labels["span_id"].isna()]
        verdict = silent["trace_id"].isin(labels.loc[labels["name"] == "judge", "trace_id"])
        cases = {
            "errors, traces alone": (modes.loc[~modes["silent"]], on_steps, seconds),
            "all, traces alone": (modes, truth_labels, seconds),
            "all, silent by stage": (modes, _coarse(truth_labels), seconds),
            "errors, with judge": (judged.loc[~judged["silent"]], on_steps, seconds_judged),
            "all, with judge": (judged, truth_labels, seconds_judged),
            "silent with a verdict": (judged, silent.loc[verdict], seconds_judged),
            "silent without one": (judged, silent.loc[~verdict], seconds_judged),
        }
        for name, (found, true, took) in cases.items():
            s = compare_to_labels(found, true, label_name="failure_mode").scores.iloc[0]
            rows.append([seed, name, s["n_compared"], s["n_categories"], s["n_modes"],
                         s["ari"], s["nmi"], took])  # fmt: skip
        if seed == 0:
            stability = failure_mode_stability(st, n_resamples=5, seed=0)
            stability_judged = failure_mode_stability(
                st_judged, n_resamples=5, seed=0, label_names=JUDGE, labels=labels
            )
            table = compare_to_labels(judged, truth_labels, label_name="failure_mode").contingency
        path.unlink(missing_ok=True)
    out = pd.DataFrame(
        rows,
        columns=["seed", "events", "n", "n_categories", "n_modes", "ari", "nmi", "seconds"],
    )
    for name in ("errors, traces alone", "all, with judge"):
        ok &= bool((out.loc[out["events"] == name, "ari"] >= 0.9).all())
    print(f"ARI against synth's true modes, {n_runs:,} runs per seed")
    print(out.round(4).to_string(index=False))
    print("\nbootstrap stability (seed 0, 5 resamples of the runs), traces alone:")
    print(stability.round(4).to_string(index=False))
    print("with the judge's verdicts:")
    print(stability_judged.round(4).to_string(index=False))
    print("\ncontingency (seed 0, all events, with judge; true mode x found mode, largest first):")
    print(table.head(30).to_string(index=False))
    return ok


def trail() -> None:
    """Agreement with TRAIL SWE-bench's human error categories, reported as it is."""
    traces = SHARED / "trail" / "traces" / "SWE_Bench"
    annotations = SHARED / "trail" / "annotations" / "SWE_Bench"
    if not traces.exists():
        print(f"TRAIL skipped: {traces} is absent")
        return
    store = trail_store(traces, annotations)
    labels = store.labels_df()
    for title, names in (("traces alone", ()), ("with annotator comments", ("error_category",))):
        modes = fk.failure_modes(store, label_names=names)
        scores, table = compare_to_labels(modes, labels, label_name="error_category")
        print(
            f"\nTRAIL SWE-bench, {title}: {len(modes)} events, {modes['mode_id'].nunique()} modes"
        )
        print(scores.round(4).to_string(index=False))
        print(table.head(15).to_string(index=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["speed", "truth", "trail"])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    ok = True
    if args.only in (None, "speed"):
        ok &= speed(args.events, args.seed, args.rebuild)
    if args.only in (None, "truth"):
        ok &= truth(args.runs)
    if args.only in (None, "trail"):
        trail()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
