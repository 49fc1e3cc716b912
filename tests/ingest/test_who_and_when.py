"""Who&When: multi-agent runs with the human annotation of the failing agent and step."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import failkit as fk
from failkit.ingest import detect
from failkit.ingest.base import read_head
from failkit.ingest.who_and_when import WhoAndWhenAdapter

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SUBSET = SHARED / "datasets" / "who-and-when" / "Algorithm-Generated"


def shared(path: Path) -> Path:
    """``path`` under ../shared, skipping the test when the shared folder is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared datasets live beside the repo in ../shared")
    return path


@pytest.fixture(scope="module")
def ww_records() -> dict[str, dict[str, Any]]:
    """The subset's records by question_ID (the task id of each run)."""
    files = sorted(shared(SUBSET).glob("*.json"))
    records = [json.loads(p.read_text("utf-8")) for p in files]
    return {r["question_ID"]: r for r in records}


@pytest.fixture(scope="module")
def ww_store() -> fk.TraceStore:
    """A store holding the 126 files of the subset."""
    store = fk.connect()
    store.ingest(str(shared(SUBSET) / "*.json"), progress=False)
    return store


@pytest.fixture(scope="module")
def ww_spans(ww_store: fk.TraceStore) -> pd.DataFrame:
    """Spans with their run's task id and history index."""
    return ww_store.sql(
        """
        SELECT s.*, t.task_id,
               CAST(s.attributes->>'$."failkit.message_index"' AS INTEGER) AS message_index
        FROM spans s JOIN traces t USING (trace_id)
        """
    )


def test_who_and_when_is_detected() -> None:
    assert detect(shared(SUBSET / "1.json")).name == "who_and_when"


def test_runs_and_one_step_per_history_item(
    ww_store: fk.TraceStore, ww_spans: pd.DataFrame, ww_records: dict[str, dict[str, Any]]
) -> None:
    ingests = ww_store.ingests_df()
    assert len(ingests) == 126
    assert (ingests["rows_read"] == ingests["rows_loaded"] + ingests["rows_quarantined"]).all()
    assert ingests["rows_quarantined"].sum() == 0
    traces = ww_store.traces_df()
    assert len(traces) == len(ww_records) == 126
    assert set(traces["task_id"]) == set(ww_records)
    n_items = sum(len(r["history"]) for r in ww_records.values())
    assert n_items == 1099
    steps = ww_spans[ww_spans["parent_id"].notna()]
    assert len(steps) == n_items
    assert (ww_spans["parent_id"].isna().sum(), (ww_spans["kind"] == "agent").sum()) == (126, 126)
    for row in steps.itertuples():
        item = ww_records[row.task_id]["history"][row.message_index]
        assert row.name == item["name"]
        assert (row.output if isinstance(row.output, str) else "") == item["content"]
    n_wrong = sum(not r["is_correct"] for r in ww_records.values())
    assert (traces["outcome"] == "failure").sum() == n_wrong == 126


def test_code_executor_turns_are_tool_spans(
    ww_spans: pd.DataFrame, ww_records: dict[str, dict[str, Any]]
) -> None:
    items = [h for r in ww_records.values() for h in r["history"]]
    terminal = [h["content"] for h in items if h["name"] == "Computer_terminal"]
    failed = [c for c in terminal if re.match(r"exitcode: [1-9]", c)]
    assert (len(terminal), len(failed)) == (303, 90)
    tools = ww_spans[ww_spans["kind"] == "tool"]
    assert len(tools) == len(terminal)
    assert (tools["tool_name"] == "Computer_terminal").all()
    assert (tools["status"] == "error").sum() == len(failed)
    assert (ww_spans["kind"] == "llm").sum() == len(items) - len(terminal)


def test_mistake_labels_point_at_the_annotated_step(
    ww_store: fk.TraceStore, ww_spans: pd.DataFrame, ww_records: dict[str, dict[str, Any]]
) -> None:
    labels = ww_store.labels_df().merge(
        ww_store.traces_df()[["trace_id", "task_id"]], on="trace_id"
    )
    steps = ww_spans.set_index(["trace_id", "span_id"])
    mistake_steps = labels[labels["name"] == "mistake_step"]
    assert len(mistake_steps) == 126
    for label in mistake_steps.itertuples():
        record = ww_records[label.task_id]
        index = int(record["mistake_step"])
        span = steps.loc[(label.trace_id, label.span_id)]
        assert span["message_index"] == index
        assert span["name"] == record["history"][index]["name"]
        assert label.value == record["mistake_step"]
        assert label.comment == record["mistake_reason"]
        assert label.source == "human"
    agents = labels[labels["name"] == "mistake_agent"]
    assert len(agents) == 126
    assert agents["span_id"].isna().all()
    assert dict(zip(agents["task_id"], agents["value"], strict=True)) == {
        k: r["mistake_agent"] for k, r in ww_records.items()
    }
    truths = labels[labels["name"] == "ground_truth"]
    assert dict(zip(truths["task_id"], truths["value"], strict=True)) == {
        k: r["ground_truth"] for k, r in ww_records.items()
    }


def record(**changes: Any) -> dict[str, Any]:
    """A small Who&When record."""
    base: dict[str, Any] = {
        "question": "How many?",
        "question_ID": "q-1",
        "ground_truth": "8",
        "is_corrected": True,
        "history": [
            {"role": "assistant", "name": "Planner_Expert", "content": "Run the code."},
            {"role": "user", "name": "Computer_terminal",
             "content": "exitcode: 1 (execution failed)\nCode output: Traceback ...\n"
                        "KeyError: 'x'\n"},
            {"role": "user", "name": "Computer_terminal", "content": "exitcode: 0\nCode output: 8"},
            {"role": "user", "name": "Computer_terminal", "content": "There is no code to run."},
        ],
        "mistake_agent": "Planner_Expert",
        "mistake_step": "0",
        "mistake_reason": "wrong plan",
    }  # fmt: skip
    return base | changes


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as one JSON document."""
    path.write_text(json.dumps(value), "utf-8")
    return path


def test_small_record_with_the_other_subsets_spelling(tmp_path: Path) -> None:
    path = write_json(tmp_path / "7.json", record())
    assert detect(path).name == "who_and_when"
    store = fk.connect()
    assert store.ingest(path).rows_quarantined == 0
    trace = store.traces_df().iloc[0]
    assert (trace["name"], trace["task_id"], trace["outcome"]) == ("7", "q-1", "success")
    spans = store.spans_df().sort_values(["start_time", "parent_id"], na_position="first")
    assert spans["kind"].tolist() == ["agent", "llm", "tool", "tool", "tool"]
    assert spans["status"].tolist() == ["unset", "unset", "error", "ok", "unset"]
    assert spans["error_type"].tolist()[2] == "KeyError"
    assert spans["input"].iloc[0] == "How many?"


def test_bad_records_and_annotations_are_quarantined(tmp_path: Path) -> None:
    history = record()["history"]
    records = [
        record(mistake_step="9"),
        record(history=[history[0], {"content": "who said this?"}], mistake_step="1"),
        {"question": "no history"},
        record(mistake_step=""),  # not annotated: no label, nothing to quarantine
    ]
    path = write_json(tmp_path / "subset.json", records)
    store = fk.connect()
    report = store.ingest(path, format="who_and_when")
    assert report.rows_read == report.rows_loaded + report.rows_quarantined
    quarantine = store.quarantine_df().set_index("position")["reason"]
    assert sorted(quarantine.index) == ["record 0", "record 1", "record 1 history 1", "record 2"]
    assert (
        "mistake_step '9' points at no loaded step (history has items 0..3)"
        in quarantine["record 0"]
    )
    assert "history item without a name or role" in quarantine["record 1 history 1"]
    assert "(history item 1 was quarantined)" in quarantine["record 1"]
    assert "no `history` list" in quarantine["record 2"]
    assert len(store.traces_df()) == 3
    assert (store.labels_df()["name"] == "mistake_step").sum() == 0


def test_sniffer_claims_no_other_format() -> None:
    samples = shared(SHARED / "samples" / "formats")
    files = [p for p in samples.iterdir() if p.is_file() and p.suffix != ".md"]
    files.append(SHARED / "datasets" / "tau-bench" / "gpt-4o-airline.json")
    claimed = [p.name for p in files if p.exists() and WhoAndWhenAdapter().sniff(read_head(p), p)]
    assert claimed == []
