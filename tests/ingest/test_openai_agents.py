"""OpenAI Agents SDK traces: trace / trace.span JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import sample

import failkit as fk
from failkit.ingest import detect

TRACE_1 = "trace_5fb1e8e65f1c40939cea536194cf758e"
TRACE_2 = "trace_1cadb9f823a549a68a67468281209486"


def test_sample_detected_and_loaded() -> None:
    """Counted in the file: 14 spans (10 + 4) and 2 trace records; 3 spans carry an error."""
    path = sample("openai_agents_trace.jsonl")
    assert detect(path).name == "openai_agents"
    store = fk.connect()
    report = store.ingest(path, progress=False)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (16, 16, 0)
    spans = store.spans_df()
    traces = store.traces_df().set_index("trace_id")
    assert traces["n_spans"].to_dict() == {TRACE_1: 10, TRACE_2: 4}
    assert traces.loc[TRACE_1, ["name", "session_id", "user_id"]].tolist() == [
        "weather-run",
        "sess-42",
        "user-7",
    ]
    # custom spans (task, turn) are "other"
    assert spans["kind"].value_counts().to_dict() == {"other": 6, "llm": 4, "agent": 2, "tool": 2}
    errors = spans[spans.status == "error"].set_index("kind")
    assert errors["error_type"].to_dict() == {
        "agent": "Error in agent run",
        "llm": "Error getting response",
        "tool": "Error running tool (non-fatal)",
    }
    assert (
        errors.loc["llm", "error_message"] == "Error code: 429 - Rate limit reached for gpt-4o-mini"
    )
    assert spans["parent_id"].dropna().isin(set(spans["span_id"])).all()
    assert spans["parent_id"].isna().sum() == 2
    assert spans["span_id"].str.startswith("span_").all()
    tools = spans[spans.kind == "tool"].sort_values("start_time")
    assert tools["tool_name"].tolist() == ["get_weather", "get_weather"]
    assert tools["tool_call_id"].tolist() == ["call_w1", "call_w2"]  # matched to the generation
    assert tools["output"].tolist()[1] == "18C, sunny"
    assert [json.loads(a) for a in tools["tool_args"]] == [{"city": "Paris"}] * 2
    llm = spans[spans.kind == "llm"]
    assert set(llm["model"]) == {"gpt-4o-mini"}
    assert (int(llm.tokens_in.sum()), int(llm.tokens_out.sum())) == (112 + 150 + 190, 18 + 18 + 12)
    assert traces.loc[TRACE_1, ["tokens_in", "tokens_out"]].tolist() == [452, 48]


def test_exporter_batches_and_bad_records(tmp_path: Path) -> None:
    """A ``{"data": [...]}`` batch line loads like single records; other objects are quarantined."""
    lines = sample("openai_agents_trace.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    path = tmp_path / "batch.jsonl"
    path.write_text(
        json.dumps({"data": records[:8]}) + "\n"
        + "\n".join(lines[8:]) + "\n"
        + json.dumps({"object": "trace.unknown", "id": "x"}) + "\n"
    )  # fmt: skip
    store = fk.connect()
    report = store.ingest(path, format="openai_agents", progress=False)
    assert (report.rows_loaded, report.rows_quarantined) == (16, 1)
    assert "expected trace or trace.span" in store.quarantine_df()["reason"].iloc[0]
    assert store.quarantine_df()["position"].iloc[0] == "line 10"
    assert len(store.spans_df()) == 14
