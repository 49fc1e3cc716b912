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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from failkit.chains import Source, _steps_of, steps
from failkit.design import MAX_TASK_SPREAD, Calibration, Design, Dist, Stage
from failkit.errors import FailkitError
from failkit.reliability import pass_hat_k, runs_frame
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
    intent = w["intent_id"].astype("string")
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


def _order(stages: Sequence[str], max_round: int) -> list[tuple[str, int]]:
    """Slots in design order: run-level stages, rounds, final stages."""
    present = set(stages)
    before = [(s, 0) for s in STAGES if s in present and s not in ROUND_STAGES + FINAL_STAGES]
    rounds = [(s, r) for r in range(1, max_round + 1) for s in ROUND_STAGES]
    after = [(s, 0) for s in FINAL_STAGES if s in present]
    return before + rounds + after


def _occurrences(w: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, slot): steps, errors, retries, totals."""
    w = w.assign(
        rec=w["recovered"].fillna(False).astype(bool) | ~w["error"],
        maybe=w["error"] & w["side_effect"].eq("maybe"),
        dur=w["duration_s"].fillna(0.0),
        cost=w["cost_usd"].fillna(0.0),
        err_dur=w["duration_s"].fillna(0.0).where(w["error"], 0.0),
        err_cost=w["cost_usd"].fillna(0.0).where(w["error"], 0.0),
        parse=w["error"]
        & (w["error_type"].fillna("") + ": " + w["error_message"].fillna("")).str.contains(
            PARSE_PATTERN, case=False, regex=True
        ),
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


def _backoff(w: pd.DataFrame) -> tuple[dict[str, float], pd.Series]:
    """Backoff per stage from immediate repeats, and per run the model's waits in total."""
    nxt = w.groupby("trace_id").shift(-1)
    again = (
        w["error"]
        & nxt["intent_id"].notna()
        & (nxt["intent_id"].astype("string") == w["intent_id"].astype("string")).fillna(False)
    )
    end = w["start_time"] + pd.to_timedelta(w["duration_s"].fillna(0.0), unit="s")
    gap = (nxt["start_time"] - end).dt.total_seconds()
    normal = float(gap[~again].median()) if (~again).any() else 0.0
    scaled = (gap - normal) / np.exp2(nxt["attempt"].astype(float) - 2)
    rep = pd.DataFrame(
        {"trace_id": w["trace_id"], "stage": w["slot_stage"], "b": scaled, "j": nxt["attempt"]}
    )[again]
    per_stage = rep.groupby("stage")["b"].mean().clip(lower=0.0).to_dict()
    per = rep["stage"].map(per_stage).astype(float)  # float even when nothing was repeated
    rep = rep.assign(wait=per * np.exp2(rep["j"].astype(float) - 2))
    return per_stage, rep.groupby("trace_id")["wait"].sum()


def _calibration(st: pd.DataFrame, success: pd.Series) -> Calibration | None:
    """Empirical confidence CDFs: LLM outputs of successful runs that raised nothing, vs
    outputs whose mistake raised an error (:meth:`Calibration.from_samples`)."""
    if "confidence" not in st.columns:
        return None
    llm = st.loc[st["kind"].eq("llm") & st["confidence"].notna()]
    errors = st.loc[st["status"].eq("error"), "cause_span_id"]
    raised = llm["span_id"].isin(errors) | llm["status"].eq("error")
    in_success = llm["trace_id"].map(success).fillna(False).astype(bool)
    ok = llm.loc[in_success & ~raised, "confidence"]
    wrong = llm.loc[raised, "confidence"]
    if len(ok) < MIN_CONFIDENCES or len(wrong) < MIN_CONFIDENCES:
        return None
    return Calibration.from_samples(ok.to_numpy(float), wrong.to_numpy(float))


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


def _fit_spread(stages: Sequence[Stage], runs: pd.DataFrame) -> tuple[float, float]:
    """(task_spread, failure factor) matching pass^k with the success rate kept."""
    curve = pass_hat_k(runs, ks=range(1, 9), n_boot=1)
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
    """The runs laid out on the slots of a design (what estimation and compounding share).

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


def estimate_design(
    source: Source,
    runs: pd.DataFrame,
    *,
    name: str = "observed",
    task_spread: float | Literal["fit"] = "fit",
    confidence: pd.DataFrame | None = None,
) -> Design:
    """Estimate today's design from the steps of its runs (see the module docstring).

    Args:
        source: a TraceStore, spans DataFrame or :func:`failkit.steps` frame.
        runs: one row per run with ``trace_id``, ``duration_s``, ``cost_usd`` and, for the
            task spread fit, ``task_id`` and ``outcome`` (``store.traces_df()``).
        name: the design's name.
        task_spread: ``"fit"`` (from the pass^k curve when tasks have repeated trials) or a
            value.
        confidence: logged confidences, ``trace_id``, ``span_id``, ``confidence`` (from a store:
            :func:`confidences`), for the calibration fit.

    Raises:
        FailkitError: no run has a working step.
    """
    st = _steps_of(source)
    if confidence is not None and "confidence" not in st.columns:
        st = st.merge(
            confidence[["trace_id", "span_id", "confidence"]],
            how="left",
            on=["trace_id", "span_id"],
        )
    ch = Chains.of(st, runs)
    w, occ, slots, never = ch.working, ch.occ, ch.slots, len(ch.slots)
    runs, first, idx = ch.runs, ch.first, ch.idx
    first_pos, stop_pos, silent_at = ch.first_pos, ch.stop_pos, ch.silent_at
    silent = first.loc[first["silent"]].groupby("slot_stage").size()
    pooled = _pooled(occ, w, silent)
    per_stage_backoff, waits = _backoff(w)
    failed_occ = _failed_time(occ)
    failed_laws = _failed_laws(failed_occ)
    success = pd.Series(first_pos >= never, index=idx)
    calibration = _calibration(st, success)
    llm_stages = set(w.loc[w["kind"].eq("llm"), "slot_stage"]) | set(
        w.loc[
            w["error"] & w["cause_span_id"].isin(st.loc[st["kind"].eq("llm"), "span_id"]),
            "slot_stage",
        ]
    )
    n_tools = int(
        w.loc[w["kind"].eq("tool") & w["stage"].eq("tool_execution"), "tool_name"].nunique()
    )
    stages = []
    for j, (stage, rnd) in enumerate(slots):
        at_risk = first_pos >= j
        here = occ.loc[occ["pos"] == j].set_index("trace_id")
        failed = _flagged(idx, here["failed"])
        n = int(at_risk.sum())
        det = int((failed & at_risk).sum())
        unrec = int((_flagged(idx, here["stopped"]) & at_risk).sum())
        sil = int(((first_pos == j) & silent_at).sum())
        fails = det + sil
        pool = pooled[stage]
        reach = stop_pos >= j
        present = float((ch.rounds[reach] >= rnd).mean()) if rnd and reach.any() else 1.0
        lat, cost = (_ok_attempts(here, idx, reach, col) for col in ("duration_s", "cost_usd"))
        lat_failed, cost_failed = failed_laws.get(stage, (None, None))
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
                backoff_s=per_stage_backoff.get(stage, 0.0),
                idempotent=pool["idempotent"],
                p_side_effect_on_failure=pool["p_side_effect"],
                parse_failure_share=pool["parse_share"],
                latency_s=lat,
                cost_usd=cost,
                latency_s_failed=lat_failed,
                cost_usd_failed=cost_failed,
                n_tools=n_tools if stage == "tool_selection" and n_tools else None,
                calibration=calibration if stage in llm_stages else None,
                presence=present,
            )
        )
    step_time = w.groupby("trace_id")["duration_s"].sum()
    step_cost = w.groupby("trace_id")["cost_usd"].sum()
    over_t = (
        runs["duration_s"] - idx.map(step_time).fillna(0.0) - idx.map(waits).fillna(0.0)
    ).clip(lower=0.0)
    over_c = (runs["cost_usd"].fillna(0.0) - idx.map(step_cost).fillna(0.0)).clip(lower=0.0)
    stages.append(
        Stage(
            name=OVERHEAD,
            p_success=1.0,
            latency_s=Dist.from_sample(over_t.fillna(0.0)),
            cost_usd=Dist.from_sample(over_c),
        )
    )
    spread = task_spread
    if spread == "fit":
        spread, factor = (0.0, 1.0)
        if {"task_id", "outcome"} <= set(runs.columns):
            spread, factor = _fit_spread(stages, runs)
        stages = [_scaled(s, factor) for s in stages]
    stages = _matched_failed_laws(stages, float(spread), failed_occ, len(runs))
    return Design(name=name, stages=tuple(stages), task_spread=float(spread))


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


def _ok_attempts(here: pd.DataFrame, idx: pd.Index, reach: np.ndarray, column: str) -> Dist:
    """Law of the attempts that raised nothing at a slot, over the runs that reach it.

    One per occurrence that did not stop the run: its total less its errors' (a run that skips
    the slot gives 0); when every occurrence stopped, the totals.
    """
    total = idx.map(here[column]).fillna(0.0).to_numpy()[reach]
    errors = idx.map(here[f"err_{column}"]).fillna(0.0).to_numpy()[reach]
    stopped = _flagged(idx, here["stopped"])[reach]
    ok = (total - errors)[~stopped]
    return Dist.from_sample(np.clip(ok, 0.0, None) if ok.size else total)


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


def _failed_laws(failed: pd.DataFrame) -> dict[str, tuple[Dist, Dist]]:
    """Per stage, over its rounds: latency and cost laws of the attempts that raised an error
    (each occurrence's failed time shared evenly by its failed attempts)."""
    out = {}
    for stage, g in failed.groupby("slot_stage"):
        n = g["n_err"].to_numpy(np.int64)
        laws = [
            Dist.from_sample(np.repeat(g[f"failed_{c}"].to_numpy() / n, n))
            for c in ("duration_s", "cost_usd")
        ]
        out[str(stage)] = (laws[0], laws[1])
    return out


def _matched_failed_laws(
    stages: list[Stage], spread: float, failed: pd.DataFrame, n_runs: int
) -> list[Stage]:
    """Scale each slot's failed-attempt laws so that the design spends the failed time observed.

    The design's count of failed attempts at a slot falls short of the data's where runs that
    went on after a silent mistake (harder tasks, which fail more) reach it, and where failure
    modes that recover less make longer retry chains; the failed laws' means are matched to
    the data's failed time and cost per run (method of moments), their shapes kept. The
    expectations average over task difficulty with the design's ``spread``.
    """
    from failkit.simulate import _Z_FINE, _outcomes, _task_rates, _z_grid

    per_slot = failed.groupby("pos")[["failed_duration_s", "failed_cost_usd"]].sum() / n_runs
    z, w = _z_grid(spread, _Z_FINE)
    p = _task_rates(np.array([[s.p_effective for s in stages]]), spread, z)
    out, reach = [], np.ones((1, z.size))
    for pos, s in enumerate(stages):
        o = _outcomes(s, p[..., pos])
        j = np.arange(1, s.max_attempts + 1)
        expected = float((((o.ok_auto @ (j - 1) + o.stop @ j) * reach) @ w)[0])
        if s.splits_failed and expected > 0 and pos in per_slot.index:
            changes = {}
            for field, column in (
                ("latency_s_failed", "failed_duration_s"),
                ("cost_usd_failed", "failed_cost_usd"),
            ):
                law = getattr(s, field)
                if law.mean > 0:
                    k = float(per_slot.loc[pos, column]) / (expected * law.mean)
                    changes[field] = Dist(values=tuple(v * k for v in law.values), probs=law.probs)
            s = s.model_copy(update=changes)
        reach = reach * (o.ok_auto.sum(-1) + o.caught + o.bad)
        out.append(s)
    return out


def _pooled(occ: pd.DataFrame, w: pd.DataFrame, silent: pd.Series) -> dict[str, dict]:
    """Per stage, over its rounds: recovery, attempts, transient share, side effects, parse.

    ``silent``: silent first failures per stage. ``parse_share`` is the share of the failures
    that *ended* runs (silent ones and errors left after the retries) that are parse/format
    errors: ``Stage.structured_outputs`` scales all failures of the stage keeping their mix, so
    this share is the one that moves the success rate by what removing them really does.
    """
    out = {}
    idempotent = w.groupby("slot_stage")["side_effect"].apply(lambda s: bool(s.isna().all()))
    for stage, g in occ.groupby("slot_stage"):
        chains = g.loc[g["failed"]]
        retries = int((chains["n_err"] - 1 + chains["all_rec"].astype(int)).sum())
        recovered = int(chains["all_rec"].sum())
        m = int(g["attempts"].max())
        r = recovered / retries if retries else None
        errors = int(chains["n_err"].sum())
        t = float(chains["n_trans"].sum() / errors) if errors else 1.0
        out[stage] = {"p_recover": r, "max_attempts": m, "p_transient": t}
        if len(chains):
            out[stage]["p_transient"] = _transient(float(chains["stopped"].mean()), out[stage])
        fails = errors + int(silent.get(stage, 0))
        lost = int(chains["stopped"].sum()) + int(silent.get(stage, 0))
        out[stage] |= {
            "p_detectable": errors / fails if fails else 1.0,
            "idempotent": bool(idempotent.get(stage, True)),
            "p_side_effect": float(chains["n_maybe"].sum() / errors) if errors else 0.0,
            "parse_share": float(chains["parse_stop"].sum() / lost) if lost else 0.0,
        }
    return out


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
