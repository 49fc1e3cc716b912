"""OTLP traces (OTel GenAI, OpenInference, Langfuse, pydantic-ai, smolagents, LangGraph, JS).

The per-file numbers below were counted in the ``.otlp.jsonl`` files with a plain JSON walk
(independent of the adapter): spans, distinct trace ids, spans with ``status.code == 2`` or
Langfuse level ERROR, kinds by the FORMATS.md table, spans whose parent id is a span of the
same trace in the file, tool names, and input/output tokens of the llm spans.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import sample

import failkit as fk
from failkit.errors import FormatError
from failkit.ingest import detect, otlp, otlp_arrow
from failkit.ingest import lines as lines_module
from failkit.ingest.otlp import sniff_encoding
from failkit.ingest.otlp_arrow import parse_requests

ENCODINGS = ["otlp.jsonl", "otlp.pb", "pb-json_format.json", "console.txt"]
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in unix nanoseconds
TRACE = "4bf92f3577b34da6a3ce929d0e0e4701"


def load(path: Path) -> tuple[fk.TraceStore, fk.IngestReport]:
    store = fk.connect()
    return store, store.ingest(path, progress=False)


# -- building OTLP JSON by hand ---------------------------------------------------------------
def anyvalue(v: Any, *, ints: str = "str") -> dict[str, Any]:
    """An OTLP JSON AnyValue; ``ints="num"`` writes int64 as JSON numbers (the JS exporter)."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v) if ints == "str" else v}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [anyvalue(x, ints=ints) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": kvs(v, ints=ints)}}
    return {"stringValue": v}


def kvs(attrs: dict[str, Any], *, ints: str = "str") -> list[dict[str, Any]]:
    return [{"key": k, "value": anyvalue(v, ints=ints)} for k, v in attrs.items()]


def span(
    span_id: str,
    *,
    parent: str | None = None,
    trace: str = TRACE,
    name: str = "s",
    attrs: dict[str, Any] | None = None,
    start: int = T0,
    end: int = T0 + 1_000_000_000,
    status: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    ints: str = "str",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start) if ints == "str" else start,
        "endTimeUnixNano": str(end) if ints == "str" else end,
        "attributes": kvs(attrs or {}, ints=ints),
        "status": status or {},
    }
    if parent:
        out["parentSpanId"] = parent
    if events:
        out["events"] = events
    return out


def request(*spans: dict[str, Any], resource: dict[str, Any] | None = None) -> dict[str, Any]:
    res = resource if resource is not None else {"service.name": "svc"}
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": kvs(res)},
                "scopeSpans": [{"scope": {"name": "test", "version": "1"}, "spans": list(spans)}],
            }
        ]
    }


def exception(type_: str, message: str) -> dict[str, Any]:
    return {
        "timeUnixNano": str(T0 + 500_000_000),
        "name": "exception",
        "attributes": kvs({"exception.type": type_, "exception.message": message}),
    }


def write(path: Path, *lines: Any) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), "utf-8"
    )
    return path


def spans_of(tmp_path: Path, *lines: Any) -> pd.DataFrame:
    store, report = load(write(tmp_path / "t.otlp.jsonl", *lines))
    assert report.rows_quarantined == 0, store.quarantine_df().to_dict("records")
    return store.spans_df().set_index("span_id")


# -- the real samples -------------------------------------------------------------------------
EXPECTED = {
    # stem: traces, spans, error spans, kinds, parent links, tool names, llm tokens in/out
    "otel_genai_agent": (2, 7, 3, {"agent": 2, "llm": 3, "tool": 2}, 5, {"get_weather"}, (273, 30)),
    "openinference_agent": (
        2, 8, 3, {"agent": 1, "chain": 1, "llm": 3, "retriever": 1, "tool": 2}, 6,
        {"get_weather"}, (273, 30),
    ),
    "pydantic_ai_genai": (
        2, 9, 3, {"agent": 2, "llm": 4, "tool": 3}, 7, {"get_weather"}, (237, 35),
    ),
    "smolagents_openinference": (
        2, 12, 4, {"agent": 1, "chain": 4, "llm": 4, "tool": 3}, 10,
        {"final_answer", "get_weather"}, (2744, 67),
    ),
    "langgraph_openinference": (
        2, 29, 6, {"agent": 6, "chain": 17, "llm": 4, "tool": 2}, 27, {"get_weather"}, (452, 48),
    ),
    "langfuse_otel": (
        2, 8, 3, {"agent": 2, "llm": 3, "other": 1, "tool": 2}, 6, {"get_weather"}, (273, 30),
    ),
}  # fmt: skip
FILES = [(f"{stem}.{enc}", stem) for stem in EXPECTED for enc in ENCODINGS]
JS = ("js_genai_agent.otlp-http.json", (1, 5, 1, {"agent": 1, "llm": 2, "tool": 2}, 4,
                                        {"get_weather"}, (273, 30)))  # fmt: skip


@pytest.mark.parametrize(
    ("name", "expected"),
    [(f, EXPECTED[s]) for f, s in FILES] + [JS],
    ids=[f for f, _ in FILES] + [JS[0]],
)
def test_sample_counts(name: str, expected: tuple[Any, ...]) -> None:
    path = sample(name)
    assert detect(path).name == "otlp"
    store, report = load(path)
    n_traces, n_spans, n_errors, kinds, links, tools, tokens = expected
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (n_spans, n_spans, 0)
    spans = store.spans_df()
    traces = store.traces_df()
    assert len(traces) == n_traces
    assert (spans["status"] == "error").sum() == n_errors
    assert spans["kind"].value_counts().to_dict() == kinds
    linked = spans.merge(spans[["trace_id", "span_id"]].rename(columns={"span_id": "parent_id"}))
    assert len(linked) == links
    assert set(spans["tool_name"].dropna()) == tools
    assert (traces["tokens_in"].sum(), traces["tokens_out"].sum()) == tokens


KEY_COLUMNS = [
    "trace_id", "span_id", "parent_id", "name", "kind", "status", "error_type",
    "error_message", "model", "provider", "tool_name", "tool_call_id", "tool_args", "input",
    "output", "tokens_in", "tokens_out", "cost_usd", "confidence", "source", "events",
    "attributes",
]  # fmt: skip


def _key_frame(path: Path) -> pd.DataFrame:
    store, _ = load(path)
    df = store.spans_df().sort_values(["trace_id", "span_id"]).reset_index(drop=True)

    def normal(text: Any) -> Any:
        return text if not isinstance(text, str) else json.dumps(json.loads(text), sort_keys=True)

    # the console exporter writes no instrumentation scope
    df["attributes"] = [
        json.dumps({k: v for k, v in json.loads(a).items() if not k.startswith("otel.scope.")})
        for a in df["attributes"]
    ]
    for col in ("events", "tool_args", "attributes"):
        df[col] = df[col].map(normal)
    return df


@pytest.mark.parametrize("stem", list(EXPECTED))
def test_encodings_give_identical_spans(stem: str) -> None:
    """JSON lines, binary protobuf, json_format (base64 ids, enum names) and console output."""
    frames = {enc: _key_frame(sample(f"{stem}.{enc}")) for enc in ENCODINGS}
    base = frames["otlp.jsonl"]
    for enc, df in frames.items():
        pd.testing.assert_frame_equal(df[KEY_COLUMNS], base[KEY_COLUMNS], obj=enc)
        # the console prints microseconds only: times agree to the microsecond
        for col in ("start_time", "end_time"):
            assert ((df[col] - base[col]).abs() <= pd.Timedelta(microseconds=1)).all()
        assert ((df["duration_s"] - base["duration_s"]).abs() <= 2e-6).all()


def test_otel_genai_values() -> None:
    store, _ = load(sample("otel_genai_agent.otlp.jsonl"))
    spans = store.spans_df().set_index("span_id")
    chat = spans.loc["00f067aa0ba90202"]
    assert (chat["kind"], chat["model"], chat["provider"]) == (
        "llm", "gpt-4o-mini-2024-07-18", "openai"  # the response model comes first
    )  # fmt: skip
    assert (chat["tokens_in"], chat["tokens_out"], chat["status"]) == (112, 18, "unset")
    assert json.loads(chat["input"])[0]["parts"][0]["content"] == "What's the weather in Paris?"
    assert chat["start_time"] == pd.Timestamp("2026-01-01 00:00:00.010")
    assert chat["duration_s"] == pytest.approx(0.89)
    attrs = json.loads(chat["attributes"])
    assert attrs["gen_ai.request.max_tokens"] == 512 and attrs["server.port"] == 443
    assert attrs["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert attrs["resource.service.name"] == "weather-agent-genai"
    assert (
        attrs["otel.scope.name"] == "failkit.samples.genai" and attrs["otel.span.kind"] == "client"
    )
    tool = spans.loc["00f067aa0ba90203"]
    assert (tool["tool_name"], tool["tool_call_id"], json.loads(tool["tool_args"])) == (
        "get_weather", "call_w1", {"city": "Paris"}
    )  # fmt: skip
    # error.type attribute first, the status message as message
    assert (tool["status"], tool["error_type"], tool["error_message"]) == (
        "error", "timeout", "WeatherApiTimeout: weather API did not answer within 5.0s"
    )  # fmt: skip
    (event,) = json.loads(tool["events"])
    assert (event["name"], event["time"]) == ("exception", "2026-01-01T00:00:02.910000Z")
    assert event["attributes"]["exception.type"] == "__main__.WeatherApiTimeout"
    assert json.loads(spans.loc["00f067aa0ba90204", "output"]) == {
        "temp_c": 18, "conditions": "sunny"
    }  # fmt: skip
    traces = store.traces_df().set_index("trace_id")
    assert traces.loc[TRACE, "session_id"] == "conv_5j66UpCpwteGg4YSxUnt7lPY"
    assert traces.loc[TRACE, "name"] == "invoke_agent weather_agent"
    assert (spans["source"] == "otlp").all()


def test_openinference_values() -> None:
    store, _ = load(sample("openinference_agent.otlp.jsonl"))
    spans = store.spans_df().set_index("span_id")
    llm = spans.loc["00f067aa0ba90202"]
    assert (llm["model"], llm["provider"], llm["cost_usd"]) == (
        "gpt-4o-mini-2024-07-18", "openai", pytest.approx(2.76e-05)
    )  # fmt: skip
    assert json.loads(llm["input"])["messages"][1]["content"] == "What's the weather in Paris?"
    tool = spans.loc["00f067aa0ba90203"]
    assert (tool["tool_name"], tool["tool_call_id"], tool["error_type"]) == (
        "get_weather", "call_w1", "__main__.WeatherApiTimeout"
    )  # fmt: skip
    assert json.loads(tool["tool_args"]) == {"city": "Paris"}
    assert spans.loc["00f067aa0ba90207", "kind"] == "retriever"
    assert (spans["source"] == "openinference").all()
    traces = store.traces_df()
    assert set(traces["session_id"]) == {"sess-42"} and set(traces["user_id"]) == {"user-7"}


def test_langfuse_values() -> None:
    store, _ = load(sample("langfuse_otel.otlp.jsonl"))
    spans = store.spans_df()
    assert (spans["source"] == "langfuse").all()
    gen = spans[(spans["kind"] == "llm") & spans["cost_usd"].notna()].iloc[0]
    assert (gen["model"], gen["tokens_in"], gen["tokens_out"]) == ("gpt-4o-mini", 112, 18)
    assert gen["cost_usd"] == pytest.approx(2.76e-05)  # cost_details total
    tools = spans[spans["kind"] == "tool"].sort_values("start_time")
    # the observation name is the tool; metadata holds the call id as a JSON string
    assert tools["tool_name"].tolist() == ["get_weather", "get_weather"]
    assert tools["tool_call_id"].tolist() == ["call_w1", "call_w1"]
    assert [json.loads(a) for a in tools["tool_args"]] == [{"city": "Paris"}] * 2
    assert tools["status"].tolist() == ["error", "unset"]  # level ERROR
    event = spans[spans["name"] == "retrying tool"].iloc[0]
    assert (event["kind"], event["status"]) == ("other", "unset")  # an event at level WARNING


def test_smolagents_values() -> None:
    """kwargs of smolagents' tool input; the agent span's token sum is not counted twice."""
    store, _ = load(sample("smolagents_openinference.otlp.jsonl"))
    spans = store.spans_df().set_index("span_id")
    assert json.loads(spans.loc["00f067aa0ba90204", "tool_args"]) == {"city": "Paris"}
    assert json.loads(spans.loc["00f067aa0ba9020a", "tool_args"]) == {
        "answer": "It is 18C and sunny in Paris."
    }  # fmt: skip
    assert spans.loc["00f067aa0ba90201", "tokens_in"] == 2744  # what the agent span says
    traces = store.traces_df().set_index("trace_id")
    assert traces.loc[TRACE, "tokens_in"] == 2744  # llm spans only (pitfall 12)


def test_langgraph_values() -> None:
    """repr(exc) + traceback status messages keep the repr; OK statuses stay ok."""
    store, _ = load(sample("langgraph_openinference.otlp.jsonl"))
    spans = store.spans_df()
    tool = spans[(spans["kind"] == "tool") & (spans["status"] == "error")].iloc[0]
    assert tool["error_message"] == "TimeoutError('weather API did not answer within 5.0s')"
    assert tool["error_type"] == "TimeoutError"
    assert json.loads(tool["tool_args"]) == "Paris"  # plain text input stays a JSON string
    assert spans["status"].value_counts().to_dict() == {"ok": 23, "error": 6}


def test_pydantic_ai_values() -> None:
    store, _ = load(sample("pydantic_ai_genai.otlp.jsonl"))
    spans = store.spans_df().set_index("span_id")
    retry = spans.loc["00f067aa0ba90203"]  # ModelRetry: an ERROR span without a status message
    assert (retry["status"], retry["error_type"], retry["error_message"]) == (
        "error", "pydantic_ai.exceptions.ToolRetryError", "weather API timed out, please retry"
    )  # fmt: skip
    agent = spans.loc["00f067aa0ba90201"]
    assert pd.isna(agent["tokens_in"])  # gen_ai.aggregated_usage.* is not this span's usage
    assert spans.loc["00f067aa0ba90202", "provider"] == "function"
    # pitfall 7: an ERROR span inside a successful run; OTLP says nothing about the outcome
    run = store.traces_df().set_index("trace_id").loc[TRACE]
    assert (run["status"], run["outcome"]) == ("error", "unknown")


def test_js_int64_numbers() -> None:
    store, _ = load(sample("js_genai_agent.otlp-http.json"))
    spans = store.spans_df().set_index("span_id")
    chat = spans.loc["00f067aa0ba90202"]
    assert (chat["tokens_in"], chat["tokens_out"]) == (112, 18)
    assert chat["start_time"] == pd.Timestamp("2026-01-01 00:00:00.010")
    assert json.loads(chat["attributes"])["server.port"] == 443


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    path = tmp_path / "t.otlp.jsonl.gz"
    with open(sample("otel_genai_agent.otlp.jsonl"), "rb") as src, gzip.open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    _, report = load(path)
    assert (report.rows_loaded, report.rows_quarantined) == (7, 0)


# -- pitfalls (FORMATS.md) --------------------------------------------------------------------
def test_pitfall_1_ids(tmp_path: Path) -> None:
    """Hex ids are lowercased and stripped of spaces; json_format's base64 ids become hex."""
    base64 = {"traceId": "S/kvNXezTaajzpKdDg5HAQ==", "spanId": "APBnqgupAgI=",
              "parentSpanId": "APBnqgupAgE="}  # fmt: skip
    spans = spans_of(
        tmp_path,
        request(span("00F067AA0BA90201", trace=TRACE.upper())),
        request({**span("x"), **base64, "kind": "SPAN_KIND_CLIENT"}),
        request(span(" 00F067AA0BA90203", parent="00f067aa0ba90201 ", trace=f" {TRACE} ")),
    )
    assert set(spans["trace_id"]) == {TRACE}
    assert spans.loc["00f067aa0ba90202", "parent_id"] == "00f067aa0ba90201"
    assert spans.loc["00f067aa0ba90203", "parent_id"] == "00f067aa0ba90201"
    assert json.loads(spans.loc["00f067aa0ba90202", "attributes"])["otel.span.kind"] == "client"


def test_pitfall_2_int64_strings_and_numbers(tmp_path: Path) -> None:
    """int64 as JSON strings (Python) and numbers (JS) read alike; nanos never via a double."""
    big = 2**62 + 1  # not representable as a double
    start = T0 + 123_456_789
    end = start + 1_000_000_001

    def attrs(ints: str, sid: str) -> dict[str, Any]:
        return span(sid, start=start, end=end, ints=ints,
                    attrs={"n": big, "gen_ai.usage.input_tokens": 7})  # fmt: skip

    spans = spans_of(tmp_path, request(attrs("str", "a")), request(attrs("num", "b")))
    for sid in "ab":
        row = spans.loc[sid]
        assert json.loads(row["attributes"])["n"] == big
        assert row["tokens_in"] == 7
        assert row["duration_s"] == 1.000000001
        assert row["start_time"] == pd.Timestamp("2026-01-01 00:00:00.123457")


def test_pitfall_3_type_drift_between_files(tmp_path: Path) -> None:
    """Two files whose attribute values have different shapes load into one store alike."""
    one = write(
        tmp_path / "a.jsonl", request(span("a", attrs={"x": 1, "gen_ai.operation.name": "chat"}))
    )
    two = write(
        tmp_path / "b.jsonl",
        request(span("b", ints="num", attrs={"x": 2, "y": [1.5, True], "z": {"k": "v"},
                                             "gen_ai.operation.name": "chat"})),
    )  # fmt: skip
    store = fk.connect()
    report = store.ingest([one, two], progress=False)
    assert report.rows_loaded == 2
    attrs = store.spans_df().set_index("span_id")["attributes"].map(json.loads)
    assert attrs["a"]["x"] == 1
    assert (attrs["b"]["x"], attrs["b"]["y"], attrs["b"]["z"]) == (2, [1.5, True], {"k": "v"})


def test_pitfall_4_order_does_not_matter(tmp_path: Path) -> None:
    """Children before parents, spread over lines in any order, give the same spans."""
    lines = [
        request(span("c2", parent="c1", start=T0 + 3, end=T0 + 4)),
        request(span("c1", parent="root", start=T0 + 2, end=T0 + 5)),
        request(span("root", start=T0, end=T0 + 9, name="run")),
    ]
    first = spans_of(tmp_path, *lines)
    shuffled = lines[:]
    random.Random(1).shuffle(shuffled)
    (tmp_path / "again").mkdir()
    second = spans_of(tmp_path / "again", *shuffled[::-1])
    cols = ["parent_id", "start_time", "end_time"]
    pd.testing.assert_frame_equal(first.sort_index()[cols], second.sort_index()[cols])
    assert first["parent_id"].fillna("-").to_dict() == {"c2": "c1", "c1": "root", "root": "-"}


def test_pitfall_5_missing_root(tmp_path: Path) -> None:
    """A parent id that matches no span is kept as logged; that span names the run."""
    store, _ = load(write(tmp_path / "t.jsonl", request(
        span("step", parent="never-ended", name="Step 1", start=T0, end=T0 + 9),
        span("llm", parent="step", start=T0 + 1, end=T0 + 2),
    )))  # fmt: skip
    spans = store.spans_df().set_index("span_id")
    assert spans.loc["step", "parent_id"] == "never-ended"
    assert store.traces_df()["name"].tolist() == ["Step 1"]


def test_pitfall_6_exception_kept_per_span(tmp_path: Path) -> None:
    """The exception recorded on every span it passed through stays on each of them."""
    err = {"code": 2, "message": "RateLimitError: 429"}
    spans = spans_of(tmp_path, request(
        span("root", status=err, events=[exception("RateLimitError", "429")]),
        span("step", parent="root", status=err, events=[exception("AgentError", "429")]),
        span("llm", parent="step", status=err, events=[exception("RateLimitError", "429")]),
    ))  # fmt: skip
    assert (spans["status"] == "error").all()
    assert spans["error_type"].to_dict() == {
        "root": "RateLimitError", "step": "AgentError", "llm": "RateLimitError"
    }  # fmt: skip
    assert spans["events"].map(lambda e: len(json.loads(e))).tolist() == [1, 1, 1]


@pytest.mark.parametrize("path", ["pyarrow", "duckdb"])
def test_pitfall_8_empty_status_message(tmp_path: Path, path: str) -> None:
    """An ERROR span without a message falls back to its first exception event; error.type
    comes first. Alike whether pyarrow or DuckDB (a blank line) parses the file."""
    retry = {"name": "retry", "attributes": kvs({"exception.type": "NotAnException"})}
    line = request(
        span("a", status={"code": 2}, events=[exception("ToolRetryError", "please retry")]),
        span("b", status={"code": 2, "message": ""}, attrs={"error.type": "timeout"},
             events=[exception("TimeoutError", "no answer")]),
        span("c", status={"code": 2}, attrs={"langfuse.observation.status_message": "boom"}),
        span("d", status={"code": 2}, events=[
            retry, exception("FirstError", "first"), exception("SecondError", "second")]),
        span("e", status={"code": 2}, events=[
            {**exception("", ""), "attributes": kvs({"exception.message": "untyped"})},
            exception("LaterError", "later")]),
    )  # fmt: skip
    lines = [line] if path == "pyarrow" else [line, ""]
    spans = spans_of(tmp_path, *lines)
    assert spans["error_message"].to_dict() == {
        "a": "please retry", "b": "no answer", "c": "boom", "d": "first", "e": "untyped"
    }  # fmt: skip
    assert spans["error_type"].fillna("-").to_dict() == {
        "a": "ToolRetryError", "b": "timeout", "c": "-", "d": "FirstError", "e": "-"
    }  # fmt: skip


def test_pitfall_9_ok_and_unset(tmp_path: Path) -> None:
    spans = spans_of(tmp_path, request(
        span("ok", status={"code": 1}), span("ok2", status={"code": "STATUS_CODE_OK"}),
        span("unset", status={}), span("zero", status={"code": 0}),
        span("err", status={"code": "STATUS_CODE_ERROR"}),
        span("lf", attrs={"langfuse.observation.level": "ERROR"}),
        span("warn", attrs={"langfuse.observation.level": "WARNING"}),
    ))  # fmt: skip
    assert spans["status"].to_dict() == {
        "ok": "ok", "ok2": "ok", "unset": "unset", "zero": "unset", "err": "error",
        "lf": "error", "warn": "unset",
    }  # fmt: skip


def test_pitfall_10_flattened_messages_sort_numerically(tmp_path: Path) -> None:
    """OpenInference input is input.value; without it, llm.input_messages.{i} in index order
    (spans without openinference.span.kind keep those keys as attributes only)."""
    messages = {}
    for i in range(12):
        messages[f"llm.input_messages.{i}.message.role"] = "user"
        messages[f"llm.input_messages.{i}.message.content"] = f"m{i}"
    attrs = {
        "openinference.span.kind": "LLM",
        **messages,
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "f",
    }
    spans = spans_of(tmp_path, request(
        span("plain", attrs=messages),
        span("flat", attrs=attrs),
        span("value", attrs={**attrs, "input.value": "the input"}),
    ))  # fmt: skip
    assert spans.loc["plain", ["input", "output"]].isna().all()
    rebuilt = json.loads(spans.loc["flat", "input"])
    assert [m["content"] for m in rebuilt] == [f"m{i}" for i in range(12)]
    assert rebuilt[10] == {"role": "user", "content": "m10"}
    assert json.loads(spans.loc["flat", "output"]) == [
        {"role": "assistant", "tool_calls.0.tool_call.function.name": "f"}
    ]
    assert spans.loc["value", "input"] == "the input"


def test_pitfall_11_json_inside_strings(tmp_path: Path) -> None:
    spans = spans_of(tmp_path, request(
        span("genai", attrs={"gen_ai.operation.name": "execute_tool",
                             "gen_ai.tool.call.arguments": '{"city": "Paris", "days": [1, 2]}'}),
        span("bad", attrs={"gen_ai.operation.name": "execute_tool",
                           "gen_ai.tool.call.arguments": "{not json"}),
        span("lf", attrs={"langfuse.observation.type": "tool",
                          "langfuse.observation.input": '{"q": 1}',
                          "langfuse.observation.metadata.tool_call_id": '"call_9"'}),
    ))  # fmt: skip
    assert json.loads(spans.loc["genai", "tool_args"]) == {"city": "Paris", "days": [1, 2]}
    assert json.loads(spans.loc["bad", "tool_args"]) == "{not json"
    assert json.loads(spans.loc["lf", "tool_args"]) == {"q": 1}
    assert spans.loc["lf", "tool_call_id"] == "call_9"


def test_pitfall_12_tokens_summed_over_llm_spans(tmp_path: Path) -> None:
    store, _ = load(write(tmp_path / "t.jsonl", request(
        span("agent", attrs={"openinference.span.kind": "AGENT", "llm.token_count.prompt": 30,
                             "gen_ai.aggregated_usage.input_tokens": 30}),
        span("l1", parent="agent", attrs={"openinference.span.kind": "LLM",
                                          "llm.token_count.prompt": 10,
                                          "llm.token_count.completion": 1}),
        span("l2", parent="agent", attrs={"gen_ai.operation.name": "chat",
                                          "gen_ai.usage.input_tokens": 20,
                                          "gen_ai.usage.output_tokens": 2}),
    )))  # fmt: skip
    spans = store.spans_df().set_index("span_id")
    assert spans["tokens_in"].to_dict() == {"agent": 30, "l1": 10, "l2": 20}
    assert store.traces_df()[["tokens_in", "tokens_out"]].values.tolist() == [[30, 3]]


def test_pitfall_14_deprecated_keys(tmp_path: Path) -> None:
    spans = spans_of(tmp_path, request(
        span("new", attrs={"gen_ai.system": "old", "gen_ai.provider.name": "new",
                           "gen_ai.usage.prompt_tokens": 1, "gen_ai.usage.input_tokens": 2}),
        span("old", attrs={"gen_ai.system": "openai", "gen_ai.usage.prompt_tokens": 3,
                           "gen_ai.usage.completion_tokens": 4}),
    ))  # fmt: skip
    assert spans["provider"].to_dict() == {"new": "new", "old": "openai"}
    assert spans["tokens_in"].to_dict() == {"new": 2, "old": 3}
    assert spans.loc["old", "tokens_out"] == 4


def test_pitfall_16_bad_lines_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "t.otlp.jsonl"
    good = json.dumps(request(span("a"))).encode()
    path.write_bytes(
        good
        + b"\n"
        + b'{"resourceSpans": [{"scopeSpans": [,]}]}\n'  # invalid JSON
        + b"\n"  # blank lines are not records
        + b'{"resourceSpans": [], "x": "\xff\xfe"}\n'  # not UTF-8
        + b'{"spans": []}\n'  # valid JSON, no resourceSpans
        + json.dumps(request(span("b"))).encode()
    )
    store, report = load(path)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (5, 2, 3)
    assert sorted(store.spans_df()["span_id"]) == ["a", "b"]
    q = store.quarantine_df().set_index("position")["reason"]
    assert "not valid JSON" in q["line 2"]
    assert "not valid UTF-8" in q["line 4"]
    assert 'no "resourceSpans"' in q["line 5"]


def test_bad_spans_are_quarantined_by_position(tmp_path: Path) -> None:
    """Missing ids and end-before-start are left to the store's validation, with positions."""
    no_trace = {k: v for k, v in span("x").items() if k != "traceId"}
    store, report = load(write(tmp_path / "t.jsonl",
        request(span("a")),
        request(span("ok"), no_trace, span("back", start=T0 + 5_000_000, end=T0)),
    ))  # fmt: skip
    assert (report.rows_loaded, report.rows_quarantined) == (2, 2)
    q = store.quarantine_df().set_index("position")["reason"]
    assert q["line 2 span 2"].startswith("missing trace_id")
    assert q["line 2 span 3"].startswith("end_time")


def test_positions_name_resource_and_scope(tmp_path: Path) -> None:
    two = request(span("a"))
    two["resourceSpans"].append(request({**span("b"), "spanId": ""})["resourceSpans"][0])
    store, _ = load(write(tmp_path / "t.jsonl", two))
    assert store.quarantine_df()["position"].tolist() == ["line 1 resource 2 scope 1 span 1"]


def test_attribute_values(tmp_path: Path) -> None:
    """Scalars, arrays, kvlists, bytes and odd integers flatten to JSON; keys with dots stay."""
    raw = {"k.arr": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "5"},
                                               {"arrayValue": {"values": []}}]}},
           "k.kv": {"kvlistValue": {"values": [{"key": "x", "value": {"doubleValue": 0.5}}]}},
           "k.bytes": {"bytesValue": "AAE="},
           "k.lead0": {"intValue": "007"},
           "k.notint": {"intValue": "n/a"},
           "k.empty": {},
           "k.quote": {"stringValue": 'say "hi"\n'}}  # fmt: skip
    s = span("a")
    s["attributes"] = [{"key": k, "value": v} for k, v in raw.items()]
    attrs = json.loads(spans_of(tmp_path, request(s)).loc["a", "attributes"])
    assert attrs["k.arr"] == ["a", 5, {"arrayValue": {"values": []}}]
    assert attrs["k.kv"] == {"x": 0.5}
    assert (attrs["k.bytes"], attrs["k.lead0"], attrs["k.notint"]) == ("AAE=", 7, "n/a")
    assert attrs["k.empty"] is None and attrs["k.quote"] == 'say "hi"\n'


# -- the two parsers: pyarrow for blocks of well-formed lines, DuckDB for the rest ------------
SCALAR_SHAPES = {
    "s": "caf\u00e9 \"q\"\n\\", "i": 2**62 + 1, "neg": -3, "d": 0.1, "tiny": 1e-300,
    "whole": 2.0, "t": True, "f": False, "arr": ["a", 5, 0.5, True], "empty_arr": [],
    "kv": {"x": 0.5, "y": "z", "n": 7}, "gen_ai.tool.name": "search", "llm.model_name": "m",
}  # fmt: skip
RAW_SHAPES = {
    "bytes": {"bytesValue": "AAE="}, "lead0": {"intValue": "007"}, "plus": {"intValue": "+4"},
    "notint": {"intValue": "n/a"}, "huge": {"intValue": "9" * 40}, "nothing": {},
    "arr_bytes": {"arrayValue": {"values": [{"bytesValue": "AAE="}, {"intValue": "08"}]}},
    "no_values": {"arrayValue": {}},
}  # fmt: skip


def _shapes_line(sid: str) -> dict[str, Any]:
    """A request whose span and event carry attribute values of every shape pyarrow reads."""
    s = span(sid, attrs=SCALAR_SHAPES, events=[exception("E", "boom")],
             status={"code": 2, "message": ""})  # fmt: skip
    s["kind"] = 3
    s["attributes"] += [{"key": k, "value": v} for k, v in RAW_SHAPES.items()]
    s["events"][0]["attributes"] += [{"key": k, "value": v} for k, v in RAW_SHAPES.items()]
    s["events"].append({"timeUnixNano": str(T0), "name": "note", "attributes": kvs({"k": 1})})
    return request(s, resource={"service.name": "svc", "pid": 12, "tags": ["a", "b"]})


def test_pyarrow_and_duckdb_parsers_give_identical_spans(tmp_path: Path) -> None:
    """The same requests read by pyarrow, and by DuckDB (a blank line makes pyarrow step aside)."""
    lines = [json.dumps(_shapes_line(sid)) for sid in ("a", "b")]
    fast = write(tmp_path / "fast.otlp.jsonl", *lines)
    careful = write(tmp_path / "careful.otlp.jsonl", lines[0], "", lines[1])
    assert parse_requests(fast.read_bytes(), 1) is not None
    assert parse_requests(careful.read_bytes(), 1) is None
    frames = [_key_frame(path) for path in (fast, careful)]
    pd.testing.assert_frame_equal(frames[0][KEY_COLUMNS], frames[1][KEY_COLUMNS])
    row = frames[0].set_index("span_id").loc["a"]
    attrs = json.loads(row["attributes"])
    assert {k: attrs[k] for k in SCALAR_SHAPES} == SCALAR_SHAPES
    raw = ["AAE=", 7, 4, "n/a", "9" * 40, None, ["AAE=", 8], []]
    assert [attrs[k] for k in RAW_SHAPES] == raw
    assert (attrs["resource.pid"], attrs["resource.tags"]) == (12, ["a", "b"])
    assert (row["tool_name"], row["model"], row["status"]) == ("search", "m", "error")
    assert (row["error_type"], row["error_message"]) == ("E", "boom")
    assert [e["name"] for e in json.loads(row["events"])] == ["exception", "note"]


def test_attribute_objects_keep_the_source_order(tmp_path: Path) -> None:
    """On both parsers, a span's object lists its attributes in their order (an array among
    them), then those of its resource and scope, then its kind; a KeyValue without a key is
    left out; a span with no attributes, resource, scope or kind gets {}. Spans with and
    without attributes share a block."""
    a = span("a", attrs={"z": 1, "arr": ["x", 2], "m": "t"})
    a["attributes"].insert(1, {"value": {"stringValue": "no key"}})
    bare = {"traceId": TRACE, "spanId": "b", "name": "bare",
            "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 1)}  # fmt: skip
    lines = [
        json.dumps(request(a, span("e"), span("f", attrs={"y": "1"}))),
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [bare]}]}]}),
    ]
    assert parse_requests("\n".join(lines).encode(), 1) is not None
    context = {"resource.service.name": "svc", "otel.scope.name": "test",
               "otel.scope.version": "1", "otel.span.kind": "internal"}  # fmt: skip
    for file_lines in (lines, [lines[0], "", lines[1]]):  # pyarrow, then DuckDB
        texts = spans_of(tmp_path, *file_lines)["attributes"]
        assert list(json.loads(texts["a"]).items()) == [
            ("z", 1),
            ("arr", ["x", 2]),
            ("m", "t"),
            *context.items(),
        ]
        assert list(json.loads(texts["e"]).items()) == list(context.items())
        assert list(json.loads(texts["f"]).items()) == [("y", "1"), *context.items()]
        assert texts["b"] == "{}"


def test_mapped_values_that_are_no_strings_read_the_same_on_both_parsers(
    tmp_path: Path,
) -> None:
    """A mapped attribute holding an array, a number or a string, long or short, next to
    spans that hold strings: each parser maps the same text."""
    long = "a message longer than a string view holds inline"
    spans = [
        span("a", attrs={"gen_ai.input.messages": [long, 2], "gen_ai.usage.input_tokens": 7}),
        span("b", attrs={"gen_ai.input.messages": long, "gen_ai.output.messages": "ok"}),
        span("c", attrs={"gen_ai.output.messages": {"k": long}, "gen_ai.tool.name": "t"}),
    ]
    lines = [json.dumps(request(*spans))]
    assert parse_requests(lines[0].encode(), 1) is not None
    columns = ["input", "output", "tokens_in", "tool_name"]
    fast, careful = (
        spans_of(tmp_path, *file_lines)[columns] for file_lines in (lines, [lines[0], ""])
    )
    pd.testing.assert_frame_equal(fast, careful)
    assert json.loads(fast.loc["a", "input"]) == [long, 2] and fast.loc["a", "tokens_in"] == 7
    assert (fast.loc["b", "input"], fast.loc["b", "output"]) == (long, "ok")
    assert json.loads(fast.loc["c", "output"]) == {"k": long}


def test_string_views_take_texts_from_both_arrays_without_copying() -> None:
    first = pa.array(["a" * 20, None, "short", None, None, "x"])[:5]
    second = pa.array(["-", None, "b" * 30, "ignored", None, "tiny"])[1:]
    views = otlp_arrow._Views(first, second)
    taken = views.take(np.array([1, -1, 0, 2, 4, 3]))
    taken.validate(full=True)
    assert taken.to_pylist() == ["b" * 30, None, "a" * 20, "short", "tiny", None]
    addresses = {b.address for b in taken.buffers()[2:]}
    assert addresses == {first.buffers()[2].address, second.buffers()[2].address}


def test_first_of_a_repeated_key_is_mapped(tmp_path: Path) -> None:
    """Both parsers map the first of two attributes with the same key (as DuckDB's
    json_transform reads the object), for spans that have it among other spans."""
    s = span("a", attrs={"gen_ai.tool.name": "first", "tool.name": "x"})
    s["attributes"] += kvs({"gen_ai.tool.name": "second"})
    lines = [json.dumps(request(span("b"), s, span("c", attrs={"gen_ai.tool.name": "z"})))]
    fast = write(tmp_path / "fast.otlp.jsonl", *lines)
    careful = write(tmp_path / "careful.otlp.jsonl", lines[0], "")
    assert parse_requests(fast.read_bytes(), 1) is not None
    for path in (fast, careful):
        tools = load(path)[0].spans_df().set_index("span_id")["tool_name"]
        assert tools.fillna("-").to_dict() == {"b": "-", "a": "first", "c": "z"}


def test_settings_are_restored_after_a_load(tmp_path: Path) -> None:
    """Staging defers DuckDB's automatic checkpoints, keeps rows in order and gives the store
    one thread, for the load only (the pyarrow path joins query results to its rows by
    position)."""
    setting = (
        "SELECT current_setting('checkpoint_threshold') AS v, "
        "current_setting('preserve_insertion_order') AS o, current_setting('threads') AS t"
    )
    lines = [json.dumps(_shapes_line(sid)) for sid in ("a", "b")]
    with fk.connect(tmp_path / "s.duckdb") as store:
        store.sql("SET checkpoint_threshold = '8MiB'")
        store.sql("SET preserve_insertion_order = false")
        store.sql("SET threads = 3")
        store.ingest(write(tmp_path / "t.otlp.jsonl", *lines), progress=False)
        assert store.sql(setting).iloc[0].tolist() == ["8.0 MiB", False, 3]
        attrs = json.loads(store.spans_df().set_index("span_id").loc["b", "attributes"])
    assert {k: attrs[k] for k in SCALAR_SHAPES} == SCALAR_SHAPES


@pytest.mark.parametrize(
    "odd",
    [
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_SERVER"}]}]}]}',
        json.dumps(request(span("n", ints="num"))),  # int64 as JSON numbers
        json.dumps(request(span("d", attrs={"nested": [[1], {"k": "v"}]}))),
        "",
        "{}",
        '{"resourceSpans": []} {"resourceSpans": []}',
        '{"resourceSpans": [], "resourceSpans": []}',
    ],
)
def test_blocks_pyarrow_refuses_are_read_carefully(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, odd: str
) -> None:
    """Tiny blocks: the odd line's block goes to DuckDB, later blocks keep their line numbers."""
    monkeypatch.setattr(otlp, "BLOCK_BYTES", 16)
    good = [json.dumps(request(span(sid))) for sid in ("a", "b")]
    bad_span = json.dumps(request({**span("c"), "traceId": ""}))
    path = write(tmp_path / "t.otlp.jsonl", good[0], odd, good[1], bad_span)
    assert parse_requests(odd.encode() + b"\n", 2) is None
    with open(path, "rb") as f:
        assert [n for n, _ in otlp.line_blocks(f, 16)][-2:] == [3, 4]
    store, _ = load(path)
    assert {"a", "b"} <= set(store.spans_df()["span_id"])
    q = store.quarantine_df().set_index("position")["reason"]
    assert q["line 4 span 1"].startswith("missing trace_id")


@pytest.mark.parametrize(
    ("attrs", "kind"),
    [
        ({"gen_ai.operation.name": "invoke_agent"}, "agent"),
        ({"gen_ai.operation.name": "create_agent"}, "agent"),
        ({"gen_ai.operation.name": "text_completion"}, "llm"),
        ({"gen_ai.operation.name": "generate_content"}, "llm"),
        ({"gen_ai.operation.name": "embeddings"}, "embedding"),
        ({"gen_ai.operation.name": "retrieval"}, "retriever"),
        ({"gen_ai.operation.name": "invoke_workflow"}, "chain"),
        ({"openinference.span.kind": "RERANKER"}, "retriever"),
        ({"openinference.span.kind": "GUARDRAIL"}, "guardrail"),
        ({"openinference.span.kind": "EVALUATOR"}, "evaluator"),
        ({"openinference.span.kind": "EMBEDDING"}, "embedding"),
        ({"langfuse.observation.type": "generation"}, "llm"),
        ({"langfuse.observation.type": "span"}, "other"),
        ({"langfuse.observation.type": "guardrail"}, "guardrail"),
        ({"failkit.span.kind": "human", "gen_ai.operation.name": "chat"}, "human"),
        ({"http.method": "GET"}, "other"),
    ],
)
def test_kinds(tmp_path: Path, attrs: dict[str, str], kind: str) -> None:
    assert spans_of(tmp_path, request(span("a", attrs=attrs))).loc["a", "kind"] == kind


def test_custom_failkit_keys(tmp_path: Path) -> None:
    store, _ = load(write(tmp_path / "t.jsonl", request(span("a", attrs={
        "failkit.cost_usd": 0.25, "failkit.confidence": 0.8, "failkit.task_id": "task-1",
        "session.id": "s-1", "user.id": "u-1"}))))  # fmt: skip
    row = store.spans_df().iloc[0]
    assert (row["cost_usd"], row["confidence"]) == (0.25, 0.8)
    trace = store.traces_df().iloc[0]
    assert (trace["task_id"], trace["session_id"], trace["user_id"]) == ("task-1", "s-1", "u-1")


# -- the other encodings ----------------------------------------------------------------------
def test_document_with_invalid_object_goes_on(tmp_path: Path) -> None:
    """Concatenated pretty objects: a broken one is quarantined, reading resumes after it."""
    good = json.dumps(request(span("a")), indent=2)
    path = tmp_path / "t.json"
    path.write_text(good + '\n{\n  "resourceSpans": [\n}\n' + good.replace('"a"', '"b"') + "\n")
    store, report = load(path)
    assert (report.rows_loaded, report.rows_quarantined) == (2, 1)
    position = store.quarantine_df()["position"].tolist()
    assert position == [f"line {good.count(chr(10)) + 2}"]


def test_snake_case_request_document(tmp_path: Path) -> None:
    """protobuf field names (MessageToJson(preserving_proto_field_name=True)) read too."""
    doc = {"resource_spans": [{"scope_spans": [{"spans": [
        {"trace_id": "S/kvNXezTaajzpKdDg5HAQ==", "span_id": "APBnqgupAgI=",
         "start_time_unix_nano": str(T0), "end_time_unix_nano": str(T0 + 10),
         "status": {"code": "STATUS_CODE_ERROR"}}]}]}]}  # fmt: skip
    store, _ = load(write(tmp_path / "t.json", json.dumps(doc, indent=1)))
    row = store.spans_df().iloc[0]
    assert (row["trace_id"], row["span_id"], row["status"]) == (TRACE, "00f067aa0ba90202", "error")


def test_truncated_protobuf_is_a_format_error(tmp_path: Path) -> None:
    data = sample("otel_genai_agent.otlp.pb").read_bytes()
    path = tmp_path / "t.otlp.pb"
    path.write_bytes(data[: len(data) - 50])
    with pytest.raises(FormatError, match="does not decode"):
        load(path)


@pytest.mark.parametrize(
    ("head", "encoding"),
    [
        (b'{"resourceSpans":[]}\n{"resourceSpans":[]}\n', "jsonl"),
        (b'{"resourceSpans":[]}', "jsonl"),
        (b'{\n  "resourceSpans": [\n', "document"),
        (b'{"resource_spans": []}', "document"),
        (
            b'{\n  "name": "chat",\n  "context": {\n    "trace_id": "0x4b", "span_id": "0x1"',
            "document",
        ),
        (b'{"type": "span", "trace_id": "t", "span_id": "s"}\n', None),
        (b'{"trace_id": "t", "span_id": "s", "attributes": {"context": 1}}\n', None),
        (b'{"message": "see \\"resourceSpans\\": [...]"}\n', None),
        (b'{"id": "run", "run_type": "llm", "trace_id": "t"}\n', None),
        (b"PK\x03\x04", None),
        (b"\x0a\x05\x0a\x03abc", None),
    ],
)
def test_sniff(head: bytes, encoding: str | None) -> None:
    assert sniff_encoding(head) == encoding


def test_sniff_protobuf_heads() -> None:
    """Binary requests are recognised from a head that cuts them short."""
    for stem in EXPECTED:
        data = sample(f"{stem}.otlp.pb").read_bytes()
        assert sniff_encoding(data[:4096]) == "protobuf"


@pytest.mark.parametrize("ring", [0, 1, 3])
def test_line_blocks_in_a_ring_of_buffers_hold_the_same_lines(tmp_path: Path, ring: int) -> None:
    """Blocks of whole lines, numbered, also when a line is longer than a block and when
    the blocks are read into a ring of reused buffers (each block used before the next)."""
    lines = [b"x" * n for n in (3, 40, 5, 0, 7, 100, 1, 2)]
    path = tmp_path / "lines.txt"
    path.write_bytes(b"\n".join(lines))  # no newline at the end
    with open(path, "rb") as f:
        blocks = [(n, bytes(b)) for n, b in otlp.line_blocks(f, 16, ring=ring)]
    assert b"".join(b for _, b in blocks) == path.read_bytes()
    assert all(b.endswith(b"\n") for _, b in blocks[:-1])
    assert [n for n, _ in blocks] == [
        1 + sum(b.count(b"\n") for _, b in blocks[:i]) for i in range(len(blocks))
    ]
    assert len(blocks) > 3


def test_blocks_say_which_is_last_having_read_the_next() -> None:
    read: list[int] = []

    def items() -> Iterator[int]:
        for i in range(3):
            read.append(i)
            yield i

    marked = otlp._with_last(items())
    assert next(marked) == (0, False) and read == [0, 1]
    assert list(marked) == [(1, False), (2, True)]
    assert list(otlp._with_last(iter([]))) == []


@pytest.mark.parametrize("scan", [1, 3, 7, 1 << 20])
def test_newlines_are_counted_a_slice_at_a_time(monkeypatch: pytest.MonkeyPatch, scan: int) -> None:
    monkeypatch.setattr(lines_module, "SCAN_BYTES", scan)
    text = b"a\n\nbc\n" * 5 + b"tail"
    for end in (0, 1, 2, 7, 13, len(text)):
        assert lines_module.count_newlines(bytearray(text), end) == text.count(b"\n", 0, end)
    assert lines_module.count_newlines(memoryview(text)) == 15


@pytest.mark.parametrize("scan", [1, 3, 7, 1 << 20])
def test_parse_requests_pairs_each_line_with_its_request(
    monkeypatch: pytest.MonkeyPatch, scan: int
) -> None:
    """Lines are found a slice at a time, newlines on slice edges included; a blank line or
    one that is not a request leaves the block to the careful path."""
    monkeypatch.setattr(otlp_arrow, "SCAN_BYTES", scan)
    lines = [json.dumps(request(span(sid))) for sid in "abcde"]
    parsed = parse_requests("\n".join(lines).encode() + b"\n", 10)
    assert parsed is not None
    assert parsed.column("line_no").to_pylist() == [10, 11, 12, 13, 14]
    requests = parsed.column("line").combine_chunks().field("resourceSpans").to_pylist()
    firsts = [r[0]["scopeSpans"][0]["spans"][0]["spanId"] for r in requests]
    assert firsts == [span(sid)["spanId"] for sid in "abcde"]
    for odd in ("", " ", "[]"):
        assert parse_requests("\n".join([lines[0], odd, lines[1]]).encode(), 1) is None
