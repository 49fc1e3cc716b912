"""A short answer to "how is my agent doing, and where does it break?" for a store."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import pandas as pd

from failkit.chains import first_failures
from failkit.evaluate import wilson_interval
from failkit.store import TraceStore

STAGE_SUMMARY_COLUMNS = ["stage", "failed_runs", "share_of_failed_runs", "silent_share"]


@dataclass(frozen=True)
class Summary:
    """Runs, success rate with its 95 % Wilson interval, and the stages where runs first fail."""

    n_runs: int
    n_success: int
    n_failure: int
    n_unknown: int
    cost_usd: float
    failing_stages: pd.DataFrame
    """One row per stage: ``stage``, ``failed_runs``, ``share_of_failed_runs``, ``silent_share``."""

    @property
    def success_rate(self) -> float:
        """Successes over runs with a known outcome (NaN when none is known)."""
        known = self.n_success + self.n_failure
        return self.n_success / known if known else float("nan")

    @property
    def success_interval(self) -> tuple[float, float]:
        """95 % Wilson interval of :attr:`success_rate`."""
        return wilson_interval(self.n_success, self.n_success + self.n_failure)

    def __str__(self) -> str:
        low, high = self.success_interval
        lines = [
            f"runs: {self.n_runs:,}  (success {self.n_success:,}, failure {self.n_failure:,}, "
            f"unknown {self.n_unknown:,})",
            f"success rate: {self.success_rate:.1%}  (95% CI {low:.1%} to {high:.1%})",
            f"cost: ${self.cost_usd:,.2f}",
            "where failed runs first fail:",
        ]
        for row in self.failing_stages.itertuples():
            lines.append(
                f"  {row.stage:<22} {row.failed_runs:>6,} runs  {row.share_of_failed_runs:6.1%}"
                f"  ({row.silent_share:.0%} silent)"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<pre>{escape(str(self))}</pre>"


def summary(store: TraceStore) -> Summary:
    """Summarize a store: runs, outcomes, cost and the stages of the first failures."""
    counts = store.sql(
        """
        SELECT count(*) AS n,
               count(*) FILTER (WHERE outcome = 'success') AS s,
               count(*) FILTER (WHERE outcome = 'failure') AS f,
               coalesce(sum(cost_usd), 0) AS cost
        FROM traces
        """
    ).iloc[0]
    ff = first_failures(store)
    stages = (
        ff.groupby("stage", as_index=False)
        .agg(failed_runs=("trace_id", "size"), silent_share=("silent", "mean"))
        .assign(share_of_failed_runs=lambda d: d["failed_runs"] / max(len(ff), 1))
        .sort_values(["failed_runs", "stage"], ascending=[False, True], ignore_index=True)
    )
    n, s, f = int(counts["n"]), int(counts["s"]), int(counts["f"])
    return Summary(
        n_runs=n,
        n_success=s,
        n_failure=f,
        n_unknown=n - s - f,
        cost_usd=float(counts["cost"]),
        failing_stages=stages[STAGE_SUMMARY_COLUMNS],
    )
