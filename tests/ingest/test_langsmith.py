"""LangSmith runs: create/patch ops and already-merged runs load to the same spans."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
from conftest import sample

import failkit as fk
from failkit.ingest import detect

FILES = ["langsmith_runs.ops.jsonl", "langsmith_runs.merged.jsonl"]
RUN_1 = "01a20a8e-a0f1-77dd-a959-5e41c45a8d33"
RUN_2 = "01a20a8e-a114-7036-b6ce-fd4b601279e3"


def load(path: Path, **kw: str) -> tuple[fk.TraceStore, fk.IngestReport]:
    store = fk.connect()
    return store, store.ingest(path, progress=False, **kw)


@pytest.mark.parametrize("name", FILES)
def test_sample_detected_and_loaded(name: str) -> None:
    """Counted in the file: 29 runs (23 + 6) of 2 traces; 6 runs carry an error."""
    path = sample(name)
    assert detect(path).name == "langsmith_runs"
    store, report = load(path)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (31, 31, 0)
    spans = store.spans_df()
    traces = store.traces_df().set_index("trace_id")
    assert traces["n_spans"].to_dict() == {RUN_1: 23, RUN_2: 6}
    assert spans["kind"].value_counts().to_dict() == {"chain": 23, "llm": 4, "tool": 2}
    assert (spans["status"] == "error").sum() == 6
    assert spans.loc[spans.status == "error", "error_type"].value_counts().to_dict() == {
        "RateLimitError": 5,
        "TimeoutError": 1,
    }
    # every parent_run_id resolves; the two roots are the two weather_agent runs
    ids = set(spans["span_id"])
    assert spans["parent_id"].dropna().isin(ids).all()
    assert spans.loc[spans.parent_id.isna(), "span_id"].tolist() == [RUN_1, RUN_2]
    tools = spans[spans.kind == "tool"].sort_values("start_time")
    assert tools["tool_name"].tolist() == ["get_weather", "get_weather"]
    assert tools["tool_call_id"].tolist() == ["call_w1", "call_w2"]
    assert tools["status"].tolist() == ["error", "ok"]
    assert tools["error_message"].iloc[0] == "weather API did not answer within 5.0s"
    assert [json.loads(a) for a in tools["tool_args"]] == [{"city": "Paris"}] * 2
    llm = spans[spans.kind == "llm"]
    assert set(llm["provider"]) == {"openai"}
    assert set(llm["model"]) == {"gpt-4o-mini-2024-07-18", "gpt-4o-mini"}  # response / request
    assert (int(llm.tokens_in.sum()), int(llm.tokens_out.sum())) == (112 + 150 + 190, 18 + 18 + 12)
    assert spans.loc[spans.kind != "llm", "tokens_in"].isna().all()
    assert traces.loc[RUN_1, ["name", "session_id", "tokens_in"]].tolist() == [
        "weather_agent",
        "sess-42",
        452,
    ]


def test_ops_and_merged_give_the_same_spans() -> None:
    frames = [load(sample(name))[0].spans_df().drop(columns="ingest_id") for name in FILES]
    pd.testing.assert_frame_equal(frames[0], frames[1])


def write_lines(path: Path, records: Sequence[object]) -> Path:
    path.write_text("".join(f"{r if isinstance(r, str) else json.dumps(r)}\n" for r in records))
    return path


ROOT = "0199aaaa-0000-7000-8000-000000000001"
CHILD = "0199aaaa-0000-7000-8000-000000000002"
DOTTED = f"20260101T000000000000Z{ROOT}.20260101T000001500000Z{CHILD}"


def test_patch_keeps_fields_it_lacks_and_dotted_order_recovers_ids(tmp_path: Path) -> None:
    """A patch with null outputs keeps the post's; trace and parent come from dotted_order."""
    ops = [
        {"op": "post", "id": ROOT.upper(), "run_type": "chain", "name": "root",
         "trace_id": ROOT, "dotted_order": f"20260101T000000000000Z{ROOT}",
         "start_time": "2026-01-01T00:00:00Z", "inputs": {"q": "hi"}},
        {"op": "post", "id": CHILD, "run_type": "parser", "name": "parse",
         "dotted_order": DOTTED, "outputs": {"x": 1}},
        {"op": "patch", "id": CHILD, "end_time": "2026-01-01T00:00:02Z", "outputs": None},
        {"op": "patch", "id": ROOT, "end_time": "2026-01-01T00:00:03Z"},
    ]  # fmt: skip
    store, report = load(write_lines(tmp_path / "ops.jsonl", ops))
    assert report.rows_quarantined == 0
    spans = store.spans_df().set_index("span_id")
    assert spans.loc[CHILD, ["trace_id", "parent_id", "kind"]].tolist() == [ROOT, ROOT, "chain"]
    assert spans.loc[CHILD, "output"] == '{"x": 1}'
    assert spans.loc[CHILD, "duration_s"] == pytest.approx(0.5)  # start from dotted_order
    assert spans.loc[ROOT, "input"] == '{"q": "hi"}'  # upper-case id merged with its patch


def test_bad_lines_are_quarantined_with_reasons(tmp_path: Path) -> None:
    lines = [
        {"id": ROOT, "run_type": "chain", "trace_id": ROOT, "start_time": "2026-01-01T00:00:00Z"},
        '{"id": "cut short',
        {"run_type": "tool", "trace_id": ROOT},
        {"id": CHILD, "run_type": "tool", "trace_id": ROOT, "start_time": "yesterday"},
    ]
    store, report = load(write_lines(tmp_path / "runs.jsonl", lines))
    assert report.rows_read == report.rows_loaded + report.rows_quarantined
    assert report.rows_quarantined == 3
    reasons = store.quarantine_df().set_index("position")["reason"]
    assert "not valid JSON" in reasons["line 2"]
    assert "without an id" in reasons["line 3"]
    assert "run cannot be read (Invalid isoformat" in reasons[f"line 4 (run {CHILD})"]
    assert store.spans_df()["span_id"].tolist() == [ROOT]
