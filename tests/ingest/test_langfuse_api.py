"""Langfuse public-API exports (observations, traces with observations and scores).

There is no real sample; the records follow the documented API shape (``Observation``,
``TraceWithFullDetails``, ``Score`` in the Langfuse OpenAPI spec).
"""

from __future__ import annotations

import json
from pathlib import Path

import failkit as fk
from failkit.ingest import detect

TRACE = "7f3c2a1b9d8e4f60a1b2c3d4e5f60718"


def observation(id_: str, type_: str, start: str, end: str, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": id_, "traceId": TRACE, "type": type_, "name": type_.lower(),
        "startTime": f"2026-01-01T00:00:0{start}.000Z", "endTime": f"2026-01-01T00:00:0{end}.000Z",
        "parentObservationId": "root", "level": "DEFAULT", "statusMessage": None,
        "metadata": {}, "usage": {"input": 0, "output": 0, "total": 0, "unit": "TOKENS"},
    }  # fmt: skip
    return base | kw


OBSERVATIONS = [
    observation("root", "AGENT", "0", "9", name="weather_agent", parentObservationId=None),
    observation("gen1", "GENERATION", "1", "2", model="gpt-4o-mini",
                usageDetails={"input": 112, "output": 18, "total": 130},
                calculatedTotalCost=0.00003),
    observation("tool1", "TOOL", "3", "4", name="get_weather", level="ERROR",
                statusMessage="TimeoutError('weather API did not answer')",
                input={"city": "Paris"}, metadata={"tool_call_id": "call_w1"}),
    observation("note", "EVENT", "5", "5", parentObservationId="gen1"),
]  # fmt: skip


def test_observations_page(tmp_path: Path) -> None:
    path = tmp_path / "observations.json"
    path.write_text(json.dumps({"data": OBSERVATIONS, "meta": {"page": 1, "totalItems": 4}}))
    assert detect(path).name == "langfuse_api"
    store = fk.connect()
    report = store.ingest(path, progress=False)
    assert (report.rows_read, report.rows_quarantined) == (4, 0)
    spans = store.spans_df().set_index("span_id")
    assert spans["kind"].to_dict() == {
        "root": "agent",
        "gen1": "llm",
        "tool1": "tool",
        "note": "other",
    }
    assert spans.loc["gen1", ["tokens_in", "tokens_out", "cost_usd", "model"]].tolist() == [
        112, 18, 0.00003, "gpt-4o-mini"
    ]  # fmt: skip
    tool = spans.loc["tool1"]
    assert [tool.status, tool.error_type, tool.error_message] == [
        "error", "TimeoutError", "weather API did not answer"
    ]  # fmt: skip
    assert [tool.tool_name, tool.tool_call_id, tool.tool_args] == [
        "get_weather", "call_w1", '{"city": "Paris"}'
    ]  # fmt: skip
    assert spans["parent_id"].dropna().isin(spans.index).all()


def test_trace_with_observations_and_scores_as_json_lines(tmp_path: Path) -> None:
    trace = {
        "id": TRACE, "name": "weather-run", "sessionId": "sess-42", "userId": "user-7",
        "observations": OBSERVATIONS[:2],
        "scores": [{"id": "s1", "traceId": TRACE, "name": "correct", "value": 1.0,
                    "dataType": "BOOLEAN", "source": "ANNOTATION", "comment": "ok"}],
    }  # fmt: skip
    path = tmp_path / "export.jsonl"
    lines = [trace, OBSERVATIONS[2], {"id": "x", "traceId": TRACE}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + "not json\n")
    store = fk.connect()
    report = store.ingest(path, format="langfuse_api", progress=False)
    assert report.rows_read == report.rows_loaded + report.rows_quarantined
    assert report.rows_quarantined == 2
    reasons = store.quarantine_df().set_index("position")["reason"]
    assert reasons["line 3"].startswith("not a Langfuse observation")
    assert "not valid JSON" in reasons["line 4"]
    traces = store.traces_df()
    assert traces[["name", "session_id", "user_id", "n_spans"]].values.tolist() == [
        ["weather-run", "sess-42", "user-7", 3]
    ]
    labels = store.labels_df()
    assert labels[["name", "value", "score", "source"]].values.tolist() == [
        ["correct", "1.0", 1.0, "langfuse annotation"]
    ]
