"""A generated world under one design: ground truth as DataFrames, traces written on demand."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from math import ceil
from pathlib import Path

import numpy as np
import pandas as pd

from failkit.errors import FailkitError
from failkit.schema import Outcome
from failkit.synth.catalog import MODE_INDEX, MODES, toolset
from failkit.synth.config import AgentDesign, World
from failkit.synth.engine import (
    BY_NONE,
    NO_MODE,
    RECOVERED_BY,
    ROLE_HUMAN,
    ROLE_NAMES,
    ROLE_ROOT,
    ROLE_STAGE,
    ROLE_TOOL,
    Simulation,
    simulate,
)
from failkit.synth.judge import judge
from failkit.synth.render import Renderer, label_line, otlp_line, run_lines
from failkit.synth.world import Population, populate

FORMATS = ("otlp", "jsonl", "labels", "truth")
"""What :meth:`SynthResult.write` can write."""

FILE_NAMES = {
    "otlp": "traces.otlp.jsonl",
    "jsonl": "traces.jsonl",
    "labels": "labels.csv",
    "ground_truth": "ground_truth.csv",
    "failure_events": "failure_events.csv",
    "span_truth": "span_truth.csv",
}
_TABLES = {"labels": ("labels",), "truth": ("ground_truth", "failure_events", "span_truth")}
"""CSV files each format of :data:`FORMATS` writes, by key of :data:`FILE_NAMES`."""
BATCH_SPANS = (50, 200)
"""Fewest and most spans per OTLP line (exporter batch)."""
_CHUNK_BATCHES = 64
_U64_MAX = 2**64 - 1


def hex_ids(values: np.ndarray) -> list[str]:
    """Lowercase hex of unsigned 64-bit ids; a 2-column array gives 32-hex ids per row."""
    width = 16 * (values.shape[1] if values.ndim == 2 else 1)
    text = values.astype(">u8").tobytes().hex()
    return [text[i : i + width] for i in range(0, len(text), width)]


def _unique_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct non-zero random 64-bit ids."""
    ids = rng.integers(1, _U64_MAX, n, dtype=np.uint64, endpoint=True)
    while True:
        _, first = np.unique(ids, return_index=True)
        if first.size == n:
            return ids
        again = np.ones(n, dtype=bool)
        again[first] = False
        ids[again] = rng.integers(1, _U64_MAX, int(again.sum()), dtype=np.uint64, endpoint=True)


@dataclass(frozen=True)
class Ids:
    """Random ids of one generated design (from the design's digest, not the run-time draws).

    Attributes:
        trace: per run, two words of the 128-bit trace id.
        span: per span row.
        conversation: per run (``gen_ai.conversation.id``).
        call: per tool call (``gen_ai.tool.call.id``).
        batch_edges: span positions (in end order) where OTLP lines start, then the count.
    """

    trace: np.ndarray
    span: np.ndarray
    conversation: np.ndarray
    call: np.ndarray
    batch_edges: np.ndarray

    @classmethod
    def draw(cls, world: World, design: AgentDesign, sim: Simulation) -> Ids:
        """Draw every id of the simulation."""
        rng = np.random.default_rng([world.seed, design.seed, design.digest()])
        n_runs, n_spans = world.n_runs, sim.spans["run"].size
        trace = np.column_stack(
            [_unique_ids(rng, n_runs), rng.integers(0, _U64_MAX, n_runs, np.uint64, True)]
        )
        span = _unique_ids(rng, n_spans)
        conversation = rng.integers(0, _U64_MAX, n_runs, np.uint64, True)
        call = rng.integers(
            0, _U64_MAX, int(sim.spans["call"].max(initial=-1)) + 1, np.uint64, True
        )
        sizes = rng.integers(BATCH_SPANS[0], BATCH_SPANS[1] + 1, n_spans // BATCH_SPANS[0] + 1)
        edges = np.concatenate([[0], np.cumsum(sizes)])
        edges = np.append(edges[edges < n_spans], n_spans)
        return cls(trace, span, conversation, call, edges)


@dataclass(frozen=True)
class SynthResult:
    """One world run under one design: what happened, the ground truth, and the traces.

    Attributes:
        world: the world configuration.
        design: the agent design.
        population: tasks and run arrivals (the same for every design of the world).
        simulation: the simulated spans and failure events as arrays.
        ids: the ids written to the traces.
    """

    world: World
    design: AgentDesign
    population: Population
    simulation: Simulation
    ids: Ids

    @property
    def n_spans(self) -> int:
        """Spans in the traces."""
        return int(self.simulation.spans["run"].size)

    @cached_property
    def trace_ids(self) -> list[str]:
        """Per run (arrival order), the 32-hex trace id."""
        return hex_ids(self.ids.trace)

    @cached_property
    def task_ids(self) -> list[str]:
        """Per run, the task id (``task-000042``)."""
        return [f"task-{t:06d}" for t in self.population.run_task.tolist()]

    @cached_property
    def conversation_ids(self) -> list[str]:
        """Per run, the ``gen_ai.conversation.id`` (the trace's session id)."""
        return ["conv_" + h for h in hex_ids(self.ids.conversation)]

    def _span_hex(self, rows: np.ndarray) -> list[str | None]:
        """Hex ids of span rows; None where the row is -1."""
        hexes: list[str | None] = list(hex_ids(self.ids.span[np.maximum(rows, 0)]))
        for i in np.flatnonzero(rows < 0).tolist():
            hexes[i] = None
        return hexes

    @cached_property
    def truth(self) -> pd.DataFrame:
        """One row per run: outcome, the first unrecovered failure, retries, cost, duration.

        ``first_failure_span_id`` is the span where the run's first unrecovered failure
        surfaced (the erroring tool span, the LLM span of a silent mistake, the human span
        that caught a call that was later wrong again); ``first_failure_cause_span_id`` the
        span blamed (the LLM span that wrote bad arguments). Both are empty for successes.
        """
        sim, pop = self.simulation, self.population
        spans, events = sim.spans, sim.events
        n = self.world.n_runs
        first = sim.first_unrecovered()
        runs = np.flatnonzero(first >= 0)
        picked = first[runs]
        span = np.full(n, -1)
        cause = np.full(n, -1)
        mode = np.full(n, NO_MODE)
        span[runs], cause[runs], mode[runs] = (
            events["span"][picked],
            events["cause"][picked],
            events["mode"][picked],
        )
        run = spans["run"]
        root = sim.root_row
        success = sim.completed & ~sim.silent
        mode_names = np.array([m.name for m in MODES] + [None], dtype=object)
        stages = np.array([m.stage for m in MODES] + [None], dtype=object)
        silent = np.array([not m.detectable for m in MODES] + [False])
        role = spans["role"]
        return pd.DataFrame(
            {
                "trace_id": self.trace_ids,
                "task_id": self.task_ids,
                "trial": pop.run_trial,
                "difficulty": pop.difficulty[pop.run_task],
                "design": self.design.name,
                "outcome": np.where(success, Outcome.SUCCESS.value, Outcome.FAILURE.value),
                "first_failure_span_id": self._span_hex(span),
                "first_failure_cause_span_id": self._span_hex(cause),
                "first_failure_stage": stages[mode],
                "failure_mode": mode_names[mode],
                "silent": silent[mode],
                "n_retries": np.bincount(run, weights=spans["retry"], minlength=n).astype(np.int64),
                "n_human_reviews": np.bincount(run[role == ROLE_HUMAN], minlength=n),
                "n_human_catches": np.bincount(run[spans["decision"] == 2], minlength=n),
                "duplicated_side_effect": sim.duplicated,
                "cost_usd": np.round(
                    np.bincount(run, weights=np.nan_to_num(spans["cost"]), minlength=n), 9
                ),
                "duration_s": (spans["end"][root] - spans["start"][root]) / 1e6,
                "n_spans": np.bincount(run, minlength=n),
                "n_rounds": pop.n_rounds[pop.run_task],
            }
        )

    @cached_property
    def failure_events(self) -> pd.DataFrame:
        """One row per failure event, recovered ones included (by ``retry`` or ``human``)."""
        events, sim = self.simulation.events, self.simulation
        modes = events["mode"]
        by = sim.chain_by[events["chain"]]
        trace_ids = np.array(self.trace_ids, dtype=object)
        return pd.DataFrame(
            {
                "trace_id": trace_ids[events["run"]],
                "span_id": self._span_hex(events["span"]),
                "cause_span_id": self._span_hex(events["cause"]),
                "stage": [MODES[m].stage for m in modes.tolist()],
                "failure_mode": [MODES[m].name for m in modes.tolist()],
                "silent": [not MODES[m].detectable for m in modes.tolist()],
                "transient": [MODES[m].transient for m in modes.tolist()],
                "recovered": by != BY_NONE,
                "recovered_by": [RECOVERED_BY[b] or None for b in by.tolist()],
                "chain": events["chain"],
            }
        )

    @cached_property
    def span_truth(self) -> pd.DataFrame:
        """One row per span: its role, the stage it carries, its attempt, what failed there.

        ``attempt`` counts LLM calls of one step (a round's tool choice, the answer) and
        calls of one tool within a round (a re-asked call of the same tool is attempt 2).
        """
        spans, sim = self.simulation.spans, self.simulation
        role = spans["role"]
        unknown = spans["args_mode"] == MODE_INDEX["unknown_tool"]
        tool_key = np.where(
            (role == ROLE_TOOL) | (role == ROLE_HUMAN), spans["tool"] * 2 + unknown, -1
        )
        attempt = (
            pd.DataFrame(
                {"run": spans["run"], "round": spans["round"], "role": role, "tool": tool_key}
            )
            .groupby(["run", "round", "role", "tool"], sort=False)
            .cumcount()
            .to_numpy()
            + 1
        )
        names = toolset(self.design.n_tools)
        tool_names = np.array([t.name for t in names] + [None], dtype=object)
        parent = np.where(role == ROLE_ROOT, -1, sim.root_row[spans["run"]])
        mode_names = np.array([m.name for m in MODES] + [None], dtype=object)
        trace_ids = np.array(self.trace_ids, dtype=object)
        return pd.DataFrame(
            {
                "trace_id": trace_ids[spans["run"]],
                "span_id": self._span_hex(np.arange(self.n_spans)),
                "parent_id": self._span_hex(parent),
                "role": np.array(ROLE_NAMES, dtype=object)[role],
                "stage": np.array(ROLE_STAGE, dtype=object)[role],
                "attempt": attempt,
                "tool": tool_names[spans["tool"]],
                "failure_mode": mode_names[spans["mode"]],
                "retry": spans["retry"],
                "acted": spans["acted"],
            }
        )

    @cached_property
    def judgments(self) -> pd.DataFrame:
        """The LLM judge's verdicts with comments (see :mod:`failkit.synth.judge`)."""
        return judge(
            self.world,
            self.design,
            self.population,
            self.simulation,
            self.truth,
            toolset(self.design.n_tools),
        )

    @property
    def labels(self) -> pd.DataFrame:
        """Outcome labels of every run (OTLP has no outcome), then the judge's verdicts.

        Columns ``trace_id, span_id, name, value, score, source, comment`` (span, score and
        comment are missing on outcome labels).
        """
        outcome = pd.DataFrame(
            {
                "trace_id": self.truth["trace_id"],
                "span_id": None,
                "name": "outcome",
                "value": self.truth["outcome"],
                "score": np.nan,
                "source": "synth",
                "comment": None,
            }
        )
        return pd.concat([outcome, self.judgments], ignore_index=True)

    def write(self, directory: str | Path, formats: Iterable[str] = FORMATS) -> dict[str, Path]:
        """Write the traces and ground truth into ``directory``.

        Args:
            directory: created when missing; files are named as in :data:`FILE_NAMES`.
            formats: any of ``otlp`` (OTLP JSON lines), ``jsonl`` (failkit JSONL with
                trace and outcome label lines), ``labels`` (CSV), ``truth`` (ground truth,
                failure events and span truth CSVs).

        Returns:
            Path of every file written, by key of :data:`FILE_NAMES`.

        Raises:
            FailkitError: an unknown format.
        """
        wanted = tuple(formats)
        unknown = sorted(set(wanted) - set(FORMATS))
        if unknown:
            raise FailkitError(f"unknown synth formats {unknown}; use any of {list(FORMATS)}")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {k: out / FILE_NAMES[k] for k in ("otlp", "jsonl") if k in wanted}
        if paths:
            self._write_traces(paths)
        for fmt, keys in _TABLES.items():
            for key in keys if fmt in wanted else ():
                paths[key] = out / FILE_NAMES[key]
                frame = getattr(self, "truth" if key == "ground_truth" else key)
                frame.to_csv(paths[key], index=False, lineterminator="\n")
        return paths

    def _write_traces(self, paths: dict[str, Path]) -> None:
        """Write spans in end order (children before parents), batches across runs."""
        sim = self.simulation
        spans = sim.spans
        renderer = Renderer(
            self.world,
            self.design,
            self.population,
            sim,
            self.trace_ids,
            self.conversation_ids,
            ["call_" + h for h in hex_ids(self.ids.call)],
            self.task_ids,
        )
        verdicts = self.judgments
        verdict_lines = dict(
            zip(verdicts["trace_id"], map(label_line, verdicts.to_dict("records")), strict=True)
        )
        order = np.argsort(spans["end"], kind="stable")
        edges = self.ids.batch_edges
        is_root = spans["role"] == ROLE_ROOT
        files = {k: p.open("w", encoding="utf-8", newline="\n") for k, p in paths.items()}
        try:
            for c in range(0, edges.size - 1, _CHUNK_BATCHES):
                local = edges[c : c + _CHUNK_BATCHES + 1]
                rows = order[local[0] : local[-1]]
                parents = np.where(is_root[rows], -1, sim.root_row[spans["run"][rows]])
                otlp, native = renderer.encode(
                    rows,
                    hex_ids(self.ids.span[rows]),
                    self._span_hex(parents),
                    otlp="otlp" in files,
                    native="jsonl" in files,
                )
                if "otlp" in files:
                    cuts = (local - local[0]).tolist()
                    files["otlp"].write(
                        "".join(otlp_line(otlp[a:b]) + "\n" for a, b in itertools.pairwise(cuts))
                    )
                if "jsonl" in files:
                    files["jsonl"].write(self._native_lines(native, rows, verdict_lines))
        finally:
            for f in files.values():
                f.close()

    def _native_lines(self, spans: list[str], rows: np.ndarray, verdicts: dict[str, str]) -> str:
        """failkit JSONL text of spans; a run's trace and label lines (its outcome, then the
        judge's verdict in ``verdicts`` by trace id) follow its root span."""
        sim = self.simulation
        pieces = []
        done = 0
        for p in np.flatnonzero(sim.spans["role"][rows] == ROLE_ROOT).tolist():
            run = int(sim.spans["run"][rows[p]])
            success = sim.completed[run] and not sim.silent[run]
            pieces += spans[done : p + 1]
            pieces.append(
                run_lines(
                    self.trace_ids[run],
                    self.task_ids[run],
                    self.conversation_ids[run],
                    Outcome.SUCCESS if success else Outcome.FAILURE,
                )
            )
            if self.trace_ids[run] in verdicts:
                pieces.append(verdicts[self.trace_ids[run]])
            done = p + 1
        pieces += spans[done:]
        return "\n".join(pieces) + "\n" if pieces else ""


def generate(world: World | None = None, design: AgentDesign | None = None) -> SynthResult:
    """Run a world under a design (defaults for either when omitted).

    The same ``world`` gives the same tasks, difficulties, trials and arrival times under
    every design; a fixed world and design give byte-identical files.
    """
    world = world or World()
    design = design or AgentDesign()
    pop = populate(world)
    sim = simulate(world, design, pop)
    return SynthResult(world, design, pop, sim, Ids.draw(world, design, sim))


def sample(
    n_runs: int = 1500, *, trials: int = 5, seed: int = 0, design: AgentDesign | None = None
) -> SynthResult:
    """A world of about ``n_runs`` runs (rounded up to whole tasks of ``trials`` runs)."""
    world = World(n_tasks=max(1, ceil(n_runs / trials)), trials=trials, seed=seed)
    return generate(world, design)


def write_sample(directory: str | Path, n_runs: int = 1500, seed: int = 0) -> dict[str, Path]:
    """Generate :func:`sample` with the default design and write every format into ``directory``."""
    return sample(n_runs, seed=seed).write(directory)


__all__ = [
    "FILE_NAMES",
    "FORMATS",
    "Ids",
    "SynthResult",
    "generate",
    "hex_ids",
    "sample",
    "write_sample",
]
