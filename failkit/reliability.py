"""Compounded reliability from observed runs: per-stage rates, how they compound, pass^k.

:func:`stage_reliability` reads the decision chains of :mod:`failkit.chains`; :func:`compounding`
and :func:`compounding_gap` set the end-to-end success the stage rates imply beside the
observed one; :func:`pass_hat_k` and :func:`task_flakiness` look at repeated trials of a task.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd
from scipy import special, stats

from failkit.chains import Source, _steps_of
from failkit.errors import FailkitError
from failkit.schema import Outcome
from failkit.store import TraceStore

STAGE_RELIABILITY_COLUMNS = [
    "stage", "n_attempts", "n_successes", "n_failures", "success_rate", "ci_low", "ci_high",
    "n_detectable", "n_silent", "detectable_share", "silent_share", "n_transient",
    "n_permanent", "transient_share", "n_recovered", "latency_s_mean", "latency_s_p50",
    "latency_s_p95", "cost_usd_mean", "cost_usd_p50", "cost_usd_p95",
]  # fmt: skip
COMPOUNDING_COLUMNS = [
    "shape", "n_runs", "share_runs", "observed", "ci_low", "ci_high", "implied", "gap",
]  # fmt: skip
GAP_COLUMNS = ["component", "success_rate", "delta"]
PASS_HAT_K_COLUMNS = ["k", "pass_hat_k", "n_tasks", "ci_low", "ci_high"]
FLAKINESS_COLUMNS = ["task_id", "n_runs", "n_successes", "success_rate", "flaky"]
_DTYPES = {
    "k": "int64", "pass_hat_k": "float64", "n_tasks": "int64", "ci_low": "float64",
    "ci_high": "float64", "task_id": "str", "n_runs": "int64", "n_successes": "int64",
    "success_rate": "float64", "flaky": "bool",
}  # fmt: skip


def runs_frame(runs: TraceStore | pd.DataFrame, required: Iterable[str]) -> pd.DataFrame:
    """The runs of a store (``traces_df``) or a DataFrame, checked for ``required`` columns.

    Raises:
        FailkitError: a required column is missing.
    """
    df = runs.traces_df() if isinstance(runs, TraceStore) else runs
    if not isinstance(df, pd.DataFrame):
        raise FailkitError(f"expected a TraceStore or a DataFrame, got {type(runs).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise FailkitError(
            f"runs lack column(s) {', '.join(missing)}; have: {', '.join(map(str, df.columns))}"
        )
    return df


def wilson_interval(
    successes: np.ndarray | float, n: np.ndarray | float, *, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion (NaN where ``n == 0``)."""
    s, m = np.asarray(successes, float), np.asarray(n, float)
    z = stats.norm.ppf(0.5 + level / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        phat = s / m
        centre = (phat + z * z / (2 * m)) / (1 + z * z / m)
        half = z / (1 + z * z / m) * np.sqrt(phat * (1 - phat) / m + z * z / (4 * m * m))
    return centre - half, centre + half


def _task_counts(runs: TraceStore | pd.DataFrame) -> pd.DataFrame:
    """Per task: runs with a known outcome (``n``) and successes among them (``c``)."""
    df = runs_frame(runs, ["task_id", "outcome"])
    known = df[df["outcome"].isin([Outcome.SUCCESS.value, Outcome.FAILURE.value])]
    known = known[known["task_id"].notna()]
    success = (known["outcome"] == Outcome.SUCCESS.value).astype(np.int64)
    counts = success.groupby(known["task_id"].astype(str)).agg(["size", "sum"])
    return counts.rename(columns={"size": "n", "sum": "c"}).sort_index()


def pass_hat_k(
    runs: TraceStore | pd.DataFrame,
    *,
    ks: Iterable[int] = range(1, 9),
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """pass^k: the chance that *all* of k independent runs of a task succeed, over tasks.

    The unbiased estimator of tau-bench: for a task with ``n`` judged runs of which ``c``
    succeeded, ``C(c, k) / C(n, k)``, averaged over tasks. Runs whose outcome is ``unknown`` (or
    whose ``task_id`` is missing) are left out; for each k only tasks with ``n >= k`` count
    (``n_tasks`` says how many), and a k no task reaches gets NaN. The interval is a percentile
    bootstrap over tasks (``n_boot`` resamples, seeded).

    Args:
        runs: a TraceStore, or a DataFrame with ``task_id`` and ``outcome``
            (success / failure / unknown).
        ks: the k to report.
        n_boot: bootstrap resamples of the tasks.
        level: interval coverage.
        seed: bootstrap seed.

    Returns:
        One row per k: ``k``, ``pass_hat_k``, ``n_tasks``, ``ci_low``, ``ci_high``. Empty when no
        run has a task and a known outcome.
    """
    counts = _task_counts(runs)
    return pass_hat_k_counts(
        counts["n"].to_numpy(float), counts["c"].to_numpy(float), ks=ks, n_boot=n_boot,
        level=level, seed=seed,
    )  # fmt: skip


def pass_hat_k_counts(
    n: np.ndarray,
    c: np.ndarray,
    *,
    ks: Iterable[int] = range(1, 9),
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`pass_hat_k` of tasks given by their judged runs ``n`` and successes ``c``."""
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise FailkitError(f"ks must be positive integers, got {ks}")
    if len(n) == 0:
        return _empty(PASS_HAT_K_COLUMNS)
    rng = np.random.default_rng(seed)
    rows = []
    for k in ks:
        keep = n >= k
        per_task = special.comb(c[keep], k) / special.comb(n[keep], k)
        if per_task.size == 0:
            rows.append((k, np.nan, 0, np.nan, np.nan))
            continue
        boot = per_task[rng.integers(0, per_task.size, (n_boot, per_task.size))].mean(axis=1)
        lo, hi = np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2])
        rows.append((k, float(per_task.mean()), int(per_task.size), float(lo), float(hi)))
    out = pd.DataFrame(rows, columns=PASS_HAT_K_COLUMNS)
    return out.astype({"k": "int64", "n_tasks": "int64"})


def task_flakiness(runs: TraceStore | pd.DataFrame) -> pd.DataFrame:
    """Per task: how often it was run and succeeded, and whether it is flaky.

    A task is flaky when it both succeeded and failed (``0 < n_successes < n_runs``). Runs with an
    ``unknown`` outcome or no ``task_id`` are left out.

    Returns:
        One row per task, sorted by ``task_id``: ``task_id``, ``n_runs``, ``n_successes``,
        ``success_rate``, ``flaky``.
    """
    counts = _task_counts(runs)
    if counts.empty:
        return _empty(FLAKINESS_COLUMNS)
    out = pd.DataFrame(
        {
            "task_id": counts.index.to_numpy(),
            "n_runs": counts["n"].to_numpy(np.int64),
            "n_successes": counts["c"].to_numpy(np.int64),
        }
    )
    out["success_rate"] = out["n_successes"] / out["n_runs"]
    out["flaky"] = (out["n_successes"] > 0) & (out["n_successes"] < out["n_runs"])
    return out


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in columns})


def stage_reliability(
    source: Source,
    *,
    by: Literal["tool_name", "model"] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Per stage (and tool or model): how often an attempt works, how it fails, what it costs.

    An attempt is a working step (not an agent / chain wrapper, not a human review) counted under
    its stage (a failed step's stage is the one blamed, so a stage that has no steps of its own,
    like ``parameter_extraction`` when one LLM call picks the tool and writes its arguments,
    shows only failures). It fails
    when it raised an error that is not a propagated copy (*detectable*) or when it is where a
    silently failed run's first failure was located (*silent*, see :func:`failkit.steps`; only
    the first silent mistake of a run is seen, so silent rates are lower bounds). Errors are
    *transient* when the stage rules say a repeat can fix them. The interval is the equal-tailed
    Beta posterior interval under the Jeffreys prior Beta(1/2, 1/2).

    Args:
        source: a TraceStore, spans DataFrame or :func:`failkit.steps` frame.
        by: also break down by ``tool_name`` or ``model`` (missing values form their own group).
        level: interval coverage.

    Returns:
        One row per stage (and ``by`` value), most attempts first: ``stage``, [``by``],
        ``n_attempts``, ``n_successes``, ``n_failures``, ``success_rate``, ``ci_low``,
        ``ci_high``, ``n_detectable``, ``n_silent``, ``detectable_share``, ``silent_share``,
        ``n_transient``, ``n_permanent``, ``transient_share`` (of detectable failures),
        ``n_recovered`` (errors a later step got past), ``latency_s_{mean,p50,p95}``,
        ``cost_usd_{mean,p50,p95}``.
    """
    keys = reliability_keys(by)
    frame = stage_attempts(_steps_of(source), keys)
    quantiles = frame.groupby(keys, sort=False)[["lat", "cost"]].quantile([0.5, 0.95]).unstack()
    quantiles.columns = [_QUANTILES[c] for c in quantiles.columns]
    return finalize_reliability(
        reliability_partials(frame, keys), quantiles.reset_index(), keys=keys, level=level
    )


_QUANTILES = {
    ("lat", 0.5): "latency_s_p50",
    ("lat", 0.95): "latency_s_p95",
    ("cost", 0.5): "cost_usd_p50",
    ("cost", 0.95): "cost_usd_p95",
}
"""Quantiles of :func:`stage_reliability`: (attempt column, level) -> output column."""
RELIABILITY_SUMS = [
    "n_attempts", "n_detectable", "n_silent", "n_transient", "n_recovered", "lat_sum", "lat_n",
    "cost_sum", "cost_n",
]  # fmt: skip
"""Value columns of :func:`reliability_partials` (sums over partitions merge them)."""


def reliability_keys(by: str | None) -> list[str]:
    if by not in (None, "tool_name", "model"):
        raise FailkitError(f"by must be None, 'tool_name' or 'model', got {by!r}")
    return ["stage"] + ([by] if by else [])


ATTEMPT_COLUMNS = [
    "kind", "status", "propagated", "is_first_failure", "heuristic", "transient", "recovered",
    "duration_s", "cost_usd",
]  # fmt: skip
"""Step columns :func:`stage_attempts` reads besides its keys."""


def stage_attempts(st: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per attempt (see :func:`stage_reliability`): its keys (missing ones ``(none)``),
    whether it failed detectably / silently, was transient / recovered, its time and cost."""
    w = st.loc[~st["kind"].isin(["agent", "chain", "human"])]
    err = w["status"].eq("error") & ~w["propagated"].fillna(False).astype(bool)
    return (
        w[keys]
        .astype("string")
        .fillna("(none)")
        .assign(
            det=err,
            sil=w["is_first_failure"].astype(bool) & w["heuristic"].notna() & ~err,
            trans=err & w["transient"].fillna(False).astype(bool),
            rec=err & w["recovered"].fillna(False).astype(bool),
            lat=w["duration_s"],
            cost=w["cost_usd"],
        )
    )


def reliability_partials(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per key: the counts and sums of :func:`stage_attempts` rows that :func:`stage_reliability`
    merges (:data:`RELIABILITY_SUMS`, summed over partitions of the steps)."""
    return (
        frame.groupby(keys, sort=False)
        .agg(
            n_attempts=("det", "size"),
            n_detectable=("det", "sum"),
            n_silent=("sil", "sum"),
            n_transient=("trans", "sum"),
            n_recovered=("rec", "sum"),
            lat_sum=("lat", "sum"),
            lat_n=("lat", "count"),
            cost_sum=("cost", "sum"),
            cost_n=("cost", "count"),
        )
        .reset_index()
    )


def finalize_reliability(
    sums: pd.DataFrame, quantiles: pd.DataFrame, *, keys: list[str], level: float = 0.95
) -> pd.DataFrame:
    """The table of :func:`stage_reliability` from merged partial sums and the quantiles.

    Args:
        sums: :func:`reliability_partials`, summed per key over partitions.
        quantiles: per key, the columns of :data:`_QUANTILES` (missing keys: NaN).
        keys: ``stage`` and the ``by`` column.
        level: interval coverage.
    """
    columns = keys + STAGE_RELIABILITY_COLUMNS[1:]
    if sums.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}).astype(
            {k: "str" for k in keys}
        )
    out = sums.merge(quantiles, on=keys, how="left")
    with np.errstate(invalid="ignore", divide="ignore"):
        out["latency_s_mean"] = out["lat_sum"] / out["lat_n"].where(out["lat_n"] > 0)
        out["cost_usd_mean"] = out["cost_sum"] / out["cost_n"].where(out["cost_n"] > 0)
    out["n_failures"] = out["n_detectable"] + out["n_silent"]
    out["n_successes"] = out["n_attempts"] - out["n_failures"]
    out["n_permanent"] = out["n_detectable"] - out["n_transient"]
    out["success_rate"] = out["n_successes"] / out["n_attempts"]
    a, b = out["n_successes"] + 0.5, out["n_failures"] + 0.5
    out["ci_low"] = stats.beta.ppf(0.5 - level / 2, a, b)
    out["ci_high"] = stats.beta.ppf(0.5 + level / 2, a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["detectable_share"] = out["n_detectable"] / out["n_failures"]
        out["silent_share"] = out["n_silent"] / out["n_failures"]
        out["transient_share"] = out["n_transient"] / out["n_detectable"]
    order = [False] + [True] * len(keys)
    out = out.sort_values(["n_attempts", *keys], ascending=order)
    ints = [c for c in columns if c.startswith("n_")]
    return out[columns].astype({c: "int64" for c in ints}).reset_index(drop=True)


def _shape_rates(runs: TraceStore | pd.DataFrame, source: Source | None) -> tuple:
    """Per run its shape (tool rounds of its task) and success; per stage the net hazard."""
    from failkit.estimate import ROUND_STAGES, Chains  # estimate builds on this module

    store = runs if isinstance(runs, TraceStore) else None
    st = _steps_of(source if source is not None else store)
    frame = runs_frame(runs, ["trace_id", "task_id", "duration_s", "cost_usd"])
    ch = Chains.of(st, frame)
    task = ch.runs["task_id"].fillna(ch.runs["trace_id"]).astype(str).to_numpy()
    shape = pd.Series(ch.rounds).groupby(task).transform("max").to_numpy()
    hazard: dict[str, list[int]] = {}
    for j, (stage, rnd) in enumerate(ch.slots):
        made = ch.rounds >= rnd if stage in ROUND_STAGES else np.ones_like(ch.rounds, bool)
        risk = (ch.first_pos >= j) & made
        n_f = int((ch.first_pos == j).sum())
        acc = hazard.setdefault(stage, [0, 0])
        acc[0] += n_f
        acc[1] += int(risk.sum())
    h = {s: f / n if n else 0.0 for s, (f, n) in hazard.items()}
    per_round = np.prod([1 - h[s] for s in h if s in ROUND_STAGES])
    once = np.prod([1 - h[s] for s in h if s not in ROUND_STAGES])
    success = ch.first_pos >= len(ch.slots)
    return task, shape, success, float(once), float(per_round)


def compounding(
    runs: TraceStore | pd.DataFrame, source: Source | None = None, *, level: float = 0.95
) -> pd.DataFrame:
    """End-to-end success the stage rates imply, beside the observed one, per run shape.

    A run's shape is the number of tool rounds its task takes (the most any of the task's runs
    made: a run that failed early shows fewer). Stage rates are pooled over rounds: per stage,
    the share of occurrences at risk (no failure yet) where the run's first failure happened;
    a run of shape R is implied to succeed with ``prod(run-level stages) * prod(round
    stages) ** R`` — what independent failures at these rates would give. ``gap`` is what
    independence misses; :func:`compounding_gap` splits it.

    Args:
        runs: a TraceStore, or a runs frame (``store.traces_df()``) with ``source`` giving steps.
        source: spans or :func:`failkit.steps` frame when ``runs`` is a frame.
        level: coverage of the Wilson interval of the observed rate.

    Returns:
        One row per shape, then ``all``: ``shape``, ``n_runs``, ``share_runs``, ``observed``,
        ``ci_low``, ``ci_high``, ``implied``, ``gap`` (observed minus implied).
    """
    _, shape, success, once, per_round = _shape_rates(runs, source)
    df = pd.DataFrame({"shape": shape, "ok": success})
    g = df.groupby("shape")["ok"].agg(["size", "sum"])
    implied = once * per_round ** g.index.to_numpy(float)
    total = np.array([len(df), int(df["ok"].sum())])
    n = np.append(g["size"].to_numpy(), total[0])
    s = np.append(g["sum"].to_numpy(), total[1])
    imp = np.append(implied, float(np.dot(implied, g["size"]) / total[0]))
    lo, hi = wilson_interval(s, n, level=level)
    out = pd.DataFrame(
        {
            "shape": [*map(str, g.index), "all"],
            "n_runs": n,
            "share_runs": n / total[0],
            "observed": s / n,
            "ci_low": lo,
            "ci_high": hi,
            "implied": imp,
        }
    )
    out["gap"] = out["observed"] - out["implied"]
    return out[COMPOUNDING_COLUMNS]


def compounding_gap(runs: TraceStore | pd.DataFrame, source: Source | None = None) -> pd.DataFrame:
    """The observed success rate built up from the stage rates, one effect at a time.

    1. ``average run``: stage rates compounded over a run of average length;
    2. ``runs of different length``: each run compounded over its own shape (longer runs fail
       more than their share, shorter ones less);
    3. ``harder tasks``: each run's stage failure rates scaled by its task's failure ratio, from
       the task's *other* runs (leave-one-out; observed / implied failures, shrunk by one
       failure's worth toward 1): difficulty that repeated trials reveal;
    4. ``observed``: what is left is failures travelling together within runs.

    Returns:
        ``component``, ``success_rate`` (after adding the effect), ``delta`` (its size).
    """
    task, shape, success, once, per_round = _shape_rates(runs, source)
    implied = once * per_round ** shape.astype(float)
    fail = (~success).astype(float)
    exp_fail = 1.0 - implied
    t = pd.Series(task)
    other_f = t.map(pd.Series(fail).groupby(task).sum()).to_numpy() - fail
    other_e = t.map(pd.Series(exp_fail).groupby(task).sum()).to_numpy() - exp_fail
    prior = float(exp_fail.mean())
    ratio = (other_f + prior) / (other_e + prior)
    q_once, q_round = 1.0 - once, 1.0 - per_round
    hard = (1 - np.clip(q_once * ratio, 0, 1)) * (1 - np.clip(q_round * ratio, 0, 1)) ** shape
    steps_ = [
        ("average run", once * per_round ** float(shape.mean())),
        ("runs of different length", float(implied.mean())),
        ("harder tasks", float(hard.mean())),
        ("observed", float(success.mean())),
    ]
    values = np.array([v for _, v in steps_])
    return pd.DataFrame(
        {
            "component": [c for c, _ in steps_],
            "success_rate": values,
            "delta": np.diff(values, prepend=np.nan),
        }
    )[GAP_COLUMNS]
