"""Accuracy against a ground truth: Wilson intervals, any-of matching, Who&When-style labels."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import failkit as fk
from failkit.evaluate import (
    ACCURACY_COLUMNS,
    localization_accuracy,
    match_rate,
    mistake_accuracy,
    wilson_interval,
)


def test_wilson_interval_known_values() -> None:
    """Reference values of the Wilson (1927) score interval (statsmodels' method="wilson")."""
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(81, 100, confidence=0.9) == pytest.approx((0.7376, 0.8660), abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_match_rate_counts_any_of_several_truths_and_missing_predictions() -> None:
    predicted = pd.DataFrame({"trace_id": ["a", "b", "c"], "span_id": ["x", "y", "z"]})
    truth = pd.DataFrame(
        {"trace_id": ["a", "a", "b", "d", "e"], "span": ["q", "x", "w", "x", None]}
    )
    out = match_rate(predicted, truth, pred_col="span_id", truth_col="span", metric="span")
    assert list(out.columns) == ACCURACY_COLUMNS
    row = out.iloc[0]
    assert (row["metric"], row["n"], row["hits"]) == ("span", 3, 1)  # a hit; b, d missed
    assert row["accuracy"] == pytest.approx(1 / 3)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(wilson_interval(1, 3))


def test_localization_accuracy_rows() -> None:
    ff = pd.DataFrame(
        {"trace_id": ["a", "b"], "span_id": ["x", "y"], "cause_span_id": ["x", "l"],
         "stage": ["tool_execution", "parameter_extraction"]}
    )  # fmt: skip
    truth = pd.DataFrame(
        {"trace_id": ["a", "b"], "span_id": ["x", "l"], "stage": ["tool_execution", "planning"]}
    )
    out = localization_accuracy(ff, truth).set_index("metric")
    assert out.loc["span", "hits"] == 1 and out.loc["stage", "hits"] == 1
    blamed = localization_accuracy(ff, truth, stage_col=None, pred_span_col="cause_span_id")
    assert blamed["metric"].tolist() == ["span"] and blamed["hits"].iloc[0] == 2
    empty = localization_accuracy(ff.iloc[:0], truth.iloc[:0])
    assert empty["n"].tolist() == [0, 0] and empty["accuracy"].isna().all()


def test_mistake_accuracy_step_and_agent() -> None:
    steps = pd.DataFrame(
        {"trace_id": ["a"] * 4 + ["b"] * 2,
         "span_id": ["r", "a1", "a2", "a3", "b1", "b2"],
         "kind": ["agent", "llm", "tool", "llm", "llm", "llm"],
         "name": ["run", "Planner", "terminal", "Coder", "Planner", "Coder"]}
    )  # fmt: skip
    ff = pd.DataFrame({"trace_id": ["a", "b"], "span_id": ["a2", "b2"],
                       "cause_span_id": ["a1", "b2"]})  # fmt: skip
    labels = pd.DataFrame(
        {"trace_id": ["a", "a", "b", "b"], "span_id": ["a1", None, "b1", None],
         "name": ["mistake_step", "mistake_agent"] * 2,
         "value": ["1", "Planner", "0", "Planner"]}
    )  # fmt: skip
    out = mistake_accuracy(ff, steps, labels).set_index("metric")
    assert list(out.reset_index().columns) == [*ACCURACY_COLUMNS, "random_accuracy"]
    assert out.loc["step", "hits"] == 1 and out.loc["agent", "hits"] == 1
    # the truth points at llm steps: a uniform guess among them (2 per run, 2 agents per run)
    assert out.loc["step", "random_accuracy"] == pytest.approx(0.5)
    assert out.loc["agent", "random_accuracy"] == pytest.approx(0.5)
    by_surface = mistake_accuracy(ff, steps, labels, span_col="span_id").set_index("metric")
    assert by_surface.loc["step", "hits"] == 0


def test_missing_columns_are_named() -> None:
    with pytest.raises(fk.FailkitError, match="no column 'stage'"):
        match_rate(
            pd.DataFrame({"trace_id": []}),
            pd.DataFrame({"trace_id": [], "x": []}),
            pred_col="stage",
            truth_col="x",
        )
