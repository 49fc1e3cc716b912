"""Inspect AI eval logs: .eval archives (zstd zip) and .json documents."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import sample

import failkit as fk
from failkit.errors import FailkitError
from failkit.ingest import detect

FILES = ["inspect_ai_weather.eval", "inspect_ai_weather.json"]
SAME = [
    "task_id", "name", "kind", "status", "error_type", "error_message", "model", "provider",
    "tool_name", "tool_call_id", "tool_args", "tokens_in", "tokens_out", "parent_name",
]  # fmt: skip


def load(path: Path) -> tuple[fk.TraceStore, fk.IngestReport]:
    store = fk.connect()
    return store, store.ingest(path, progress=False)


def spans_with_runs(store: fk.TraceStore) -> pd.DataFrame:
    """Spans with their run's task_id and their parent's name, in run and time order."""
    return store.sql(
        """
        SELECT t.task_id, s.*, p.name AS parent_name
        FROM spans s JOIN traces t USING (trace_id)
        LEFT JOIN spans p ON p.trace_id = s.trace_id AND p.span_id = s.parent_id
        ORDER BY t.task_id, s.start_time, s.name
        """
    )


@pytest.mark.parametrize("name", FILES)
def test_sample_detected_and_loaded(name: str) -> None:
    """Counted in the log: paris (3 model, 2 tool events, scored C) and atlantis (1 model, 1 tool
    event, then the sample errors with RuntimeError); 3 failures in all."""
    path = sample(name)
    assert detect(path).name == ("inspect_eval" if name.endswith(".eval") else "inspect_json")
    store, report = load(path)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (23, 23, 0)
    spans = spans_with_runs(store)
    traces = store.traces_df().set_index("task_id")
    assert traces["n_spans"].to_dict() == {"weather/paris": 12, "weather/atlantis": 7}
    assert traces["outcome"].to_dict() == {
        "weather/paris": "success",
        "weather/atlantis": "unknown",
    }
    # a root per sample, span_begin/end chains, scorer -> evaluator; tool spans not doubled
    kinds = {"chain": 11, "llm": 4, "tool": 3, "evaluator": 1}
    assert spans["kind"].value_counts().to_dict() == kinds
    assert spans["parent_id"].dropna().isin(set(spans["span_id"])).all()
    assert spans.groupby("task_id")["parent_id"].apply(lambda p: p.isna().sum()).eq(1).all()
    errors = spans[spans.status == "error"].set_index(["task_id", "kind"])
    assert errors["error_type"].to_dict() == {
        ("weather/atlantis", "chain"): "RuntimeError",  # the sample's error
        ("weather/atlantis", "tool"): "RuntimeError",  # the tool call that raised it
        ("weather/paris", "tool"): "unknown",  # ToolError returned to the model
    }
    assert errors.loc[("weather/paris", "tool"), "error_message"] == (
        "weather API did not answer within 5.0s"
    )
    tools = spans[spans.kind == "tool"]
    assert tools["tool_call_id"].tolist() == ["call_atl1", "call_par1", "call_par2"]
    assert set(tools["tool_name"]) == {"get_weather"}
    assert set(tools["parent_name"]) == {"generate"}
    llm = spans[spans.kind == "llm"]
    assert set(llm["provider"]) == {"mockllm"}
    assert llm["tokens_in"].tolist() == [30, 30, 38, 48]
    # the log's own total (stats.model_usage) covers both samples
    assert (int(llm.tokens_in.sum()), int(llm.tokens_out.sum())) == (146, 116)
    labels = store.labels_df().set_index("name")
    assert labels.loc["includes", ["value", "score"]].tolist() == ["C", 1.0]
    assert labels.loc["outcome", ["value", "score"]].tolist() == ["success", 1.0]


def test_eval_and_json_give_the_same_spans() -> None:
    """The two files are separate runs (other ids and times) of the same script."""
    frames = [spans_with_runs(load(sample(name))[0])[SAME] for name in FILES]
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_attachments_and_input_refs_are_resolved(tmp_path: Path) -> None:
    log = json.loads(sample("inspect_ai_weather.json").read_text())
    paris = next(s for s in log["samples"] if s["id"] == "paris")
    paris["input"] = "attachment://0123abcd"
    paris["attachments"] = {"0123abcd": "What's the weather in Paris?"}
    path = tmp_path / "log.json"
    path.write_text(json.dumps(log))
    spans = spans_with_runs(load(path)[0])
    root = spans[(spans.task_id == "weather/paris") & spans.parent_id.isna()]
    assert root["input"].tolist() == ["What's the weather in Paris?"]
    # the last model call's input is events_data.messages[0:5] (input_refs [[0, 5]])
    last = json.loads(spans[spans.kind == "llm"]["input"].iloc[-1])
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "tool"]


def archive(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in members.items():
            z.writestr(name, text)
    return path


HEADER = json.dumps({"version": 2, "eval": {"eval_id": "e1", "task": "t"}})


def test_archive_with_parent_relative_member_is_refused(tmp_path: Path) -> None:
    path = archive(tmp_path / "evil.eval", {"header.json": HEADER, "../evil": "x"})
    with pytest.raises(FailkitError, match=r"'\.\./evil'.*absolute or '\.\./' name"):
        fk.connect().ingest(path, progress=False)


def test_archive_with_huge_declared_size_is_refused(tmp_path: Path) -> None:
    path = archive(tmp_path / "bomb.eval", {"header.json": HEADER, "samples/a_epoch_1.json": "{}"})
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)  # second directory entry
    data[entry + 24 : entry + 28] = struct.pack("<I", 0xF000_0000)  # uncompressed size: 3.75 GiB
    path.write_bytes(bytes(data))
    store = fk.connect()
    with pytest.raises(
        FailkitError, match=r"samples/a_epoch_1\.json' declares 4,026,531,840 bytes"
    ):
        store.ingest(path, progress=False)
    assert store.ingests_df().empty  # nothing committed


def test_unreadable_sample_member_is_quarantined(tmp_path: Path) -> None:
    sample_json = json.dumps({"id": "a", "epoch": 1, "uuid": "U1", "events": []})
    path = archive(
        tmp_path / "log.eval",
        {"header.json": HEADER, "samples/a_epoch_1.json": sample_json,
         "samples/b_epoch_1.json": '{"id": "b", '},
    )  # fmt: skip
    store, report = load(path)
    assert (report.rows_loaded, report.rows_quarantined) == (2, 1)  # root span + run, bad member
    assert store.quarantine_df()["position"].tolist() == ["member samples/b_epoch_1.json"]
    assert store.traces_df()[["trace_id", "task_id"]].values.tolist() == [["u1", "t/a"]]
