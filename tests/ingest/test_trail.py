"""TRAIL SWE-bench: 26 nested OpenInference traces and their human annotations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import failkit as fk
from failkit.ingest import detect
from failkit.ingest.records import loads_tolerant
from failkit.ingest.trail import CATEGORIES, normalize_category, parse_duration

TRAIL = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "trail"
TRACES = TRAIL / "traces" / "SWE_Bench"
ANNOTATIONS = TRAIL / "annotations" / "SWE_Bench"
HEADLESS = "72822db6e120878d916b515c2501246b"  # its root span is missing from the export


def shared(path: Path) -> Path:
    """``path`` under ../shared, skipping the test when the shared folder is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared datasets live beside the repo in ../shared")
    return path


@pytest.fixture(scope="module")
def trail() -> tuple[fk.TraceStore, fk.IngestReport, fk.IngestReport]:
    store = fk.connect()
    traces = store.ingest(shared(TRACES), progress=False)
    annotations = store.ingest(shared(ANNOTATIONS), progress=False)
    return store, traces, annotations


def test_files_are_detected() -> None:
    assert {detect(p).name for p in shared(TRACES).iterdir()} == {"trail_trace"}
    assert {detect(p).name for p in shared(ANNOTATIONS).iterdir()} == {"trail_annotations"}


def test_traces_load(trail: tuple[fk.TraceStore, fk.IngestReport, fk.IngestReport]) -> None:
    """849 spans in 26 files; one span appears twice in its file (same id, same content)."""
    store, report, _ = trail
    assert len(report.files) == 26
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (849 + 26, 874, 1)
    quarantined = store.quarantine_df()
    assert quarantined["reason"].str.startswith("duplicate span: span_id b14646a5fcac02fd").all()
    assert quarantined["path"].str.contains(HEADLESS).all()
    spans = store.spans_df()
    assert len(spans) == 848
    traces = store.traces_df()
    assert sorted(traces["trace_id"]) == sorted(p.name.split(".")[0] for p in TRACES.iterdir())
    assert spans["kind"].value_counts().to_dict() == {
        "llm": 376, "chain": 376, "other": 51, "agent": 25, "tool": 20,
    }  # fmt: skip
    assert (spans["status"] == "error").sum() == 55
    llm = spans[spans.kind == "llm"]
    assert (int(llm.tokens_in.sum()), int(llm.tokens_out.sum())) == (5_736_184, 167_978)
    assert spans.loc[spans.kind == "agent", "tokens_in"].isna().all()  # agents repeat the sums
    errors = spans[spans.status == "error"]
    assert errors["error_type"].value_counts()["smolagents.utils.AgentExecutionError"] == 34
    tools = spans[spans.kind == "tool"]
    assert set(tools["tool_name"]) == {"final_answer"}
    assert all(set(json.loads(a)) == {"answer"} for a in tools["tool_args"])  # positional arg
    # parents resolve except in the one file whose root span was never exported (pitfall 5)
    ids = set(zip(spans.trace_id, spans.span_id, strict=True))
    dangling = spans[
        [(t, p) not in ids for t, p in zip(spans.trace_id, spans.parent_id, strict=True)]
    ]
    assert dangling["parent_id"].notna().sum() == 7
    assert set(dangling.loc[dangling.parent_id.notna(), "trace_id"]) == {HEADLESS}
    task_runs = traces["task_id"].value_counts()
    assert task_runs["sqlfluff__sqlfluff-1517"] == 3  # the SWE-bench instance: repeated trials
    assert traces.set_index("trace_id").loc["0e6f7928953ab5a568bae640ce915cc3", "task_id"] == (
        "marshmallow-code__marshmallow-1343"
    )


def test_annotations_become_labels(
    trail: tuple[fk.TraceStore, fk.IngestReport, fk.IngestReport],
) -> None:
    """31 annotation files (5 of runs absent from traces/): 256 errors, 5 scores each."""
    store, _, report = trail
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (411, 411, 0)
    labels = store.labels_df()
    assert labels["name"].value_counts().to_dict() == {
        "error_category": 256, "reliability": 31, "security": 31,
        "instruction_adherence": 31, "plan_opt": 31, "overall": 31,
    }  # fmt: skip
    errors = labels[labels.name == "error_category"]
    assert set(errors["value"]) <= set(CATEGORIES)
    counts = errors["value"].value_counts()
    assert counts["Formatting Errors"] == 72 + 1  # + "Formatting Error"
    assert (
        counts["Instruction Non-compliance"] == 88 + 2 + 1
    )  # + "Non-Compliance", "non complience"
    assert errors["score"].value_counts().to_dict() == {2.0: 178, 1.0: 51, 3.0: 27}
    located = store.sql(
        """
        SELECT l.span_id, l.comment, s.span_id IS NOT NULL AS resolved
        FROM labels l LEFT JOIN spans s ON s.trace_id = l.trace_id AND s.span_id = l.span_id
        WHERE l.name = 'error_category' AND l.trace_id IN (SELECT trace_id FROM traces)
        """
    )
    assert len(located) == 211
    assert located["resolved"].sum() == 210  # every location that is a span id resolves
    unresolved = located[~located.resolved]
    assert unresolved["span_id"].isna().all()
    assert unresolved["comment"].str.contains("Location: Span ID not found for this shard").all()


def test_trailing_commas_are_tolerated_and_worse_is_quarantined(tmp_path: Path) -> None:
    """Pitfall 16. None of the SWE_Bench annotation files is invalid JSON (checked), so the
    trailing-comma case is made here from a real one."""
    original = shared(ANNOTATIONS) / "0e6f7928953ab5a568bae640ce915cc3.json"
    text = original.read_text()
    with_commas = text.replace('"impact": "LOW"', '"impact": "LOW",').rstrip()[:-1] + ",\n}"
    fixed = tmp_path / "fixed" / original.name
    broken = tmp_path / "broken" / original.name
    fixed.parent.mkdir()
    broken.parent.mkdir()
    fixed.write_text(with_commas)
    broken.write_text(text[: len(text) // 2])
    store = fk.connect()
    reference = store.ingest(original, progress=False).rows_loaded
    assert reference > 0
    tolerant = fk.connect()
    assert (
        tolerant.ingest(fixed, format="trail_annotations", progress=False).rows_loaded == reference
    )
    labels = [s.labels_df().drop(columns="ingest_id") for s in (store, tolerant)]
    assert labels[0].equals(labels[1])
    bad = fk.connect()
    report = bad.ingest(broken, format="trail_annotations", progress=False)
    assert (report.rows_loaded, report.rows_quarantined) == (0, 1)
    assert "not valid JSON" in bad.quarantine_df()["reason"].iloc[0]


def test_helpers() -> None:
    assert loads_tolerant('{"a": [1, 2 ,], "b": "x,]" ,}') == {"a": [1, 2], "b": "x,]"}
    assert normalize_category("Task Orchestration Errors") == "Task Orchestration"
    assert normalize_category("Language-Only") == "Language-only"
    assert normalize_category("Something New ") == "Something New"
    duration = parse_duration("PT2M5.655384S")
    assert duration is not None and duration.total_seconds() == pytest.approx(125.655384)
    assert parse_duration("soon") is None
