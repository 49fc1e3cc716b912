"""Decision chains on real failures nobody here wrote: TRAIL SWE-bench and Who&When.

These tests check that the computation runs end to end and gives rates in [0, 1]; the rates
themselves are reported (``benchmarks/chains.py --only accuracy``), not tuned against.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import shared_path

import failkit as fk
from failkit.evaluate import labelled_steps, localization_accuracy, mistake_accuracy
from failkit.ingest import adapters


def _needs(fmt: str) -> None:
    if fmt not in adapters():
        pytest.skip(f"the {fmt} adapter is not registered yet: this test needs it to load data")


@pytest.fixture(scope="module")
def trail() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(steps, first failures, annotated error locations) of TRAIL SWE-bench.

    Every annotated run is a failed run (TRAIL annotates errors, not outcomes): it gets an
    ``outcome = failure`` label, so that failkit has to say where each one broke.
    """
    _needs("trail_trace")
    _needs("trail_annotations")
    traces = shared_path("datasets", "trail", "traces", "SWE_Bench")
    annotations = shared_path("datasets", "trail", "annotations", "SWE_Bench")
    store = fk.connect()
    store.ingest(traces, progress=False)
    store.ingest(annotations, progress=False)
    steps = fk.steps(store)
    located = labelled_steps(store.labels_df(), steps, name="error_category")
    store.add_labels(pd.DataFrame({"trace_id": located["trace_id"].unique(), "name": "outcome",
                                   "value": "failure"}))  # fmt: skip
    steps = fk.steps(store)
    return steps, fk.first_failures(steps), located


def test_trail_first_failures_against_annotated_locations(
    trail: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    steps, ff, located = trail
    n_runs = located["trace_id"].nunique()
    assert n_runs >= 20
    assert set(ff["trace_id"]) >= set(located["trace_id"])
    first = located.drop_duplicates("trace_id")
    for truth in (first, located):
        for pred in ("span_id", "cause_span_id"):
            acc = localization_accuracy(ff, truth, stage_col=None, pred_span_col=pred)
            assert acc["n"].iloc[0] == n_runs
            assert 0.0 <= acc["accuracy"].iloc[0] <= 1.0
    assert steps["step"].min() == 1


@pytest.fixture(scope="module")
def who_and_when() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(steps, first failures, labels) of Who&When Algorithm-Generated."""
    _needs("who_and_when")
    store = fk.connect()
    store.ingest(str(shared_path("datasets", "who-and-when", "Algorithm-Generated") / "*.json"),
                 progress=False)  # fmt: skip
    steps = fk.steps(store)
    return steps, fk.first_failures(steps), store.labels_df()


def test_who_and_when_step_and_agent_accuracy(
    who_and_when: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    steps, ff, labels = who_and_when
    assert ff["trace_id"].nunique() == steps["trace_id"].nunique()  # every run failed
    out = mistake_accuracy(ff, steps, labels).set_index("metric")
    assert out.loc["step", "n"] == out.loc["agent", "n"] >= 100
    for col in ("accuracy", "ci_low", "ci_high", "random_accuracy"):
        assert out[col].between(0, 1).all()
