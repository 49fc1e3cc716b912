"""Compounded reliability from observed runs: pass^k over repeated trials, per-task flakiness.

``stage_reliability`` (per-stage success rates with Beta posteriors, detectable vs silent,
transient vs permanent, latency and cost distributions) belongs here too; it is built on the
decision chains of :mod:`failkit.chains` and is not written yet.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import special, stats

from failkit.errors import FailkitError
from failkit.schema import Outcome
from failkit.store import TraceStore

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
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise FailkitError(f"ks must be positive integers, got {ks}")
    if counts.empty:
        return _empty(PASS_HAT_K_COLUMNS)
    n, c = counts["n"].to_numpy(float), counts["c"].to_numpy(float)
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
