"""How well failkit's answers match a ground truth: yours, a benchmark's or the synthetic agent's.

Small functions, each returning one tidy frame with an exact-match rate and its Wilson
interval, so that numbers from different truths sit side by side; for failure modes,
clustering agreement with labelled categories (:func:`compare_to_labels`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import pandas as pd
from scipy.stats import binomtest

from failkit.errors import FailkitError

if TYPE_CHECKING:
    from failkit.synth import SynthResult

ACCURACY_COLUMNS: list[str] = ["metric", "n", "hits", "accuracy", "ci_low", "ci_high"]
"""Columns of the accuracy frames (``mistake_accuracy`` adds ``random_accuracy``)."""


def wilson_interval(hits: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``hits / n`` (NaNs when ``n`` is 0)."""
    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(int(hits), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FailkitError(
            f"{what} has no column {', '.join(map(repr, missing))}; it has {list(frame.columns)}"
        )


def match_rate(
    predicted: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    pred_col: str,
    truth_col: str,
    metric: str | None = None,
    key: str = "trace_id",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Share of truth keys whose predicted value equals a true value.

    A key with several truth rows is a hit when the prediction matches any of them; a key
    without a prediction is a miss; truth rows with a missing value are left out.

    Args:
        predicted: one row per key (the first is used when there are more).
        truth: one or more rows per key.
        pred_col: column of ``predicted`` to compare.
        truth_col: column of ``truth`` to compare.
        metric: name in the ``metric`` column (default ``pred_col``).
        key: the column both frames are joined on.
        confidence: level of the Wilson interval.

    Returns:
        One row: ``metric``, ``n`` (keys in the truth), ``hits``, ``accuracy``, ``ci_low``,
        ``ci_high``.
    """
    _require(predicted, [key, pred_col], "the predicted frame")
    _require(truth, [key, truth_col], "the truth frame")
    t = truth.loc[truth[truth_col].notna(), [key, truth_col]].astype({truth_col: "string"})
    p = predicted.drop_duplicates(key)[[key, pred_col]].astype({pred_col: "string"})
    joined = t.merge(p, on=key, how="left", suffixes=("_true", "_pred"))
    true_c = truth_col if truth_col != pred_col else f"{truth_col}_true"
    pred_c = pred_col if truth_col != pred_col else f"{pred_col}_pred"
    joined["hit"] = (joined[true_c] == joined[pred_c]).fillna(False).astype(bool)
    per_key = joined.groupby(key)["hit"].any()
    n, hits = int(per_key.size), int(per_key.sum())
    low, high = wilson_interval(hits, n, confidence=confidence)
    return pd.DataFrame(
        [[metric or pred_col, n, hits, hits / n if n else float("nan"), low, high]],
        columns=ACCURACY_COLUMNS,
    )


def localization_accuracy(
    first_failures_df: pd.DataFrame,
    truth_df: pd.DataFrame,
    *,
    span_col: str = "span_id",
    stage_col: str | None = "stage",
    pred_span_col: str = "span_id",
    pred_stage_col: str = "stage",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Exact-match rate of the located span and of the attributed stage, per failed run.

    Args:
        first_failures_df: :func:`failkit.first_failures` (or any frame with ``trace_id``).
        truth_df: ``trace_id`` and the true span (and stage); several rows per run mean
            "any of these".
        span_col: true span column.
        stage_col: true stage column; None to skip the stage row.
        pred_span_col: predicted span column (``cause_span_id`` to score the blamed step).
        pred_stage_col: predicted stage column.
        confidence: level of the Wilson intervals.

    Returns:
        Rows ``span`` and ``stage`` with ``metric``, ``n``, ``hits``, ``accuracy``,
        ``ci_low``, ``ci_high``.
    """
    rows = [
        match_rate(
            first_failures_df,
            truth_df,
            pred_col=pred_span_col,
            truth_col=span_col,
            metric="span",
            confidence=confidence,
        )
    ]
    if stage_col is not None:
        rows.append(
            match_rate(
                first_failures_df,
                truth_df,
                pred_col=pred_stage_col,
                truth_col=stage_col,
                metric="stage",
                confidence=confidence,
            )
        )
    return pd.concat(rows, ignore_index=True)


def mistake_accuracy(
    first_failures_df: pd.DataFrame,
    steps_df: pd.DataFrame,
    labels_df: pd.DataFrame,
    *,
    span_col: str = "cause_span_id",
    step_label: str = "mistake_step",
    agent_label: str = "mistake_agent",
    agent_col: str = "name",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Who&When-style accuracy: the decisive step and the agent responsible.

    The step truth is a label named ``step_label`` whose ``span_id`` points at the step; the
    agent truth a label named ``agent_label`` whose ``value`` names the agent. The predicted
    agent is ``agent_col`` of the predicted step (for Who&When the step name is the agent).

    Args:
        first_failures_df: :func:`failkit.first_failures`.
        steps_df: :func:`failkit.steps` of the same runs (for agent names and step counts).
        labels_df: ``store.labels_df()``.
        span_col: predicted step (``cause_span_id``: the step blamed; or ``span_id``).
        step_label: name of the labels locating the mistake.
        agent_label: name of the labels naming the agent.
        agent_col: column of ``steps_df`` holding a step's agent.
        confidence: level of the Wilson intervals.

    Returns:
        Rows ``step`` and ``agent`` with ``metric``, ``n``, ``hits``, ``accuracy``,
        ``ci_low``, ``ci_high`` and ``random_accuracy`` (expected accuracy of a uniform guess
        among the run's candidate steps / agents — the steps of the kinds the truth points
        at, and their distinct agents).
    """
    _require(steps_df, ["trace_id", "span_id", "kind", agent_col], "the steps frame")
    _require(labels_df, ["trace_id", "span_id", "name", "value"], "the labels frame")
    step_truth = labels_df.loc[labels_df["name"] == step_label, ["trace_id", "span_id"]]
    agent_truth = labels_df.loc[labels_df["name"] == agent_label, ["trace_id", "value"]]
    agents = steps_df[["trace_id", "span_id", agent_col]].rename(
        columns={"span_id": span_col, agent_col: "pred_agent"}
    )
    pred = first_failures_df[["trace_id", span_col]].merge(
        agents, on=["trace_id", span_col], how="left"
    )
    kinds = steps_df.merge(step_truth, on=["trace_id", "span_id"])["kind"].unique()
    candidates = steps_df.loc[steps_df["kind"].isin(kinds)]
    per_run = candidates.groupby("trace_id").agg(
        n_steps=("span_id", "size"), n_agents=(agent_col, "nunique")
    )
    out = pd.concat(
        [
            match_rate(
                pred,
                step_truth,
                pred_col=span_col,
                truth_col="span_id",
                metric="step",
                confidence=confidence,
            ),
            match_rate(
                pred,
                agent_truth,
                pred_col="pred_agent",
                truth_col="value",
                metric="agent",
                confidence=confidence,
            ),
        ],
        ignore_index=True,
    )
    out["random_accuracy"] = [
        float((1 / per_run.loc[per_run.index.isin(step_truth["trace_id"]), "n_steps"]).mean()),
        float((1 / per_run.loc[per_run.index.isin(agent_truth["trace_id"]), "n_agents"]).mean()),
    ]
    return out


def labelled_steps(labels_df: pd.DataFrame, steps_df: pd.DataFrame, *, name: str) -> pd.DataFrame:
    """The steps that labels named ``name`` point at (by ``span_id``), in chain order.

    Use it to turn annotations into a localization truth: all of them ("any annotated
    step") or, with ``.drop_duplicates("trace_id")``, the earliest per run.

    Args:
        labels_df: ``store.labels_df()`` (or any frame with its columns).
        steps_df: :func:`failkit.steps` of the runs.
        name: label name, e.g. ``"error_category"`` (TRAIL) or ``"mistake_step"`` (Who&When).

    Returns:
        One row per label that points at a known step, ordered by run and step:
        ``trace_id``, ``span_id``, ``step``, ``kind``, ``value``.
    """
    _require(labels_df, ["trace_id", "span_id", "name", "value"], "the labels frame")
    _require(steps_df, ["trace_id", "span_id", "step", "kind"], "the steps frame")
    pointed = labels_df.loc[
        (labels_df["name"] == name) & labels_df["span_id"].notna(), ["trace_id", "span_id", "value"]
    ]
    out = pointed.merge(
        steps_df[["trace_id", "span_id", "step", "kind"]], on=["trace_id", "span_id"]
    )
    return (
        out[["trace_id", "span_id", "step", "kind", "value"]]
        .sort_values(["trace_id", "step"], kind="stable")
        .reset_index(drop=True)
    )


AGREEMENT_COLUMNS: list[str] = [
    "label_name", "n_labels", "n_compared", "n_categories", "n_modes", "ari", "nmi",
]  # fmt: skip
"""Columns of :attr:`LabelAgreement.scores`."""

CONTINGENCY_COLUMNS: list[str] = ["category", "mode_id", "mode_label", "n"]
"""Columns of :attr:`LabelAgreement.contingency`."""


class LabelAgreement(NamedTuple):
    """How failure modes agree with labelled categories (see :func:`compare_to_labels`).

    Attributes:
        scores: one row: ``label_name``, ``n_labels`` (labels of that name), ``n_compared``
            (labels that met a failure event), ``n_categories``, ``n_modes`` (among the
            compared), ``ari`` (adjusted Rand index), ``nmi`` (normalized mutual information,
            arithmetic mean); NaN scores when nothing was compared.
        contingency: one row per (category, mode) pair met, most frequent first:
            ``category``, ``mode_id``, ``mode_label``, ``n``.
    """

    scores: pd.DataFrame
    contingency: pd.DataFrame


def compare_to_labels(
    modes_df: pd.DataFrame,
    labels_df: pd.DataFrame,
    *,
    label_name: str,
    mode_col: str = "mode_id",
) -> LabelAgreement:
    """Agreement between failure modes and labelled categories: ARI, NMI, contingency table.

    A label with a ``span_id`` is compared with the mode of the failure event at that step;
    a label without one with the mode of the run's first failure. A step with several labels
    counts once per label; labels that meet no failure event are not compared.

    Args:
        modes_df: :func:`failkit.failure_modes` (``trace_id``, ``span_id``, ``mode_col``;
            ``is_first_failure`` for run-level labels; ``mode_label`` when present).
        labels_df: ``store.labels_df()`` or any frame with ``trace_id``, ``span_id``,
            ``name`` and ``value`` (the category), e.g. TRAIL's ``error_category`` labels.
        label_name: name of the labels holding the categories.
        mode_col: column of ``modes_df`` holding the mode.

    Returns:
        A :class:`LabelAgreement` of ``scores`` and ``contingency``.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    _require(modes_df, ["trace_id", "span_id", mode_col], "the modes frame")
    _require(labels_df, ["trace_id", "span_id", "name", "value"], "the labels frame")
    lab = labels_df.loc[(labels_df["name"] == label_name) & labels_df["value"].notna()]
    lab = lab[["trace_id", "span_id", "value"]].rename(columns={"value": "category"})
    keep = ["trace_id", "span_id", mode_col, "mode_label", "is_first_failure"]
    modes = modes_df.assign(
        mode_label=modes_df["mode_label"] if "mode_label" in modes_df else modes_df[mode_col]
    )
    modes = modes[[c for c in keep if c in modes.columns]]
    on_span = lab.loc[lab["span_id"].notna()].merge(modes, on=["trace_id", "span_id"])
    on_run = lab.loc[lab["span_id"].isna()].drop(columns="span_id")
    if len(on_run):
        _require(modes_df, ["is_first_failure"], "the modes frame (for run-level labels)")
        first = modes.loc[modes["is_first_failure"].astype(bool)].drop_duplicates("trace_id")
        on_run = on_run.merge(first.drop(columns="span_id"), on="trace_id")
    pairs = pd.concat([on_span, on_run], ignore_index=True)
    n = len(pairs)
    truth, found = pairs["category"].astype(str), pairs[mode_col].astype(str)
    scores = pd.DataFrame(
        [[
            label_name, len(lab), n, truth.nunique(), found.nunique(),
            adjusted_rand_score(truth, found) if n else float("nan"),
            normalized_mutual_info_score(truth, found) if n else float("nan"),
        ]],
        columns=AGREEMENT_COLUMNS,
    )  # fmt: skip
    table = (
        pairs.groupby(["category", mode_col, "mode_label"], sort=True)
        .size()
        .rename("n")
        .reset_index()
        .rename(columns={mode_col: "mode_id"})
        .sort_values(["n", "category", "mode_id"], ascending=[False, True, True])
    )
    return LabelAgreement(scores, table[CONTINGENCY_COLUMNS].reset_index(drop=True))


def synth_mode_labels(result: SynthResult) -> pd.DataFrame:
    """The synthetic agent's true failure modes as labels named ``failure_mode``.

    Detectable failures (an error was raised) are labels on the failing span; silent ones
    are labels on the run (its first failure), as no error marks the step.

    Args:
        result: :func:`failkit.synth.generate` (or ``sample``).

    Returns:
        Columns ``trace_id``, ``span_id`` (missing for silent failures), ``name``, ``value``
        (the true mode), ``source`` (``synth``).
    """
    fe = result.failure_events
    detectable = fe.loc[~fe["silent"], ["trace_id", "span_id", "failure_mode"]]
    truth = result.truth
    silent = truth.loc[truth["silent"].eq(True), ["trace_id", "failure_mode"]].assign(span_id=None)
    out = pd.concat([detectable, silent], ignore_index=True).rename(
        columns={"failure_mode": "value"}
    )
    return out.assign(name="failure_mode", source="synth")[
        ["trace_id", "span_id", "name", "value", "source"]
    ]
