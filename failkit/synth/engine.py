"""Vectorized simulation of agent runs: NumPy over all runs, a Python loop over step positions.

A run is: planning LLM call, then per tool round an LLM call that picks a tool and writes its
arguments (optionally reviewed by a human), the tool execution (with retries), and finally
an LLM call that writes the answer; an ``invoke_agent`` root span holds them. Every emitted
span is one row of a columnar table; failures are recorded as events grouped in *chains*
(a failure and the repeats of the same step), and a chain that ends in success is recovered.

Rule for repeats: a repeat of a failed step succeeds with the mode's ``recovery``
probability, otherwise it fails the same way again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from failkit.synth.catalog import CATCHABLE, MODE_INDEX, MODELS, MODES, tool_factor, toolset
from failkit.synth.config import AgentDesign, World
from failkit.synth.world import Population

ROLE_ROOT, ROLE_PLAN, ROLE_CALL, ROLE_TOOL, ROLE_HUMAN, ROLE_FINAL = range(6)
ROLE_NAMES = ("agent", "plan", "tool_call", "tool", "human", "answer")
ROLE_STAGE = (
    "other",
    "planning",
    "tool_selection",
    "tool_execution",
    "human",
    "response_synthesis",
)
"""Stage a span of each role carries (the ground truth of step stages)."""

NO_MODE = -1
FEEDBACK_HUMAN = -2
"""``feedback`` of an LLM call that follows a reviewer's rejection (else the mode fed back)."""

BY_NONE, BY_RETRY, BY_HUMAN = 0, 1, 2
RECOVERED_BY = ("", "retry", "human")

MAX_STEP_FAILURE = 0.9
"""A step's total failure probability is scaled down to this when the knobs push it higher."""

_N_MODES = len(MODES)
_GROUPS: dict[str, np.ndarray] = {
    name: np.array([i for i, m in enumerate(MODES) if m.stage in stages], dtype=np.int16)
    for name, stages in {
        "plan": ("planning",),
        "call": ("tool_selection", "parameter_extraction"),
        "exec": ("tool_execution",),
        "answer": ("response_synthesis",),
    }.items()
}
_UNKNOWN_TOOL = MODE_INDEX["unknown_tool"]
_WRONG_TOOL = MODE_INDEX["wrong_tool"]
_CONTEXT = MODE_INDEX["context_length_exceeded"]
_TIMEOUT = MODE_INDEX["timeout"]
_DETECTABLE = np.array([m.detectable for m in MODES])
_TRANSIENT = np.array([m.transient for m in MODES])
_CATCHABLE = np.isin(np.arange(_N_MODES), [MODE_INDEX[n] for n in CATCHABLE])
_RAISED_BY_TOOL = np.isin(
    np.arange(_N_MODES),
    [MODE_INDEX[n] for n in ("unknown_tool", "missing_argument", "invalid_argument_type")],
)
# Tool-span durations of failures: (lowest, spread) seconds; a timeout lasts the timeout.
_ERROR_SECONDS = {
    "unknown_tool": (0.001, 0.004),
    "missing_argument": (0.001, 0.004),
    "invalid_argument_type": (0.001, 0.004),
    "rate_limit": (0.02, 0.1),
    "server_error": (0.2, 1.3),
    "permission_denied": (0.04, 0.11),
}

SPAN_COLUMNS: dict[str, tuple[type, Any]] = {
    "run": (np.int64, None),
    "role": (np.int8, None),
    "start": (np.int64, None),
    "end": (np.int64, None),
    "round": (np.int8, -1),
    "mode": (np.int16, NO_MODE),
    "error": (np.bool_, False),
    "fresh": (np.bool_, False),
    "tool": (np.int16, -1),
    "args_mode": (np.int16, NO_MODE),
    "call": (np.int64, -1),
    "feedback": (np.int16, NO_MODE),
    "var": (np.int64, 0),
    "tokens_in": (np.int64, -1),
    "tokens_out": (np.int64, -1),
    "cost": (np.float64, np.nan),
    "confidence": (np.float64, np.nan),
    "decision": (np.int8, 0),
    "acted": (np.bool_, False),
    "retry": (np.bool_, False),
}
"""Columns of the simulated span table (times in microseconds since the Unix epoch).

``mode`` is the failure that surfaced at the span (on an LLM call: the mistake it made;
on the root: the failure that ended the run), ``args_mode`` the mode that shaped the tool
call's arguments, ``fresh`` that the mode was drawn from the rates (not a repeat),
``decision`` 1 approve / 2 reject on human spans, ``acted`` that a tool call had its side
effect, ``retry`` an automatic repeat after a detectable error.
"""

EVENT_COLUMNS: dict[str, tuple[type, Any]] = {
    "run": (np.int64, None),
    "span": (np.int64, None),
    "cause": (np.int64, None),
    "mode": (np.int16, None),
    "chain": (np.int64, None),
}


class _Table:
    """A growable columnar table: each :meth:`add` appends one block of rows."""

    def __init__(self, spec: dict[str, tuple[type, Any]]) -> None:
        self._spec = spec
        self._blocks: dict[str, list[np.ndarray]] = {c: [] for c in spec}
        self.n = 0

    def add(self, **values: Any) -> np.ndarray:
        """Append rows (scalars broadcast); return their row numbers."""
        unknown = set(values) - set(self._spec)
        if unknown:
            raise TypeError(f"unknown columns {sorted(unknown)}")
        k = len(values[next(iter(self._spec))])
        for name, (dtype, default) in self._spec.items():
            value = values.get(name, default)
            if value is None:
                raise TypeError(f"column {name} is required")
            self._blocks[name].append(np.broadcast_to(np.asarray(value, dtype=dtype), (k,)))
        rows = np.arange(self.n, self.n + k)
        self.n += k
        return rows

    def arrays(self) -> dict[str, np.ndarray]:
        """The table as one array per column."""
        return {
            name: np.concatenate(blocks) if blocks else np.empty(0, dtype=self._spec[name][0])
            for name, blocks in self._blocks.items()
        }


@dataclass
class _Round:
    """State of one tool round, per run that needs it (indexed by position in ``runs``).

    Attributes:
        r: round number.
        runs: the runs.
        needed: tool each run's round needs.
        chain: open failure chain of the LLM step (-1 none).
        chain_mode: mode of that chain.
        by_human: the step is being redone because a reviewer caught it.
        feedback: what the next LLM call is told (a mode, or :data:`FEEDBACK_HUMAN`).
        errors: detectable errors so far for tool selection and parameter extraction.
        limits: attempts allowed for tool selection and parameter extraction.
        redos: calls redone after a reviewer caught them.
        ready: (positions, calls, tools, argument modes) of calls that go to execution.
    """

    r: int
    runs: np.ndarray
    needed: np.ndarray
    chain: np.ndarray
    chain_mode: np.ndarray
    by_human: np.ndarray
    feedback: np.ndarray
    errors: np.ndarray
    limits: np.ndarray
    redos: np.ndarray
    ready: list[tuple[np.ndarray, ...]]

    @classmethod
    def start(cls, r: int, runs: np.ndarray, needed: np.ndarray, limits: np.ndarray) -> _Round:
        """A round before its first LLM call."""
        k = runs.size
        return cls(
            r=r,
            runs=runs,
            needed=needed,
            chain=np.full(k, -1, dtype=np.int64),
            chain_mode=np.full(k, NO_MODE, dtype=np.int16),
            by_human=np.zeros(k, dtype=bool),
            feedback=np.full(k, NO_MODE, dtype=np.int16),
            errors=np.zeros((k, 2), dtype=np.int64),
            limits=limits,
            redos=np.zeros(k, dtype=np.int64),
            ready=[],
        )


class _Counter:
    """Hands out consecutive ids."""

    def __init__(self) -> None:
        self.n = 0

    def take(self, k: int) -> np.ndarray:
        """The next ``k`` ids."""
        self.n += k
        return np.arange(self.n - k, self.n)


@dataclass(frozen=True)
class Simulation:
    """What happened, as arrays.

    Attributes:
        spans: span table (see :data:`SPAN_COLUMNS`), roots last.
        events: failure events (see :data:`EVENT_COLUMNS`), in time order within a run.
        chain_by: per chain, :data:`BY_NONE` (unrecovered), :data:`BY_RETRY` or :data:`BY_HUMAN`.
        completed: per run, not stopped by an error.
        silent: per run, a silent failure went through.
        duplicated: per run, a tool call had its side effect more than once.
        death_row: per run, span that raised the error ending the run (-1).
        answer_row: per run, LLM span of the answer (-1 when the run died).
        root_row: per run, root span.
        rates: per run and mode, the failure probability of a fresh attempt.
    """

    spans: dict[str, np.ndarray]
    events: dict[str, np.ndarray]
    chain_by: np.ndarray
    completed: np.ndarray
    silent: np.ndarray
    duplicated: np.ndarray
    death_row: np.ndarray
    answer_row: np.ndarray
    root_row: np.ndarray
    rates: np.ndarray

    def first_unrecovered(self) -> np.ndarray:
        """Per run, the event of its first unrecovered failure (-1 for runs without one)."""
        unrecovered = np.flatnonzero(self.chain_by[self.events["chain"]] == BY_NONE)
        runs, first = np.unique(self.events["run"][unrecovered], return_index=True)
        out = np.full(self.completed.size, -1, dtype=np.int64)
        out[runs] = unrecovered[first]
        return out


def mode_rates(world: World, design: AgentDesign, difficulty: np.ndarray) -> np.ndarray:
    """Per task (row) and mode (column): the failure probability of one fresh attempt.

    ``rate * model_quality[stage] * difficulty / mean difficulty``, times
    :func:`~failkit.synth.catalog.tool_factor` for tool selection, 0 for modes structured
    outputs remove; each step's total is capped at :data:`MAX_STEP_FAILURE`.
    """
    factor = tool_factor(design.n_tools)
    base = np.array(
        [
            world.mode_rates.get(m.name, m.rate)
            * design.quality(m.stage)
            * (factor if m.stage == "tool_selection" else 1.0)
            * (0.0 if design.structured_outputs and m.structured_away else 1.0)
            for m in MODES
        ]
    )
    mean = world.difficulty_a / (world.difficulty_a + world.difficulty_b)
    p = np.minimum((difficulty / mean)[:, None] * base[None, :], 1.0)
    for group in _GROUPS.values():
        total = p[:, group].sum(axis=1, keepdims=True)
        p[:, group] *= np.minimum(1.0, MAX_STEP_FAILURE / np.maximum(total, 1e-300))
    return p


class _Engine:
    """Mutable state of one simulation; the phases are called in run order."""

    def __init__(self, world: World, design: AgentDesign, pop: Population) -> None:
        self.world, self.design = world, design
        self.rng = np.random.default_rng([world.seed, design.seed])
        n = world.n_runs
        tools = toolset(design.n_tools)
        self.latency = np.array([t.latency_s for t in tools])
        self.non_idempotent = np.array([not t.idempotent for t in tools])
        self.checkpoint = np.isin([t.name for t in tools], design.checkpoint_tools)
        self.recovery = np.array([world.recovery.get(m.name, m.recovery) for m in MODES])
        self.rates = mode_rates(world, design, pop.difficulty)[pop.run_task]
        self.needs = pop.tools[pop.run_task]
        self.n_rounds = pop.n_rounds[pop.run_task]
        self.t = pop.run_start_us.copy()
        self.start = pop.run_start_us
        self.completed = np.ones(n, dtype=bool)
        self.silent = np.zeros(n, dtype=bool)
        self.duplicated = np.zeros(n, dtype=bool)
        self.death_row = np.full(n, -1, dtype=np.int64)
        self.answer_row = np.full(n, -1, dtype=np.int64)
        self.spans = _Table(SPAN_COLUMNS)
        self.events = _Table(EVENT_COLUMNS)
        self.fixed: list[tuple[np.ndarray, np.ndarray]] = []
        self.chains = _Counter()
        self.calls = _Counter()
        low, spread = np.zeros(_N_MODES), np.zeros(_N_MODES)
        for name, (lo, width) in _ERROR_SECONDS.items():
            low[MODE_INDEX[name]], spread[MODE_INDEX[name]] = lo, width
        low[_TIMEOUT], spread[_TIMEOUT] = world.tool_timeout_s, 0.05
        self.error_seconds = (low, spread)
        model = MODELS[design.model]
        self.price = np.array([model.usd_per_m_in, model.usd_per_m_out]) / 1e6

    # --- draws -------------------------------------------------------------------------

    def _fresh(self, runs: np.ndarray, group: str) -> np.ndarray:
        """Mode of a fresh attempt per run (:data:`NO_MODE` for success)."""
        modes = _GROUPS[group]
        cum = np.cumsum(self.rates[runs][:, modes], axis=1)
        pick = (self.rng.random(runs.size)[:, None] >= cum).sum(axis=1)
        return np.where(pick < modes.size, modes[np.minimum(pick, modes.size - 1)], NO_MODE)

    def _redo(self, modes: np.ndarray) -> np.ndarray:
        """Mode of a repeat of a step that failed with ``modes``."""
        fixed = self.rng.random(modes.size) < self.recovery[modes]
        return np.where(fixed | (modes == NO_MODE), NO_MODE, modes).astype(np.int16)

    def _gap(self, k: int) -> np.ndarray:
        return self.rng.integers(2_000, 20_000, k)

    def _var(self, k: int) -> np.ndarray:
        return self.rng.integers(0, 2**62, k)

    # --- bookkeeping -------------------------------------------------------------------

    def _event(
        self,
        runs: np.ndarray,
        span: np.ndarray,
        cause: np.ndarray,
        mode: np.ndarray,
        chain: np.ndarray,
    ) -> None:
        if runs.size:
            self.events.add(run=runs, span=span, cause=cause, mode=mode, chain=chain)

    def _die(self, runs: np.ndarray, rows: np.ndarray) -> None:
        self.completed[runs] = False
        self.death_row[runs] = rows

    def _emit(
        self,
        runs: np.ndarray,
        role: int,
        seconds: np.ndarray,
        gap_us: np.ndarray | None = None,
        **cols: Any,
    ) -> np.ndarray:
        """Append spans that start after the run's last span (plus a gap) and last ``seconds``."""
        start = self.t[runs] + (self._gap(runs.size) if gap_us is None else gap_us)
        end = start + np.maximum((np.asarray(seconds) * 1e6).astype(np.int64), 1)
        self.t[runs] = end
        return self.spans.add(run=runs, role=role, start=start, end=end, **cols)

    # --- span kinds --------------------------------------------------------------------

    def _llm(
        self,
        runs: np.ndarray,
        role: int,
        mode: np.ndarray,
        tokens_in: Any,
        tokens_out: float,
        **cols: Any,
    ) -> np.ndarray:
        k = runs.size
        noise = self.rng.lognormal(0.0, 0.25, (k, 3))
        t_in = np.maximum((np.asarray(tokens_in) * noise[:, 0]).astype(np.int64), 1)
        t_out = np.maximum((tokens_out * noise[:, 1]).astype(np.int64), 1)
        rejected = mode == _CONTEXT
        seconds = np.where(rejected, 0.15, (0.25 + 0.012 * t_out + 4e-5 * t_in) * noise[:, 2])
        cost = np.round(t_in * self.price[0] + t_out * self.price[1], 9)
        return self._emit(
            runs,
            role,
            seconds,
            mode=mode,
            error=rejected | (mode == MODE_INDEX["unparseable_output"]),
            tokens_in=np.where(rejected, -1, t_in),
            tokens_out=np.where(rejected, -1, t_out),
            cost=np.where(rejected, np.nan, cost),
            confidence=np.where(rejected, np.nan, self._confidence(mode == NO_MODE)),
            var=self._var(k),
            **cols,
        )

    def _confidence(self, correct: np.ndarray) -> np.ndarray:
        """Logged confidence: ``calibration * informative + (1 - calibration) * noise``."""
        k = correct.size
        informative = np.where(correct, self.rng.beta(9, 2, k), self.rng.beta(2, 4, k))
        cal = self.design.confidence_calibration
        value = np.round(cal * informative + (1 - cal) * self.rng.random(k), 3)
        return value if self.design.log_confidence else np.full(k, np.nan)

    def _tool(
        self,
        runs: np.ndarray,
        mode: np.ndarray,
        tool: np.ndarray,
        gap_us: np.ndarray | None = None,
        **cols: Any,
    ) -> np.ndarray:
        k = runs.size
        ok = self.latency[tool] * self.rng.lognormal(0.0, 0.5, k)
        low, spread = self.error_seconds
        failed = low[mode] + spread[mode] * self.rng.random(k)
        seconds = np.where(mode == NO_MODE, ok, failed)
        return self._emit(
            runs,
            ROLE_TOOL,
            seconds,
            gap_us,
            mode=mode,
            error=mode != NO_MODE,
            tool=tool,
            var=self._var(k),
            **cols,
        )

    def _human(self, runs: np.ndarray, reject: np.ndarray, **cols: Any) -> np.ndarray:
        seconds = self.world.human_seconds * self.rng.lognormal(0.0, 0.5, runs.size)
        cost = np.round(seconds / 3600 * self.world.human_usd_per_hour, 6)
        return self._emit(
            runs, ROLE_HUMAN, seconds, decision=np.where(reject, 2, 1), cost=cost, **cols
        )

    # --- steps -------------------------------------------------------------------------

    def _attempts(
        self,
        runs0: np.ndarray,
        group: str,
        limit: int,
        emit: Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Repeat a step while it fails detectably and transiently and attempts remain.

        ``emit(pos, runs, mode, attempt)`` writes the attempt's span. Returns positions in
        ``runs0`` and last span rows of the runs that got through (right or silently wrong).
        """
        chain = np.full(runs0.size, -1, dtype=np.int64)
        prev = np.full(runs0.size, NO_MODE, dtype=np.int16)
        pos = np.arange(runs0.size)
        through: list[tuple[np.ndarray, np.ndarray]] = []
        for attempt in range(1, limit + 1):
            runs = runs0[pos]
            mode = self._fresh(runs, group) if attempt == 1 else self._redo(prev[pos])
            rows = emit(pos, runs, mode, attempt)
            fail = mode != NO_MODE
            if attempt == 1:
                chain[pos[fail]] = self.chains.take(int(fail.sum()))
            else:
                self.fixed.append((chain[pos[~fail]], np.full((~fail).sum(), BY_RETRY)))
            self._event(runs[fail], rows[fail], rows[fail], mode[fail], chain[pos[fail]])
            prev[pos] = mode
            detected = fail & _DETECTABLE[mode]
            self.silent[runs[fail & ~detected]] = True
            again = detected & _TRANSIENT[mode] & (attempt < limit)
            self._die(runs[detected & ~again], rows[detected & ~again])
            through.append((pos[~detected], rows[~detected]))
            pos = pos[again]
            if not pos.size:
                break
        return np.concatenate([p for p, _ in through]), np.concatenate([r for _, r in through])

    def plan(self) -> None:
        """Planning LLM call of every run."""
        runs = np.arange(self.world.n_runs)

        def emit(pos: np.ndarray, runs: np.ndarray, mode: np.ndarray, attempt: int) -> np.ndarray:
            return self._llm(runs, ROLE_PLAN, mode, 350, 90, fresh=attempt == 1, retry=attempt > 1)

        self._attempts(runs, "plan", self.design.attempts("planning"), emit)

    def tool_round(self, r: int) -> None:
        """Round ``r`` of every live run that needs it: choose, review, validate, execute.

        The LLM step repeats until its call passes (right or silently wrong), is caught by
        the reviewer (redone), raises a validation error (redone while attempts remain) or
        ends the run; calls that passed are then executed.
        """
        runs = np.flatnonzero(self.completed & (self.n_rounds > r))
        limits = np.array(
            [self.design.attempts(s) for s in ("tool_selection", "parameter_extraction")]
        )
        state = _Round.start(r, runs, self.needs[runs, r], limits)
        pos = np.arange(runs.size)
        while pos.size:
            mode, tool, call, llm = self._choose(state, pos)
            caught = self._review(state, pos, mode, tool, call, llm)
            raised = ~caught & _RAISED_BY_TOOL[mode] & (mode != NO_MODE)
            again = self._validate(
                state, pos[raised], mode[raised], tool[raised], call[raised], llm[raised]
            )
            passed = ~caught & ~raised
            self._pass(state, pos[passed], mode[passed], tool[passed], call[passed], llm[passed])
            pos = np.sort(np.concatenate([pos[caught], again]))
        if state.ready:
            p, call, tool, args_mode = (np.concatenate(x) for x in zip(*state.ready, strict=True))
            self._execute(runs[p], r, call, tool, args_mode)

    def _choose(
        self, state: _Round, pos: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The LLM call choosing a tool and writing arguments: (mode, tool, call, span row)."""
        runs, r = state.runs[pos], state.r
        has = state.chain[pos] >= 0
        repeat = self._redo(state.chain_mode[pos])
        mode = np.where(has, repeat, self._fresh(runs, "call")).astype(np.int16)
        fixed = pos[has & (mode == NO_MODE)]
        self.fixed.append((state.chain[fixed], np.where(state.by_human[fixed], BY_HUMAN, BY_RETRY)))
        state.chain[fixed] = -1
        opened = ~has & (mode != NO_MODE)
        state.chain[pos[opened]] = self.chains.take(int(opened.sum()))
        state.chain_mode[pos] = np.where(has | opened, mode, NO_MODE)
        needed = state.needed[pos]
        other = self.rng.integers(0, self.design.n_tools - 1, pos.size)
        other += other >= needed
        tool = np.where(mode == _WRONG_TOOL, other, needed)
        call = self.calls.take(pos.size)
        feedback = state.feedback[pos]
        llm = self._llm(
            runs,
            ROLE_CALL,
            mode,
            420 + 160 * r,
            45,
            round=r,
            tool=tool,
            call=call,
            args_mode=mode,
            feedback=feedback,
            fresh=~has,
            retry=feedback >= 0,
        )
        return mode, tool, call, llm

    def _validate(
        self,
        state: _Round,
        pos: np.ndarray,
        mode: np.ndarray,
        tool: np.ndarray,
        call: np.ndarray,
        llm: np.ndarray,
    ) -> np.ndarray:
        """Tool spans rejecting unknown tools and invalid arguments; returns who asks again."""
        runs = state.runs[pos]
        rows = self._tool(runs, mode, tool, round=state.r, call=call, args_mode=mode)
        self._event(runs, rows, llm, mode, state.chain[pos])
        stage = (mode != _UNKNOWN_TOOL).astype(np.int64)
        state.errors[pos, stage] += 1
        again = state.errors[pos, stage] < state.limits[stage]
        self._die(runs[~again], rows[~again])
        state.feedback[pos[again]] = mode[again]
        state.by_human[pos[again]] = False
        return pos[again]

    def _pass(
        self,
        state: _Round,
        pos: np.ndarray,
        mode: np.ndarray,
        tool: np.ndarray,
        call: np.ndarray,
        llm: np.ndarray,
    ) -> None:
        """Calls that go to execution; silently wrong ones fail their run."""
        wrong = mode != NO_MODE
        runs = state.runs[pos[wrong]]
        self._event(runs, llm[wrong], llm[wrong], mode[wrong], state.chain[pos[wrong]])
        self.silent[runs] = True
        state.chain[pos[wrong]] = -1
        state.ready.append((pos, call, tool, mode))

    def _review(
        self,
        state: _Round,
        pos: np.ndarray,
        mode: np.ndarray,
        tool: np.ndarray,
        call: np.ndarray,
        llm: np.ndarray,
    ) -> np.ndarray:
        """Human checkpoint before calls of checkpoint tools; returns which calls were caught."""
        runs = state.runs[pos]
        review = self.checkpoint[tool] & (mode != _UNKNOWN_TOOL)
        lucky = self.rng.random(runs.size) < self.design.catch_rate
        caught = (
            review
            & _CATCHABLE[mode]
            & (mode != NO_MODE)
            & lucky
            & (state.redos[pos] < self.design.max_human_redos)
        )
        v = np.flatnonzero(review)
        rows = self._human(
            runs[v], caught[v], round=state.r, tool=tool[v], call=call[v], args_mode=mode[v]
        )
        c = caught[v]
        self._event(runs[v[c]], rows[c], llm[v[c]], mode[v[c]], state.chain[pos[v[c]]])
        state.redos[pos[caught]] += 1
        state.by_human[pos[caught]] = True
        state.feedback[pos[caught]] = FEEDBACK_HUMAN
        return caught

    def _execute(
        self, runs0: np.ndarray, r: int, call: np.ndarray, tool: np.ndarray, args_mode: np.ndarray
    ) -> None:
        """Execute valid tool calls, retrying transient errors with the same call."""
        acted = np.zeros(runs0.size, dtype=np.int64)
        p_side = self.world.p_side_effect_on_timeout

        def emit(pos: np.ndarray, runs: np.ndarray, mode: np.ndarray, attempt: int) -> np.ndarray:
            k = pos.size
            backoff = None
            if attempt > 1:
                backoff = (5e5 * 2 ** (attempt - 2) * self.rng.uniform(0.8, 1.2, k)).astype(
                    np.int64
                )
            side = self.non_idempotent[tool[pos]] & (
                (mode == NO_MODE) | ((mode == _TIMEOUT) & (self.rng.random(k) < p_side))
            )
            acted[pos] += side
            return self._tool(
                runs,
                mode,
                tool[pos],
                backoff,
                round=r,
                call=call[pos],
                args_mode=args_mode[pos],
                acted=side,
                fresh=attempt == 1,
                retry=attempt > 1,
            )

        self._attempts(runs0, "exec", self.design.attempts("tool_execution"), emit)
        self.duplicated[runs0[acted >= 2]] = True

    def answer(self) -> None:
        """Final LLM call of every live run: the answer."""
        runs0 = np.flatnonzero(self.completed)

        def emit(pos: np.ndarray, runs: np.ndarray, mode: np.ndarray, attempt: int) -> np.ndarray:
            return self._llm(
                runs,
                ROLE_FINAL,
                mode,
                520 + 160 * self.n_rounds[runs],
                120,
                fresh=attempt == 1,
                retry=attempt > 1,
            )

        pos, rows = self._attempts(
            runs0, "answer", self.design.attempts("response_synthesis"), emit
        )
        self.answer_row[runs0[pos]] = rows

    def roots(self) -> np.ndarray:
        """Root spans; return their rows."""
        runs = np.arange(self.world.n_runs)
        modes = self.spans.arrays()["mode"]
        died = ~self.completed
        end = self.t + self._gap(runs.size)
        return self.spans.add(
            run=runs,
            role=ROLE_ROOT,
            start=self.start,
            end=end,
            error=died,
            mode=np.where(died, modes[self.death_row], NO_MODE),
        )

    def result(self, root_row: np.ndarray) -> Simulation:
        """Freeze the state."""
        chain_by = np.zeros(self.chains.n, dtype=np.int8)
        for chains, by in self.fixed:
            chain_by[chains] = by
        return Simulation(
            spans=self.spans.arrays(),
            events=self.events.arrays(),
            chain_by=chain_by,
            completed=self.completed,
            silent=self.silent,
            duplicated=self.duplicated,
            death_row=self.death_row,
            answer_row=self.answer_row,
            root_row=root_row,
            rates=self.rates,
        )


def simulate(world: World, design: AgentDesign, pop: Population) -> Simulation:
    """Run every run of the world under the design."""
    engine = _Engine(world, design, pop)
    engine.plan()
    for r in range(world.max_rounds):
        engine.tool_round(r)
    engine.answer()
    return engine.result(engine.roots())
