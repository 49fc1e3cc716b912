"""Failure modes on real failures nobody here wrote: TRAIL SWE-bench and its human categories.

The agreement numbers are reported (``benchmarks/modes.py --only trail``), not tuned
against; these tests check that the comparison runs end to end on what TRAIL holds.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import shared_path

import failkit as fk
from benchmarks.modes import trail_store
from failkit.evaluate import compare_to_labels
from failkit.ingest import adapters


@pytest.fixture(scope="module")
def trail() -> fk.TraceStore:
    """TRAIL SWE-bench traces and annotations; every annotated run is a failed run."""
    for fmt in ("trail_trace", "trail_annotations"):
        if fmt not in adapters():
            pytest.skip(f"the {fmt} adapter is not registered: this test needs it to load TRAIL")
    traces = shared_path("datasets", "trail", "traces", "SWE_Bench")
    annotations = shared_path("datasets", "trail", "annotations", "SWE_Bench")
    return trail_store(traces, annotations)


def _check(agreement: tuple[pd.DataFrame, pd.DataFrame], min_compared: int) -> None:
    scores, table = agreement
    s = scores.iloc[0]
    assert s["n_labels"] >= 250  # TRAIL SWE-bench has 256 annotated errors
    assert s["n_compared"] >= min_compared
    assert table["n"].sum() == s["n_compared"]
    assert -1.0 <= s["ari"] <= 1.0 and 0.0 <= s["nmi"] <= 1.0


def test_trail_error_modes_against_human_categories(trail: fk.TraceStore) -> None:
    """From the traces alone: few annotated steps raised an error, so few are compared."""
    modes = fk.failure_modes(trail)
    assert modes["category"].isin(["code_failed", "rate_limit", "server_error"]).any()
    _check(compare_to_labels(modes, trail.labels_df(), label_name="error_category"), 10)


def test_trail_modes_with_annotator_comments_as_judge_text(trail: fk.TraceStore) -> None:
    """Annotated steps become events whose comments (description + evidence) are clustered."""
    modes = fk.failure_modes(trail, label_names=("error_category",))
    assert (modes["category"] == "judged").sum() >= 100
    summary = fk.failure_mode_summary(trail, modes=modes)
    assert summary["n_events"].sum() == len(modes)
    _check(compare_to_labels(modes, trail.labels_df(), label_name="error_category"), 200)
