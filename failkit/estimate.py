"""Today's agent design, estimated from its traces; and a backtest of that estimate.

:func:`estimate_design` turns the decision chains of :func:`failkit.steps` into a
:class:`~failkit.design.Design` that :func:`failkit.simulate` can evaluate and the levers can
change (``Design.from_store`` calls it).

**Runs of different length.** A design is a fixed sequence of stages, while a real run makes a
variable number of tool rounds (a round: choosing a tool and writing its arguments, then
executing it; a new round starts at each executed tool call that is not a repeat of the one
before). The estimate keeps rounds apart: ``planning`` (and the other run-level stages), then
``tool_selection``, ``parameter_extraction``, ``tool_execution`` for round 1, the same with
suffix ``_2`` for round 2, … up to the most rounds seen, then ``response_synthesis`` and
``overhead`` (time between steps). A run that makes only two rounds *skips* the later ones: a
skipped round succeeds at no cost, so each round stage's rates are mixtures — e.g. the
per-attempt failure rate of ``tool_execution_3`` is the share of runs *reaching* round 3's
slot that fail there (runs with two rounds count as reaching it, without failing). This keeps
per-round rates (later rounds belong to harder tasks and fail more) and makes the product of
the stage rates reproduce the observed success rate exactly (the product-limit estimate
telescopes), at three costs: the per-attempt cost and latency laws of a round stage hold a
zero atom for the runs that skip it (means are exact; quantiles are rougher); a lever changes
every round alike (apply it to all of :func:`stage_names`); and human work a lever adds
(checkpoint reviews, routed right outputs) must leave out the runs that skip the round —
each round stage carries its ``presence`` (:func:`round_shares`), which the simulator applies
to them.

**What each number is learnt from.** For each stage slot, among runs *at risk* there (no
failure yet): ``p_success`` — first attempts that neither raised an error nor were located as
the run's silent first failure (Jeffreys Beta posterior ``alpha`` / ``beta`` on the counts,
the point value is the observed share); ``p_detectable`` — errors among those failures.
Pooled over the rounds of a stage: ``p_recover`` — retries that recovered per retry observed
(geometric maximum likelihood; the retries already in the data); ``max_attempts`` — the most
attempts seen; ``p_transient`` (per slot) — chosen so that the share of errors left
unrecovered after ``max_attempts`` equals the observed one (without retries in the data: the
share of errors the stage rules call transient, and a retry is then a fresh attempt);
``backoff_s`` — waits before immediate repeats, at doubling backoff; ``idempotent`` /
``p_side_effect_on_failure`` — the non-idempotent tool patterns and the share of failed
attempts that may have acted;
``parse_failure_share`` — the share of the failures that ended runs (silent ones, errors left
after the retries) whose error reads as parse/format (:data:`PARSE_PATTERN`; a Design removes
that share of *all* the stage's failures, keeping their mix, so this is the share that moves
the success rate as removing parse errors does);
``n_tools`` (tool-selection stages) — distinct tools executed; ``calibration`` (LLM stages) —
empirical CDFs of the logged confidence of outputs in successful runs that raised nothing and
of outputs whose mistake raised an error (this assumes silent mistakes are as confident as
loud ones); human review
time and cost are folded into the stage reviewed. ``task_spread`` is fitted to the pass^k curve
of tasks with repeated trials (failure rates are then scaled by one common factor so that the
success rate stays the observed one). The per-round rates already carry some of the task
difficulty (hard tasks make more rounds), so a fitted spread counts some of it twice; measured
against synth (``benchmarks/counterfactuals.py``) it still predicts removing retries far better
than a spread of 0 (success 0.1 against 1.4 points off), at a small cost on the other levers.
``latency_s_failed`` / ``cost_usd_failed`` — per stage over its rounds, the attempts that raised
an error (a timeout lasts the timeout); their means are then matched to the failed time and
cost each slot really spent (:func:`_matched_failed_laws`).

**How it is computed.** In three steps, which Spark runs the same way on partitions of runs
(:meth:`failkit.spark.SparkBackend.design`): (a) each run is laid out on the slots and (b)
reduced to partial rows that merge across partitions — counts to sum, maxima, per-task counts,
confidences below each calibration threshold, and the samples of the latency and cost laws
(:func:`design_partials`, :func:`confidence_counts`); (c) the design is finalized from the
merged rows (:func:`merge_partials`, :func:`finalize_design`). Here all runs are one
partition.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from failkit.chains import Source, _steps_of, steps
from failkit.design import (
    CDF_POINTS,
    MAX_TASK_SPREAD,
    Calibration,
    Design,
    Dist,
    Stage,
    cdf_counts,
)
from failkit.errors import FailkitError
from failkit.reliability import pass_hat_k_counts, runs_frame
from failkit.schema import Outcome
from failkit.stages import STAGES
from failkit.store import TraceStore

ROUND_STAGES: tuple[str, ...] = ("tool_selection", "parameter_extraction", "tool_execution")
"""Stages repeated once per tool round."""
FINAL_STAGES: tuple[str, ...] = ("response_synthesis",)
"""Run-level stages placed after the rounds (the others come before them)."""
OVERHEAD = "overhead"
"""Name of the last stage: time between steps, never fails."""
PARSE_PATTERN = (
    r"json|pars(?:e|ing)|decod|malformed|should be a valid|_type\]|is not of type|type_error"
)
"""Errors that structured outputs remove (searched case-insensitively in type: message)."""
MIN_CONFIDENCES = 20
"""Fewest confidences of each kind (right, wrong) behind a calibration fit."""
BACKTEST_COLUMNS = [
    "metric", "predicted", "pred_low", "pred_high", "observed", "obs_low", "obs_high",
    "n_runs", "within",
]  # fmt: skip
_SKIP_KINDS = ("agent", "chain")
_ERROR_TEXT = ["error_type", "error_message"]
_GH = np.polynomial.hermite_e.hermegauss(41)


def stage_names(design: Design, stage: str) -> list[str]:
    """Names of ``stage`` in every round of an estimated design (``tool_execution``, ``_2``…)."""
    return [s.name for s in design.stages if _base(s.name) == stage]


def _flagged(keys: pd.Index | pd.Series, flags: pd.Series) -> np.ndarray:
    """Whether each key's flag (a boolean Series indexed by key) is true; absent keys are not."""
    return np.asarray(keys.isin(flags.index[flags.fillna(False).to_numpy(bool)]))


def round_of(name: str) -> int:
    """Tool round of a stage of an estimated design (0 for run-level stages)."""
    head, _, tail = name.rpartition("_")
    if tail.isdigit() and head in ROUND_STAGES:
        return int(tail)
    return 1 if name in ROUND_STAGES else 0


def _base(name: str) -> str:
    head, _, tail = name.rpartition("_")
    return head if tail.isdigit() and head in ROUND_STAGES else name


def _slot_name(stage: str, rnd: int) -> str:
    return stage if rnd <= 1 else f"{stage}_{rnd}"


def _working(st: pd.DataFrame) -> pd.DataFrame:
    """Steps that do work (no agent / chain wrappers), with their round and slot stage.

    Human steps take the slot of the next working step of their run.
    """
    w = st.loc[~st["kind"].isin(_SKIP_KINDS)].sort_values(["trace_id", "step"]).copy()
    execd = w["kind"].eq("tool") & w["stage"].eq("tool_execution")
    intent = w["intent_id"]
    prev = intent.where(execd).groupby(w["trace_id"]).shift()
    prev = prev.where(execd).groupby(w["trace_id"]).ffill()
    start = execd & (intent.isna() | (intent != prev).fillna(True))
    cum = start.astype(int).groupby(w["trace_id"]).cumsum()
    rnd = np.where(execd, cum, cum + 1)
    human = w["kind"].eq("human")
    stage = w["stage"].where(~human)
    w["round"] = pd.Series(np.where(stage.isin(ROUND_STAGES), rnd, 0), index=w.index)
    w["round"] = w["round"].where(~human)
    w["slot_stage"] = stage
    w[["slot_stage", "round"]] = w.groupby("trace_id")[["slot_stage", "round"]].bfill()
    w = w.dropna(subset=["slot_stage"])
    w["round"] = w["round"].astype(np.int64)
    w["error"] = w["status"].eq("error") & ~w["propagated"].fillna(False).astype(bool)
    return w


def _order(stages: Iterable[str], max_round: int) -> list[tuple[str, int]]:
    """Slots in design order: run-level stages, rounds, final stages."""
    present = set(stages)
    before = [(s, 0) for s in STAGES if s in present and s not in ROUND_STAGES + FINAL_STAGES]
    rounds = [(s, r) for r in range(1, max_round + 1) for s in ROUND_STAGES]
    after = [(s, 0) for s in FINAL_STAGES if s in present]
    return before + rounds + after


def _parse_errors(w: pd.DataFrame) -> pd.Series:
    """Which working steps raised a parse/format error (:data:`PARSE_PATTERN`)."""
    e = w.loc[w["error"]]
    text = e["error_type"].fillna("") + ": " + e["error_message"].fillna("")
    hit = text.str.contains(PARSE_PATTERN, case=False, regex=True)
    return pd.Series(False, index=w.index).where(~w["error"], hit).astype(bool)


def _occurrences(w: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, slot): steps, errors, retries, totals."""
    w = w.assign(
        rec=w["recovered"].fillna(False).astype(bool) | ~w["error"],
        maybe=w["error"] & w["side_effect"].eq("maybe"),
        dur=w["duration_s"].fillna(0.0),
        cost=w["cost_usd"].fillna(0.0),
        err_dur=w["duration_s"].fillna(0.0).where(w["error"], 0.0),
        err_cost=w["cost_usd"].fillna(0.0).where(w["error"], 0.0),
        parse=_parse_errors(w),
        trans=w["error"] & w["transient"].fillna(False).astype(bool),
    )
    g = w.groupby(["trace_id", "slot_stage", "round"], sort=False)
    occ = g.agg(
        n_err=("error", "sum"),
        all_rec=("rec", "all"),
        n_maybe=("maybe", "sum"),
        n_parse=("parse", "sum"),
        n_trans=("trans", "sum"),
        duration_s=("dur", "sum"),
        cost_usd=("cost", "sum"),
        err_duration_s=("err_dur", "sum"),
        err_cost_usd=("err_cost", "sum"),
    ).reset_index()
    occ["failed"] = occ["n_err"] > 0
    occ["stopped"] = occ["failed"] & ~occ["all_rec"]
    occ["parse_stop"] = occ["stopped"] & (occ["n_parse"] > 0)
    occ["attempts"] = occ["n_err"] + (~occ["stopped"]).astype(np.int64)
    return occ


def _net(p: np.ndarray, stage: Stage) -> np.ndarray:
    """Chance that a stage does not fail the run, per attempt success ``p``."""
    r = p if stage.p_recover is None else stage.p_recover
    retried = 1.0 - (1.0 - r) ** (stage.max_attempts - 1)
    return p + (1.0 - p) * stage.p_detectable * stage.p_transient * retried


def _spread_success(stages: Sequence[Stage], spread: float, factor: float = 1.0) -> np.ndarray:
    """P(run succeeds | z) at the Gauss-Hermite nodes, failure rates times ``factor``."""
    z, _ = _GH
    w = _GH[1] / _GH[1].sum()
    out = np.ones_like(z)
    for s in stages:
        p = float(np.clip(1.0 - (1.0 - s.p_effective) * factor, 0.0, 1.0))
        if 0.0 < p < 1.0 and spread > 0:
            c = optimize.brentq(
                lambda c, p=p: float(w @ special.expit(c + spread * z)) - p, -60.0, 60.0
            )
            pz = special.expit(c + spread * z)
        else:
            pz = np.full_like(z, p)
        out *= _net(pz, s)
    return out


def _fit_spread(stages: Sequence[Stage], tasks: pd.DataFrame) -> tuple[float, float]:
    """(task_spread, failure factor) matching pass^k with the success rate kept.

    ``tasks``: tasks by judged runs ``n`` and successes ``c`` (:func:`task_histogram`).
    """
    n = np.repeat(tasks["n"].to_numpy(float), tasks["tasks"].to_numpy(np.int64))
    c = np.repeat(tasks["c"].to_numpy(float), tasks["tasks"].to_numpy(np.int64))
    curve = pass_hat_k_counts(n, c, ks=range(1, 9), n_boot=1)
    curve = curve.loc[curve["n_tasks"] >= 10]
    if len(curve) < 2:
        return 0.0, 1.0
    w = _GH[1] / _GH[1].sum()
    target = float(_spread_success(stages, 0.0) @ w)
    ks = curve["k"].to_numpy()
    obs = curve["pass_hat_k"].to_numpy()

    def factor(spread: float) -> float:
        def gap(f: float) -> float:
            return float(_spread_success(stages, spread, f) @ w) - target

        lo, hi = 1e-3, 5.0
        if gap(lo) * gap(hi) > 0:
            return 1.0
        return float(optimize.brentq(gap, lo, hi, xtol=1e-6))

    def loss(spread: float) -> float:
        s = _spread_success(stages, spread, factor(spread))
        return float(np.sum((np.array([w @ s**k for k in ks]) - obs) ** 2))

    best = optimize.minimize_scalar(
        loss, bounds=(0.0, MAX_TASK_SPREAD), method="bounded", options={"xatol": 1e-3}
    )
    spread = float(best.x) if loss(float(best.x)) < loss(0.0) else 0.0
    return spread, factor(spread) if spread > 0 else 1.0


@dataclass(frozen=True)
class Chains:
    """The runs laid out on the slots of a design, all at once (compounding, round shares).

    Attributes:
        runs: the runs with working steps.
        working: their working steps with ``round`` and ``slot_stage``.
        occ: one row per run and slot occurrence (:func:`_occurrences`) with ``pos``.
        slots: (stage, round) in design order.
        first: per failed run, its first-failure step with ``pos`` and ``silent``.
        idx: ``runs.trace_id`` as an index.
        first_pos, stop_pos: per run, slot of the first failure / of the error that stopped it
            (``len(slots)`` for none).
        silent_at: per run, its first failure is silent.
        rounds: per run, tool rounds made.
    """

    runs: pd.DataFrame
    working: pd.DataFrame
    occ: pd.DataFrame
    slots: list[tuple[str, int]]
    first: pd.DataFrame
    idx: pd.Index
    first_pos: np.ndarray
    stop_pos: np.ndarray
    silent_at: np.ndarray
    rounds: np.ndarray

    @classmethod
    def of(cls, st: pd.DataFrame, runs: pd.DataFrame) -> Chains:
        """Lay out the steps ``st`` of ``runs``.

        Raises:
            FailkitError: no working step, or ``runs`` lacks a needed column.
        """
        w = _working(st)
        if w.empty:
            raise FailkitError("no working steps (llm, tool, …) to estimate a design from")
        runs = runs_frame(runs, ["trace_id", "duration_s", "cost_usd"])
        runs = runs.loc[runs["trace_id"].isin(w["trace_id"].unique())].reset_index(drop=True)
        occ = _occurrences(w)
        slots = _order(occ["slot_stage"].unique(), int(w["round"].max()))
        pos = {s: i for i, s in enumerate(slots)}
        keys = list(zip(occ["slot_stage"], occ["round"], strict=True))
        occ = occ.loc[[k in pos for k in keys]].assign(pos=[pos[k] for k in keys if k in pos])
        never = len(slots)
        first = w.loc[w["is_first_failure"]]
        first = (
            first.assign(
                pos=[
                    pos.get(k, never) for k in zip(first["slot_stage"], first["round"], strict=True)
                ],
                silent=first["heuristic"].notna(),
            )
            .drop_duplicates("trace_id")
            .set_index("trace_id")
        )
        ids = runs["trace_id"]
        stops = occ.loc[occ["stopped"]].groupby("trace_id")["pos"].min()
        rounds = w.loc[w["slot_stage"].isin(ROUND_STAGES)].groupby("trace_id")["round"].max()
        return cls(
            runs=runs,
            working=w,
            occ=occ,
            slots=slots,
            first=first,
            idx=pd.Index(ids),
            first_pos=ids.map(first["pos"]).fillna(never).to_numpy(),
            stop_pos=ids.map(stops).fillna(never).to_numpy(),
            silent_at=_flagged(ids, first["silent"]),
            rounds=ids.map(rounds).fillna(0).to_numpy(np.int64),
        )

    def round_shares(self) -> pd.DataFrame:
        """Per tool round: runs that reached its slot, and the share of them that made it.

        Returns:
            ``round``, ``n_reached``, ``n_made``, ``presence``.
        """
        rows = []
        for j, (stage, rnd) in enumerate(self.slots):
            if stage == ROUND_STAGES[0]:
                reached = self.stop_pos >= j
                made = int((reached & (self.rounds >= rnd)).sum())
                n = int(reached.sum())
                rows.append((rnd, n, made, made / n if n else np.nan))
        return pd.DataFrame(rows, columns=["round", "n_reached", "n_made", "presence"])


def round_shares(store: TraceStore) -> pd.DataFrame:
    """Per tool round of the estimated design: how many runs reaching it make it.

    ``presence`` is what :func:`estimate_design` puts on the round's stages
    (:attr:`~failkit.design.Stage.presence`).

    Returns:
        ``round``, ``n_reached``, ``n_made``, ``presence``.
    """
    return Chains.of(steps(store), store.traces_df()).round_shares()


PARTIAL_COLUMNS = ["part", "stage", "round", "item", "key", "key2", "name", "value"]
"""Columns of :func:`design_partials` (see there)."""
_KEYS = {"stage": "", "round": 0, "item": 0, "key": "", "key2": ""}
_BEFORE = tuple(s for s in STAGES if s not in ROUND_STAGES + FINAL_STAGES)
_LAWS = {"duration_s": "latency_s", "cost_usd": "cost_usd"}
OVERHEAD_LATENCY = "overhead_latency_s"
"""Law of the overhead stage's time; runs that waited before retries settle it last
(:func:`settle_waits`)."""


def slot_rank(stage: Sequence[str] | pd.Series, rnd: Sequence[int] | pd.Series) -> np.ndarray:
    """Place of each (stage, round) slot in design order (:func:`_order`).

    The same in every design, whichever slots it has, so runs can be laid out apart; ``inf``
    for stages no design lays out (and for ``""``: no slot).
    """
    s = np.asarray(stage, dtype=object)
    r = np.asarray(rnd, dtype=float)
    out = np.full(s.shape, np.inf)
    for i, name in enumerate(_BEFORE):
        out[s == name] = i
    for i, name in enumerate(ROUND_STAGES):
        hit = s == name
        out[hit] = len(_BEFORE) + (r[hit] - 1) * len(ROUND_STAGES) + i
    for i, name in enumerate(FINAL_STAGES):
        out[s == name] = 1e15 + i
    return out


def _rows(part: str, frame: pd.DataFrame, values: Sequence[str]) -> pd.DataFrame:
    """``frame`` (key columns of :data:`PARTIAL_COLUMNS` and ``values``), one row per value."""
    keys = [c for c in _KEYS if c in frame.columns]
    long = frame.melt(id_vars=keys, value_vars=list(values), var_name="name", value_name="value")
    return _filled(long.assign(part=part))


def _sums(frame: pd.DataFrame, by: list[str], columns: list[str], how: str = "sum") -> pd.DataFrame:
    """Partial ``count`` rows (``max`` rows for ``how="max"``) of ``columns`` per ``by``."""
    grouped = frame.groupby(by, as_index=False)[columns].agg(how)
    return _rows("max" if how == "max" else "count", grouped, columns)


def _samples(law: str, values: np.ndarray | pd.Series, **keys: object) -> pd.DataFrame:
    columns = {k: v.to_numpy() if isinstance(v, pd.Series) else v for k, v in keys.items()}
    frame = pd.DataFrame({"value": np.asarray(values, float), **columns})
    return _filled(frame.assign(part="sample", name=law))


def _filled(frame: pd.DataFrame) -> pd.DataFrame:
    """Partial rows with the key columns ``frame`` lacks at their defaults."""
    return frame.assign(**{k: v for k, v in _KEYS.items() if k not in frame.columns})[
        PARTIAL_COLUMNS
    ]


def _partial_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PARTIAL_COLUMNS)
    return out.astype(
        {"part": str, "stage": str, "round": "int64", "item": "int64", "key": str, "key2": str}
        | {"name": str, "value": "float64"}
    )


DESIGN_COLUMNS = [
    "trace_id", "step", "span_id", "kind", "stage", "tool_name", "status", "error_type",
    "error_message", "start_time", "duration_s", "cost_usd", "attempt", "is_first_failure",
    "cause_span_id", "transient", "recovered", "propagated", "intent_id", "side_effect",
    "heuristic",
]  # fmt: skip
"""Step columns the design reads."""


def design_partials(st: pd.DataFrame) -> pd.DataFrame:
    """What whole runs' steps contribute to their design, in rows that merge across partitions.

    Steps (a) and (b) of the estimate: each run is laid out on the slots of the design
    (:func:`slot_rank` orders them without knowing the others), then reduced to rows of
    :data:`PARTIAL_COLUMNS` by ``part``: ``count`` (summed by :func:`merge_partials`), ``max``
    (maximum), ``sample`` (one value of the law ``name`` of a slot or stage: laws need their
    whole sample, which :class:`LocalSamples` or Spark reduce; ``item`` 1 marks the totals of
    occurrences that stopped the run, used when nothing else reaches the slot), ``pending``
    (waits before retries, :func:`settle_waits`), ``run`` (per run ``key`` its step time and
    cost, for :func:`run_partials`) and ``candidate`` (an LLM output, ``key`` trace and ``key2``
    span, of a successful run that raised nothing, ``name`` ``ok``, or whose mistake raised an
    error, ``wrong``: its logged confidence goes to :func:`confidence_counts`).

    Args:
        st: the :func:`failkit.steps` of whole runs.
    """
    w = _working(st[[c for c in st.columns if c in DESIGN_COLUMNS]])
    if w.empty:
        return _partial_frame([])
    ids = pd.Series(w["trace_id"].unique())
    occ = _occurrences(w)
    occ = occ.assign(rank=slot_rank(occ["slot_stage"], occ["round"]))
    occ = occ.loc[np.isfinite(occ["rank"])].rename(columns={"slot_stage": "stage"})
    first = w.loc[w["is_first_failure"]].drop_duplicates("trace_id").set_index("trace_id")
    first = first.assign(
        rank=slot_rank(first["slot_stage"], first["round"]), silent=first["heuristic"].notna()
    )
    stops = occ.loc[occ["stopped"]].sort_values("rank", kind="stable")
    stops = stops.drop_duplicates("trace_id").set_index("trace_id")
    rounds = w.loc[w["slot_stage"].isin(ROUND_STAGES)].groupby("trace_id")["round"].max()
    first_rank = occ["trace_id"].map(first["rank"]).fillna(np.inf)
    reach = occ["trace_id"].map(stops["rank"]).fillna(np.inf) >= occ["rank"]
    at_risk = first_rank >= occ["rank"]
    slot = ["stage", "round"]
    every = occ.assign(
        n_occ=1,
        det=occ["failed"] & at_risk,
        unrec=occ["stopped"] & at_risk,
        occ_reach=reach,
        ok_n=reach & ~occ["stopped"],
    )
    failed = _failed_time(occ).assign(
        n_failed=1, retries=lambda f: f["n_err"] - 1 + f["all_rec"].astype(np.int64)
    )
    failed_sums = [
        "n_failed", "n_err", "retries", "all_rec", "n_trans", "stopped", "n_maybe",
        "parse_stop", "failed_duration_s", "failed_cost_usd",
    ]  # fmt: skip
    fr = first.loc[np.isfinite(first["rank"]), ["slot_stage", "round", "silent"]]
    fr = fr.rename(columns={"slot_stage": "stage"})
    stop_of = pd.DataFrame(
        {
            "stage": ids.map(stops["stage"]).fillna(""),
            "round": ids.map(stops["round"]).fillna(0),
            "item": ids.map(rounds).fillna(0),
            "stop_n": 1,
        }
    )
    ws = w[["trace_id", "slot_stage", "kind", "error", "cause_span_id", "side_effect"]]
    ws = ws.rename(columns={"slot_stage": "stage"})
    llm = st.loc[st["kind"].eq("llm"), ["trace_id", "span_id", "status"]]
    llm_ids = pd.MultiIndex.from_frame(llm[["trace_id", "span_id"]])
    caused = ws["error"] & pd.MultiIndex.from_arrays([ws["trace_id"], ws["cause_span_id"]]).isin(
        llm_ids
    )
    tools = w.loc[w["kind"].eq("tool") & w["stage"].eq("tool_execution"), "tool_name"]
    ws = ws.assign(n_side=ws["side_effect"].notna(), n_llm=ws["kind"].eq("llm") | caused)
    parts = [
        _sums(every, slot, ["n_occ", "det", "unrec", "occ_reach", "ok_n"]),
        _sums(failed, slot, failed_sums),
        _sums(occ, slot, ["attempts"], "max"),
        _sums(fr.assign(first_n=1), slot, ["first_n", "silent"]),
        _sums(stop_of, [*slot, "item"], ["stop_n"]),
        _sums(ws, ["stage"], ["n_side", "n_llm"]),
        _sums(pd.DataFrame({"key": tools, "tool": 1}), ["key"], ["tool"]),
    ]
    parts += _backoff_partials(w)
    ok = occ.loc[reach]
    for column, law in _LAWS.items():
        value = ok[column].where(ok["stopped"], (ok[column] - ok[f"err_{column}"]).clip(lower=0))
        parts.append(
            _samples(f"ok_{law}", value, stage=ok["stage"], round=ok["round"], item=ok["stopped"])
        )
        n = failed["n_err"].to_numpy(np.int64)
        each = np.repeat(failed[f"failed_{column}"].to_numpy() / n, n)
        parts.append(_samples(f"failed_{law}", each, stage=np.repeat(failed["stage"], n)))
    success = ids.loc[~np.isfinite(ids.map(first["rank"]).fillna(np.inf))]
    errors = st.loc[st["status"].eq("error")]
    raised = (
        pd.MultiIndex.from_frame(llm[["trace_id", "span_id"]]).isin(
            pd.MultiIndex.from_arrays([errors["trace_id"], errors["cause_span_id"]])
        )
        | llm["status"].eq("error").to_numpy()
    )
    kind = np.where(raised, "wrong", np.where(llm["trace_id"].isin(success), "ok", ""))
    cand = pd.DataFrame(
        {"key": llm["trace_id"], "key2": llm["span_id"], "name": kind, "value": 0.0}
    ).loc[kind != ""]
    parts.append(_filled(cand.assign(part="candidate")))
    return _partial_frame(parts)


def _backoff_partials(w: pd.DataFrame) -> list[pd.DataFrame]:
    """Waits before immediate repeats, and each run's step time and cost.

    A repeat's wait, less the usual gap between steps (the median of the others: a ``gap``
    sample), is scaled to the first retry by the doubling backoff; per stage the partial sums
    ``again_n``, ``again_s1`` (gaps scaled) and ``again_s2`` (scales) give the mean. A run's
    overhead is its time less its steps' (``run`` rows, :func:`run_partials`) and its waits at
    that backoff (``pending`` rows: per repeat its stage and backoff multiple).
    """
    nxt = w.groupby("trace_id")[["intent_id", "start_time", "attempt"]].shift(-1)
    again = (
        w["error"] & nxt["intent_id"].notna() & (nxt["intent_id"] == w["intent_id"]).fillna(False)
    )
    end = w["start_time"] + pd.to_timedelta(w["duration_s"].fillna(0.0), unit="s")
    gap = (nxt["start_time"] - end).dt.total_seconds()
    scale = np.exp2(nxt["attempt"].astype(float) - 2)
    rep = pd.DataFrame({"key": w["trace_id"], "stage": w["slot_stage"], "gap": gap, "j": scale})
    rep = rep.loc[again]
    seen = rep.loc[rep["gap"].notna()]
    sums = seen.assign(again_n=1, again_s1=seen["gap"] / seen["j"], again_s2=1.0 / seen["j"])
    per_run = w.groupby("trace_id", as_index=False)[["duration_s", "cost_usd"]].sum()
    per_run = per_run.rename(
        columns={"trace_id": "key", "duration_s": "step_time", "cost_usd": "step_cost"}
    ).assign(waited=lambda r: r["key"].isin(rep["key"]))
    return [
        _samples("gap", gap.loc[~again].dropna()),
        _rows("count", pd.DataFrame({"not_again": [int((~again).sum())]}), ["not_again"]),
        _sums(sums, ["stage"], ["again_n", "again_s1", "again_s2"]),
        _filled(
            rep[["key", "stage"]].assign(part="pending", name=OVERHEAD_LATENCY, value=rep["j"])
        ),
        _rows("run", per_run, ["step_time", "step_cost", "waited"]),
    ]


RUN_COLUMNS = ["trace_id", "step_time", "step_cost", "waited"]
"""Columns of :func:`run_frame`: per run, from its steps."""


def run_frame(parts: pd.DataFrame) -> pd.DataFrame:
    """The ``run`` rows of :func:`design_partials` as one row per run (:data:`RUN_COLUMNS`)."""
    rows = parts.loc[parts["part"].eq("run")]
    wide = rows.pivot(index="key", columns="name", values="value")
    wide = wide.reindex(columns=RUN_COLUMNS[1:]).rename_axis(None, axis=1)
    return wide.rename_axis("trace_id").reset_index().astype({"waited": bool})


def run_partials(runs: pd.DataFrame) -> pd.DataFrame:
    """What each run itself contributes: its overhead time and cost, and its task's counts.

    Args:
        runs: :func:`run_frame` joined with the runs' ``duration_s``, ``cost_usd`` (and
            ``task_id``, ``outcome`` for the task spread): one row per run with working steps.
    """
    before = runs["duration_s"] - runs["step_time"].fillna(0.0)
    waited = runs["waited"].to_numpy(bool)
    cost = (runs["cost_usd"].fillna(0.0) - runs["step_cost"].fillna(0.0)).clip(lower=0.0)
    pending = pd.DataFrame({"key": runs["trace_id"][waited], "value": before[waited]})
    return _partial_frame(
        [
            _rows("count", pd.DataFrame({"n_runs": [len(runs)]}), ["n_runs"]),
            _samples(OVERHEAD_LATENCY, before[~waited].clip(lower=0.0).fillna(0.0)),
            _samples("overhead_cost_usd", cost),
            _filled(pending.assign(part="pending", name=OVERHEAD_LATENCY)),
            _task_partials(runs),
        ]
    )


def _task_partials(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task: judged runs ``n`` and successes ``c`` (for the pass^k curve)."""
    if not {"task_id", "outcome"} <= set(runs.columns):
        return _partial_frame([])
    known = runs.loc[runs["outcome"].isin([Outcome.SUCCESS.value, Outcome.FAILURE.value])]
    known = known.loc[known["task_id"].notna()]
    ok = known["outcome"].eq(Outcome.SUCCESS.value).astype(np.int64)
    per = ok.groupby(known["task_id"].astype(str)).agg(["size", "sum"])
    per = per.rename(columns={"size": "n", "sum": "c"}).rename_axis("key").reset_index()
    return _rows("task", per, ["n", "c"])


def confidence_counts(candidates: pd.DataFrame) -> pd.DataFrame:
    """Partial ``count`` rows of the calibration from candidates with their ``confidence``.

    Per kind (``key`` ``ok`` / ``wrong``): ``conf_n`` confidences, and ``conf_below`` at each
    threshold ``item`` of :data:`~failkit.design.CDF_POINTS` — the empirical CDFs merge by
    summing these counts.
    """
    known = candidates.loc[candidates["confidence"].notna()]
    parts = []
    for kind, g in known.groupby("name"):
        below = cdf_counts(g["confidence"].to_numpy(float))
        parts += [
            _rows("count", pd.DataFrame({"key": [kind], "conf_n": [len(g)]}), ["conf_n"]),
            _rows(
                "count",
                pd.DataFrame({"key": kind, "item": np.arange(below.size), "conf_below": below}),
                ["conf_below"],
            ),
        ]
    return _partial_frame(parts)


def merge_partials(parts: pd.DataFrame) -> pd.DataFrame:
    """``count`` rows summed and ``max`` rows maximized over partitions, per key and name."""
    keys = ["part", "stage", "round", "item", "key", "name"]
    merged = [
        parts.loc[parts["part"].eq(part)]
        .groupby(keys, as_index=False, sort=False)["value"]
        .agg(how)
        for part, how in (("count", "sum"), ("max", "max"))
    ]
    return pd.concat(merged, ignore_index=True)


def task_histogram(tasks: pd.DataFrame) -> pd.DataFrame:
    """Tasks by judged runs and successes, from partial ``task`` rows: ``n``, ``c``, ``tasks``."""
    if tasks.empty:
        return pd.DataFrame({"n": [], "c": [], "tasks": []}).astype({"tasks": "int64"})
    per = tasks.pivot_table(index="key", columns="name", values="value", aggfunc="sum")
    per = per.reindex(columns=["n", "c"], fill_value=0.0)
    return per.groupby(["n", "c"]).size().rename("tasks").reset_index()


@dataclass(frozen=True)
class Law:
    """A law to build from the samples of a slot: rows ``name``/``stage``/``round``/``item``,
    with ``zeros`` zero values more (runs that reach the slot without an occurrence)."""

    name: str
    stage: str = ""
    round: int = 0
    item: int = 0
    zeros: int = 0


class Samples(Protocol):
    """Where the samples of :func:`design_partials` are (rows ``sample`` and ``pending``)."""

    def median(self, name: str) -> float:
        """Median of the law ``name`` (NaN when it has no value)."""
        ...

    def dists(self, laws: Sequence[Law], backoff: dict[str, float]) -> list[Dist]:
        """:meth:`Dist.from_sample` of each law, the pending overhead settled at ``backoff``."""
        ...


def settle_waits(pending: pd.DataFrame, backoff: dict[str, float]) -> pd.Series:
    """Overhead time of the runs that waited: time before waits less the waits at ``backoff``
    (seconds before the first retry, per stage), clipped at 0 (0 when unknown)."""
    base = pending.loc[pending["stage"].eq("")].set_index("key")["value"]
    waits = pending.loc[pending["stage"].ne("")]
    wait = (waits["stage"].map(backoff).astype(float) * waits["value"]).groupby(waits["key"]).sum()
    return (base - wait.reindex(base.index).fillna(0.0)).clip(lower=0.0).fillna(0.0)


class LocalSamples:
    """The samples of a pandas frame of partial rows."""

    def __init__(self, parts: pd.DataFrame) -> None:
        self.rows = parts.loc[parts["part"].eq("sample")]
        self.pending = parts.loc[parts["part"].eq("pending")]

    def median(self, name: str) -> float:
        """Median of the law ``name`` (NaN when it has no value)."""
        return float(self.rows.loc[self.rows["name"].eq(name), "value"].median())

    def dists(self, laws: Sequence[Law], backoff: dict[str, float]) -> list[Dist]:
        """:meth:`Dist.from_sample` of each law, the pending overhead settled at ``backoff``."""
        settled = _samples(OVERHEAD_LATENCY, settle_waits(self.pending, backoff))
        rows = pd.concat([self.rows, settled], ignore_index=True)
        groups = rows.groupby(["name", "stage", "round", "item"])["value"]
        have = groups.indices
        out = []
        for law in laws:
            key = (law.name, law.stage, law.round, law.item)
            values = groups.get_group(key).to_numpy() if key in have else np.empty(0)
            out.append(Dist.from_sample(np.concatenate([values, np.zeros(law.zeros)])))
        return out


def estimate_design(
    source: Source,
    runs: pd.DataFrame,
    *,
    name: str = "observed",
    task_spread: float | Literal["fit"] = "fit",
    confidence: pd.DataFrame | None = None,
    runs_per_part: int = 200_000,
) -> Design:
    """Estimate today's design from the steps of its runs (see the module docstring).

    The runs are cut into partitions of ``runs_per_part`` runs for :func:`design_partials`
    (which bounds the memory it takes beside the steps), merged (:func:`merge_partials`) and
    finalized (:func:`finalize_design`) as Spark does.

    Args:
        source: a TraceStore, spans DataFrame or :func:`failkit.steps` frame.
        runs: one row per run with ``trace_id``, ``duration_s``, ``cost_usd`` and, for the
            task spread fit, ``task_id`` and ``outcome`` (``store.traces_df()``).
        name: the design's name.
        task_spread: ``"fit"`` (from the pass^k curve when tasks have repeated trials) or a
            value.
        confidence: logged confidences, ``trace_id``, ``span_id``, ``confidence`` (from a store:
            :func:`confidences`), for the calibration fit; by default the steps' own
            ``confidence`` column when they have one.
        runs_per_part: runs per partition (the result is the same up to the order of float
            sums).

    Raises:
        FailkitError: no run has a working step.
    """
    st = _steps_of(source)
    if confidence is None and "confidence" in st.columns:
        confidence = st[["trace_id", "span_id", "confidence"]]
    runs = runs_frame(runs, ["trace_id", "duration_s", "cost_usd"])
    read = [c for c in st.columns if c in DESIGN_COLUMNS]
    st = st.loc[st["trace_id"].isin(runs["trace_id"]), read]
    run = pd.factorize(st["trace_id"])[0]
    parts = pd.concat(
        [
            design_partials(st.loc[(run >= first) & (run < first + runs_per_part)])
            for first in range(0, max(run.max(initial=0) + 1, 1), runs_per_part)
        ],
        ignore_index=True,
    )
    per_run = run_frame(parts).merge(runs.drop(columns=RUN_COLUMNS[1:], errors="ignore"))
    parts = pd.concat([parts, run_partials(per_run)], ignore_index=True)
    counts = parts.loc[parts["part"].isin(["count", "max"])]
    if confidence is not None:
        cand = parts.loc[parts["part"].eq("candidate")]
        with_conf = cand.merge(
            confidence[["trace_id", "span_id", "confidence"]].rename(
                columns={"trace_id": "key", "span_id": "key2"}
            ),
            on=["key", "key2"],
        )
        counts = pd.concat([counts, confidence_counts(with_conf)], ignore_index=True)
    return finalize_design(
        merge_partials(counts),
        task_histogram(parts.loc[parts["part"].eq("task")]),
        LocalSamples(parts),
        name=name,
        task_spread=task_spread,
    )


def finalize_design(
    counts: pd.DataFrame,
    tasks: pd.DataFrame,
    samples: Samples,
    *,
    name: str = "observed",
    task_spread: float | Literal["fit"] = "fit",
) -> Design:
    """Step (c) of the estimate: the design from merged partial counts and the samples.

    Args:
        counts: :func:`merge_partials` of every partition's ``count`` and ``max`` rows (with
            :func:`confidence_counts`).
        tasks: :func:`task_histogram` of every partition's ``task`` rows.
        samples: where the ``sample`` and ``pending`` rows are.
        name, task_spread: as in :func:`estimate_design`.

    Raises:
        FailkitError: no run has a working step.
    """
    table = dict(
        zip(
            zip(*(counts[c] for c in ("name", "stage", "round", "item", "key")), strict=True),
            counts["value"],
            strict=True,
        )
    )

    def get(what: str, stage: str = "", rnd: int = 0, item: int = 0, key: str = "") -> float:
        return float(table.get((what, stage, rnd, item, key), 0.0))

    def entries(what: str) -> list[tuple[tuple, float]]:
        return [(k[1:], v) for k, v in table.items() if k[0] == what]

    n_runs = int(get("n_runs"))
    if not n_runs:
        raise FailkitError("no working steps (llm, tool, …) to estimate a design from")
    present = [k[:2] for k, _ in entries("n_occ")]
    max_round = max((r for s, r in present if s in ROUND_STAGES), default=0)
    slots = _order({s for s, _ in present}, max_round)
    ranks = slot_rank([s for s, _ in slots], [r for _, r in slots])
    first = entries("first_n")
    first_rank = slot_rank([k[0] for k, _ in first], [k[1] for k, _ in first])
    first_n = np.array([v for _, v in first])
    stop = entries("stop_n")
    stop_rank = slot_rank([k[0] for k, _ in stop], [k[1] for k, _ in stop])
    stop_rounds = np.array([k[2] for k, _ in stop])
    stop_n = np.array([v for _, v in stop])

    def pooled(stage: str, what: str, how: str = "count") -> float:
        values = [v for k, v in entries(what) if k[0] == stage]
        return max(values) if how == "max" else float(sum(values))

    pools = {
        s: _pooled(
            {c: pooled(s, c) for c in _POOLED_COUNTS} | {"attempts": pooled(s, "attempts", "max")}
        )
        for s in {s for s, _ in present}
    }
    normal = samples.median("gap") if get("not_again") else 0.0
    backoff = {
        s: max(0.0, (get("again_s1", s) - normal * get("again_s2", s)) / n)
        for (s, *_), n in entries("again_n")
        if n
    }
    reach = [float(stop_n[stop_rank >= r].sum()) for r in ranks]
    ok_laws = []
    for j, (stage, rnd) in enumerate(slots):
        zeros = int(reach[j] - get("occ_reach", stage, rnd))
        item = 0 if get("ok_n", stage, rnd) + zeros else 1  # else the totals that stopped
        ok_laws.append([Law(f"ok_{law}", stage, rnd, item, zeros) for law in _LAWS.values()])
    failed_stages = sorted({s for s, _ in present if pooled(s, "n_failed")})
    failed_laws = {s: [Law(f"failed_{law}", s) for law in _LAWS.values()] for s in failed_stages}
    over = [Law(OVERHEAD_LATENCY), Law("overhead_cost_usd")]
    wanted = [law for laws in (*ok_laws, *failed_laws.values(), over) for law in laws]
    built = dict(zip(wanted, samples.dists(wanted, backoff), strict=True))
    n_tools = len(entries("tool"))
    calibration = _calibration(get)
    stages = []
    for j, (stage, rnd) in enumerate(slots):
        n = n_runs - int(first_n[first_rank < ranks[j]].sum())
        det = int(get("det", stage, rnd))
        unrec = int(get("unrec", stage, rnd))
        sil = int(get("silent", stage, rnd))
        fails = det + sil
        pool = pools[stage]
        made = float(stop_n[(stop_rank >= ranks[j]) & (stop_rounds >= rnd)].sum())
        lat, cost = (built[law] for law in ok_laws[j])
        lat_failed, cost_failed = (
            (built[law] for law in failed_laws[stage]) if stage in failed_laws else (None, None)
        )
        stages.append(
            Stage(
                name=_slot_name(stage, rnd),
                p_success=1.0 - fails / n if n else 1.0,
                alpha=n - fails + 0.5,
                beta=fails + 0.5,
                p_detectable=det / fails if fails else pool["p_detectable"],
                p_transient=_transient(unrec / det, pool) if det else pool["p_transient"],
                p_recover=pool["p_recover"],
                max_attempts=pool["max_attempts"],
                backoff_s=backoff.get(stage, 0.0),
                idempotent=pool["idempotent"],
                p_side_effect_on_failure=pool["p_side_effect"],
                parse_failure_share=pool["parse_share"],
                latency_s=lat,
                cost_usd=cost,
                latency_s_failed=lat_failed,
                cost_usd_failed=cost_failed,
                n_tools=n_tools if stage == "tool_selection" and n_tools else None,
                calibration=calibration if pooled(stage, "n_llm") else None,
                presence=made / reach[j] if rnd and reach[j] else 1.0,
            )
        )
    over_t, over_c = (built[law] for law in over)
    stages.append(Stage(name=OVERHEAD, p_success=1.0, latency_s=over_t, cost_usd=over_c))
    spread = task_spread
    if spread == "fit":
        spread, factor = _fit_spread(stages, tasks)
        stages = [_scaled(s, factor) for s in stages]
    per_slot = {
        j: (get("failed_duration_s", *slot) / n_runs, get("failed_cost_usd", *slot) / n_runs)
        for j, slot in enumerate(slots)
        if get("n_failed", *slot)
    }
    stages = _matched_failed_laws(stages, float(spread), per_slot)
    return Design(name=name, stages=tuple(stages), task_spread=float(spread))


_POOLED_COUNTS = [
    "n_failed", "n_err", "retries", "all_rec", "n_trans", "stopped", "n_maybe", "parse_stop",
    "silent", "n_side",
]  # fmt: skip


def _calibration(get: Callable[..., float]) -> Calibration | None:
    """Empirical confidence CDFs of LLM outputs of successful runs that raised nothing, vs
    outputs whose mistake raised an error (:meth:`Calibration.from_counts`), when each kind
    has :data:`MIN_CONFIDENCES`."""
    n_ok, n_wrong = get("conf_n", key="ok"), get("conf_n", key="wrong")
    if n_ok < MIN_CONFIDENCES or n_wrong < MIN_CONFIDENCES:
        return None

    def below(kind: str) -> np.ndarray:
        return np.array([get("conf_below", item=i, key=kind) for i in range(CDF_POINTS)])

    return Calibration.from_counts(below("ok"), int(n_ok), below("wrong"), int(n_wrong))


def _scaled(stage: Stage, factor: float) -> Stage:
    if factor == 1.0 or stage.p_success == 1.0:
        return stage
    assert stage.p_success is not None
    p = float(np.clip(1.0 - (1.0 - stage.p_success) * factor, 0.0, 1.0))
    return stage.model_copy(update={"p_success": p})


def _transient(unrecovered: float, pool: dict) -> float:
    """Transient share of errors that leaves ``unrecovered`` of them after the retries."""
    r, m = pool["p_recover"], pool["max_attempts"]
    if m == 1 or not r:
        return pool["p_transient"]
    return float(np.clip((1.0 - unrecovered) / (1.0 - (1.0 - r) ** (m - 1)), 0.0, 1.0))


def _failed_time(occ: pd.DataFrame) -> pd.DataFrame:
    """Occurrences with errors: ``n_err`` and the time and cost of their failed attempts.

    An occurrence's error steps carry its failed attempts; when the errors stopped the run, all
    of its steps do (the attempts that failed are all it made).
    """
    g = occ.loc[occ["n_err"] > 0]
    stopped = g["stopped"].to_numpy(bool)
    return g.assign(
        **{
            f"failed_{c}": np.where(stopped, g[c], g[f"err_{c}"])
            for c in ("duration_s", "cost_usd")
        }
    )


def _matched_failed_laws(
    stages: list[Stage], spread: float, per_slot: dict[int, tuple[float, float]]
) -> list[Stage]:
    """Scale each slot's failed-attempt laws so that the design spends the failed time observed.

    The design's count of failed attempts at a slot falls short of the data's where runs that
    went on after a silent mistake (harder tasks, which fail more) reach it, and where failure
    modes that recover less make longer retry chains; the failed laws' means are matched to
    the data's failed time and cost per run (method of moments), their shapes kept. The
    expectations average over task difficulty with the design's ``spread``.
    """
    from failkit.simulate import _Z_FINE, _outcomes, _task_rates, _z_grid

    z, w = _z_grid(spread, _Z_FINE)
    p = _task_rates(np.array([[s.p_effective for s in stages]]), spread, z)
    out, reach = [], np.ones((1, z.size))
    for pos, s in enumerate(stages):
        o = _outcomes(s, p[..., pos])
        j = np.arange(1, s.max_attempts + 1)
        expected = float((((o.ok_auto @ (j - 1) + o.stop @ j) * reach) @ w)[0])
        if s.splits_failed and expected > 0 and pos in per_slot:
            changes = {}
            for field, spent in zip(
                ("latency_s_failed", "cost_usd_failed"), per_slot[pos], strict=True
            ):
                law = getattr(s, field)
                if law.mean > 0:
                    k = spent / (expected * law.mean)
                    changes[field] = Dist(values=tuple(v * k for v in law.values), probs=law.probs)
            s = s.model_copy(update=changes)
        reach = reach * (o.ok_auto.sum(-1) + o.caught + o.bad)
        out.append(s)
    return out


def _pooled(t: dict[str, float]) -> dict:
    """A stage's numbers pooled over its rounds from its summed counts ``t``: recovery,
    attempts, transient share, detectable share, side effects, parse share.

    ``parse_share`` is the share of the failures that *ended* runs (silent ones and errors left
    after the retries) that are parse/format errors: ``Stage.structured_outputs`` scales all
    failures of the stage keeping their mix, so this share is the one that moves the success
    rate by what removing them really does.
    """
    errors, retries = int(t["n_err"]), int(t["retries"])
    out = {
        "p_recover": t["all_rec"] / retries if retries else None,
        "max_attempts": int(t["attempts"]),
        "p_transient": t["n_trans"] / errors if errors else 1.0,
    }
    if t["n_failed"]:
        out["p_transient"] = _transient(t["stopped"] / t["n_failed"], out)
    fails = errors + int(t["silent"])
    lost = int(t["stopped"]) + int(t["silent"])
    return out | {
        "p_detectable": errors / fails if fails else 1.0,
        "idempotent": not t["n_side"],
        "p_side_effect": t["n_maybe"] / errors if errors else 0.0,
        "parse_share": t["parse_stop"] / lost if lost else 0.0,
    }


def fit_tool_slope(
    designs: Sequence[Design], *, at: int | None = None, stage: str = ROUND_STAGES[0]
) -> float:
    """Relative change of the tool-selection failure rate per doubling of the toolset.

    ``designs`` are estimated from runs with different toolset sizes (one store per release or
    A/B arm; a run's traces do not say how many tools its agent was given). Each gives its
    ``stage`` failures per run, summed over the tool rounds (counts from the stages' Beta
    posteriors when they have them), at its ``n_tools``; the rate is fitted as
    ``b0 + b1 * log2(n_tools)`` by weighted least squares (Poisson variances). The intercept
    keeps the failures the toolset does not cause (silent argument mistakes that are attributed
    to tool selection, misspelt names), which a curve through the origin would scale too.
    Returns ``b1 / (b0 + b1 * log2(at))``, the slope :func:`failkit.design.tool_error_ratio`
    takes (``at``: the first design's size).

    Raises:
        FailkitError: fewer than two toolset sizes, or a design without ``n_tools`` on ``stage``.
    """
    x, f, w = [], [], []
    for d in designs:
        first = d.stage(stage)
        if first.n_tools is None:
            raise FailkitError(f"design {d.name!r}: stage {stage!r} has no n_tools")
        fails, runs = 0.0, None
        for s in (d.stage(n) for n in stage_names(d, stage)):
            n = s.alpha + s.beta - 1.0 if s.alpha is not None and s.beta is not None else 1.0
            fails += (1.0 - s.p_effective) * n
            runs = n if runs is None else runs
        assert runs is not None  # the design has ``stage``
        x.append(math.log2(first.n_tools))
        f.append(fails / runs)
        w.append(runs / max(fails / runs, 1e-6))
    if len(set(x)) < 2:
        raise FailkitError("fitting the tool curve needs designs at two toolset sizes at least")
    b0, b1 = np.polynomial.polynomial.polyfit(x, f, 1, w=np.sqrt(w))
    ref = math.log2(at) if at is not None else x[0]
    return float(b1 / (b0 + b1 * ref))


_CONFIDENCE_SQL = "SELECT trace_id, span_id, confidence FROM spans WHERE confidence IS NOT NULL"


def confidences(store: TraceStore) -> pd.DataFrame:
    """Logged confidences of a store's spans: ``trace_id``, ``span_id``, ``confidence``."""
    return store.sql(_CONFIDENCE_SQL)


def from_store(
    store: TraceStore, *, name: str = "observed", task_spread: float | Literal["fit"] = "fit"
) -> Design:
    """Today's design estimated from a store's traces (see :func:`estimate_design`)."""
    return estimate_design(
        steps(store),
        store.traces_df(),
        name=name,
        task_spread=task_spread,
        confidence=confidences(store),
    )


def backtest(
    store: TraceStore,
    *,
    seed: int = 0,
    level: float = 0.95,
    task_spread: float | Literal["fit"] = "fit",
) -> pd.DataFrame:
    """Estimate the design on half the tasks and predict the other half.

    Tasks (runs without a task are their own task) are split at random (seeded); the design
    estimated on one half predicts the success rate, mean cost and mean latency of the other.
    The prediction interval joins the design's posterior interval (exact method) with the
    sampling error of the held-out mean (standard error over tasks, so repeated trials of a
    task count once); the observed interval is that sampling error alone.

    Returns:
        One row per metric (``success_rate``, ``cost_usd_mean``, ``latency_s_mean``):
        ``metric``, ``predicted``, ``pred_low``, ``pred_high``, ``observed``, ``obs_low``,
        ``obs_high``, ``n_runs`` (held out), ``within`` (observed inside the prediction
        interval).
    """
    from failkit.simulate import simulate

    st = steps(store)
    runs = store.traces_df()
    task = runs["task_id"].fillna(runs["trace_id"]).astype(str)
    tasks = np.sort(task.unique())
    rng = np.random.default_rng(seed)
    train = set(rng.permutation(tasks)[: len(tasks) // 2].tolist())
    in_train = task.isin(train).to_numpy()
    ids = set(runs.loc[in_train, "trace_id"])
    design = estimate_design(
        st.loc[st["trace_id"].isin(ids)],
        runs.loc[in_train],
        task_spread=task_spread,
        confidence=confidences(store),
    )
    pred = simulate(design, ci_draws=100, level=level, seed=seed).set_index("metric")
    test = runs.loc[~in_train]
    judged = test["outcome"].isin([Outcome.SUCCESS.value, Outcome.FAILURE.value])
    z = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for metric, values, ok in (
        ("success_rate", test["outcome"].eq(Outcome.SUCCESS.value).astype(float), judged),
        ("cost_usd_mean", test["cost_usd"].fillna(0.0), test["trace_id"].notna()),
        ("latency_s_mean", test["duration_s"], test["duration_s"].notna()),
    ):
        per_task = values[ok].groupby(task[~in_train][ok]).agg(["sum", "size"])
        obs = per_task["sum"].sum() / per_task["size"].sum()
        resid = per_task["sum"] - obs * per_task["size"]
        se = math.sqrt(float((resid**2).sum())) / per_task["size"].sum()
        p = pred.loc[metric]
        half = (p["ci_high"] - p["ci_low"]) / 2 if np.isfinite(p["ci_high"]) else 0.0
        width = z * math.sqrt((half / z) ** 2 + se**2)
        rows.append(
            (
                metric,
                p["value"],
                p["value"] - width,
                p["value"] + width,
                obs,
                obs - z * se,
                obs + z * se,
                int(ok.sum()),
                bool(abs(obs - p["value"]) <= width),
            )
        )
    return pd.DataFrame(rows, columns=BACKTEST_COLUMNS)
