"""Chat transcripts: tau-bench trajectories, mini-swe-agent style files, bare message lists."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import failkit as fk
from failkit.ingest import detect
from failkit.ingest.base import read_head
from failkit.ingest.messages import MessagesAdapter, fingerprint

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
TAU_BENCH = SHARED / "datasets" / "tau-bench" / "gpt-4o-airline.json"


def shared(path: Path) -> Path:
    """``path`` under ../shared, skipping the test when the shared folder is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared datasets live beside the repo in ../shared")
    return path


def attr(attributes: str, key: str) -> Any:
    """One key of a span's attributes JSON."""
    return json.loads(attributes).get(key)


@pytest.fixture(scope="module")
def tau_records() -> list[dict[str, Any]]:
    """The tau-bench records as the file holds them."""
    return json.loads(shared(TAU_BENCH).read_text("utf-8"))


@pytest.fixture(scope="module")
def tau_store() -> fk.TraceStore:
    """A store holding the tau-bench file."""
    store = fk.connect()
    store.ingest(shared(TAU_BENCH))
    return store


@pytest.fixture(scope="module")
def tau_spans(tau_store: fk.TraceStore) -> pd.DataFrame:
    """Spans with their run's task id and trial (the keys of a tau-bench record)."""
    return tau_store.sql(
        """
        SELECT s.*, t.task_id,
               CAST(r.attributes->>'$.trial' AS INTEGER) AS trial,
               CAST(s.attributes->>'$."failkit.message_index"' AS INTEGER) AS message_index,
               CAST(s.attributes->>'$."failkit.tool_call_index"' AS INTEGER) AS call_index,
               CAST(s.attributes->>'$."failkit.result_index"' AS INTEGER) AS result_index
        FROM spans s JOIN traces t USING (trace_id)
        JOIN spans r ON r.trace_id = s.trace_id AND r.parent_id IS NULL
        """
    )


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as one JSON document."""
    path.write_text(json.dumps(value), "utf-8")
    return path


def write_lines(path: Path, lines: list[Any]) -> Path:
    """Write JSON lines (strings are written as they are)."""
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), "utf-8"
    )
    return path


def test_tau_bench_is_detected_from_its_head() -> None:
    assert detect(shared(TAU_BENCH)).name == "chat_messages"


def test_tau_bench_runs_outcomes_and_tasks(
    tau_store: fk.TraceStore, tau_records: list[dict[str, Any]]
) -> None:
    ingest = tau_store.ingests_df().iloc[0]
    assert ingest["rows_quarantined"] == 0
    assert ingest["rows_read"] == ingest["rows_loaded"]
    traces = tau_store.traces_df()
    assert len(traces) == len(tau_records) == 200
    successes = sum(r["reward"] == 1 for r in tau_records)
    assert successes == 84
    assert (traces["outcome"] == "success").sum() == successes
    assert (traces["outcome"] == "failure").sum() == 200 - successes
    per_task = traces.groupby("task_id").size()
    assert len(per_task) == 50
    assert (per_task == 4).all()
    assert set(per_task.index) == {str(r["task_id"]) for r in tau_records}
    rewards = tau_store.labels_df().query("name == 'reward'")
    assert len(rewards) == 200
    assert rewards["score"].sum() == successes


def test_tau_bench_pass_hat_k(tau_store: fk.TraceStore) -> None:
    """The unbiased pass^k over 50 tasks x 4 trials matches the published numbers."""
    traces = tau_store.traces_df()
    tasks = traces.groupby("task_id")["outcome"].agg(
        n="size", c=lambda outcome: int((outcome == "success").sum())
    )
    counts = list(zip(tasks["n"], tasks["c"], strict=True))
    pass_hat = [
        round(sum(comb(c, k) / comb(n, k) for n, c in counts) / len(counts), 3) for k in range(1, 5)
    ]
    assert pass_hat == [0.420, 0.273, 0.220, 0.200]


def test_tau_bench_tool_spans_carry_calls_and_results(
    tau_spans: pd.DataFrame, tau_records: list[dict[str, Any]]
) -> None:
    records = {(str(r["task_id"]), r["trial"]): r["traj"] for r in tau_records}
    n_calls = sum(len(m.get("tool_calls") or []) for t in records.values() for m in t)
    n_errors = sum(
        1 for t in records.values() for m in t
        if m["role"] == "tool" and m["content"].startswith("Error:")
    )  # fmt: skip
    assert (n_calls, n_errors) == (1164, 73)
    tools = tau_spans[tau_spans["kind"] == "tool"]
    assert len(tools) == n_calls
    assert tools["result_index"].notna().all()  # every call got its result
    assert (tools["status"] == "error").sum() == n_errors
    for row in tools.itertuples():
        traj = records[(row.task_id, row.trial)]
        call = traj[row.message_index]["tool_calls"][row.call_index]
        result = traj[row.result_index]
        assert (row.tool_name, row.tool_call_id) == (call["function"]["name"], call["id"])
        assert result["tool_call_id"] == call["id"]
        assert json.loads(row.tool_args) == json.loads(call["function"]["arguments"])
        output = row.output if isinstance(row.output, str) else ""  # the think tool returns ""
        assert output == result["content"]
        assert (row.status == "error") == result["content"].startswith("Error:")
    n_messages = sum(len(t) for t in records.values())
    n_results = sum(m["role"] == "tool" for t in records.values() for m in t)
    assert len(tau_spans) == len(records) + n_messages - n_results + n_calls


def test_tau_bench_times_follow_message_order(tau_spans: pd.DataFrame) -> None:
    steps = tau_spans[tau_spans["parent_id"].notna()].sort_values(["trace_id", "start_time"])
    for _, run in steps.groupby("trace_id"):
        assert run["message_index"].is_monotonic_increasing
    assert (steps["end_time"] > steps["start_time"]).all()
    roots = tau_spans[tau_spans["parent_id"].isna()]
    assert (roots["start_time"] == pd.Timestamp("1970-01-01")).all()
    assert roots["attributes"].map(lambda a: attr(a, "failkit.synthetic_time")).all()


MINI_SWE = {
    "info": {"config": {"model": {"model_name": "acme/coder-1"}}, "exit_status": "Submitted"},
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [{"type": "text", "text": "Fix the failing test."}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "bash", "arguments": '{"cmd": "pytest"}'}},
                {"id": "c2", "type": "function",
                 "function": {"name": "read", "arguments": '{"path": "a.py"'}},
            ],
            "extra": {"response": {"usage": {"prompt_tokens": 120, "completion_tokens": 30}}},
        },
        {"role": "tool", "tool_call_id": "c2", "content": "def f(): ..."},
        {"role": "tool", "tool_call_id": "c1", "content": "Error: 1 test failed"},
        {"role": "assistant", "content": "Done."},
    ],
    "trajectory_format": "mini-swe-agent-1",
}  # fmt: skip


def test_mini_swe_agent_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "run.traj.json", MINI_SWE)
    assert detect(path).name == "chat_messages"
    store = fk.connect()
    report = store.ingest(path)
    assert (report.rows_read, report.rows_quarantined) == (report.rows_loaded, 0)
    spans = store.spans_df().set_index("span_id")
    trace_id = spans["trace_id"].iloc[0]
    s = spans.rename(index=lambda i: i.removeprefix(f"{trace_id}-"))
    assert s.loc[["run", "0", "1", "2", "2-0", "2-1", "5"], "kind"].tolist() == [
        "agent", "other", "other", "llm", "tool", "tool", "llm"
    ]  # fmt: skip
    assert s.loc["1", "input"] == "Fix the failing test."
    assert s.loc["2", ["model", "tokens_in", "tokens_out"]].tolist() == ["acme/coder-1", 120, 30]
    # results arrive in reverse order and are matched by tool_call_id
    assert s.loc["2-0", ["tool_name", "output", "status"]].tolist() == [
        "bash", "Error: 1 test failed", "error"
    ]  # fmt: skip
    assert s.loc["2-0", "error_message"] == "Error: 1 test failed"
    assert s.loc["2-1", ["tool_name", "output", "status"]].tolist() == [
        "read", "def f(): ...", "ok"
    ]  # fmt: skip
    assert json.loads(s.loc["2-0", "tool_args"]) == {"cmd": "pytest"}
    assert json.loads(s.loc["2-1", "tool_args"]) == '{"path": "a.py"'  # invalid JSON kept as text
    assert s.loc["2-0", "start_time"] < s.loc["2-1", "start_time"] < s.loc["2-1", "end_time"]
    assert s.loc["2-1", "end_time"] < s.loc["2-0", "end_time"]
    assert s.loc["run", ["input", "output"]].tolist() == ["Fix the failing test.", "Done."]
    assert attr(s.loc["run", "attributes"], "trajectory_format") == "mini-swe-agent-1"
    trace = store.traces_df().iloc[0]
    assert trace["task_id"] == fingerprint("Fix the failing test.")
    assert trace["outcome"] == "unknown"
    assert (trace["n_spans"], trace["n_llm"], trace["n_tool"]) == (7, 2, 2)


def test_bare_message_lists(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    longer = [*messages, {"role": "user", "content": "?"}]
    files = [
        write_json(tmp_path / "bare.json", messages),
        write_lines(tmp_path / "lists.jsonl", [messages, longer]),
        write_lines(tmp_path / "lines.jsonl", messages),  # one message per line: one run
        write_json(tmp_path / "holey.json", [messages[0], {"content": "no role"}, messages[1]]),
    ]
    store = fk.connect()
    report = store.ingest(files)
    assert report.files["format"].tolist() == ["chat_messages"] * 4
    assert report.rows_quarantined == 1
    assert store.quarantine_df()["position"].tolist() == ["record 0 message 1"]
    runs = store.traces_df().sort_values(["name", "n_spans"])
    assert runs["name"].tolist() == ["bare", "holey", "lines", "lists", "lists"]
    assert runs["n_spans"].tolist() == [3, 3, 3, 3, 4]
    assert runs["n_llm"].tolist() == [1, 1, 1, 1, 1]


def test_malformed_records_are_quarantined(tmp_path: Path) -> None:
    good = {"task_id": 7, "reward": 1, "traj": [{"role": "user", "content": "go"}]}
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            good,
            {"foo": 1},
            {"messages": [{"content": "no role"}, {"role": "user", "content": "ok"}]},
            '{"messages": [',
            "42",
            {"messages": []},
            {"role": "user", "content": "a lone message among runs"},
            {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "x"}]}]},
            {"reward": "high", "messages": [{"role": "user", "content": "graded?"}]},
        ],
    )
    store = fk.connect()
    report = store.ingest(path)
    assert report.rows_read == report.rows_loaded + report.rows_quarantined
    quarantine = store.quarantine_df().set_index("position")["reason"]
    expected = {
        "line 2": "no `traj` or `messages` list",
        "line 3 message 0": "message without a role",
        "line 4": "not valid JSON",
        "line 5": "line holds a JSON int",
        "line 6": "the run has no messages",
        "line 7": "a single message where a run was expected",
        "line 8 message 0 tool_call 0": "tool call without function.name",
        "line 9": "reward 'high' is not a number",
    }
    assert sorted(quarantine.index) == sorted(expected)
    for position, reason in expected.items():
        assert reason in quarantine[position]
    assert report.rows_quarantined == len(expected)
    traces = store.traces_df()
    assert len(traces) == 4  # lines 1, 3, 8 and 9 load what they hold
    assert traces.set_index("task_id").loc["7", "outcome"] == "success"


def test_a_file_that_is_not_json_is_quarantined_whole(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("role: user\ncontent: hi\n", "utf-8")
    store = fk.connect()
    report = store.ingest(path, format="chat_messages")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (1, 0, 1)
    row = store.quarantine_df().iloc[0]
    assert row["position"] == "file"
    assert "neither one JSON document" in row["reason"]


def test_trace_ids_are_deterministic(tmp_path: Path) -> None:
    """Ids hash the file name, the record's position and its content."""
    run = MINI_SWE["messages"]
    (tmp_path / "copy").mkdir()
    original = write_json(tmp_path / "a.json", [run, run])
    copy = tmp_path / "copy" / "a.json"  # the same runs re-exported elsewhere (other bytes)
    copy.write_text(json.dumps([run, run], indent=2), "utf-8")
    renamed = write_json(tmp_path / "b.json", [run, run])
    ids = []
    for path in (original, copy, renamed):
        store = fk.connect()
        assert store.ingest(path).rows_quarantined == 0
        ids.append(set(store.traces_df()["trace_id"]))
    assert len(ids[0]) == 2  # identical runs in one file stay distinct
    assert ids[0] == ids[1]
    assert not ids[0] & ids[2]
    store = fk.connect()
    store.ingest(original)
    again = store.ingest(copy).files.iloc[0]
    reasons = store.quarantine_df()["reason"]
    assert again["rows_quarantined"] == len(reasons) == 2 * 7  # every span of both runs
    assert reasons.str.contains("already loaded by an earlier file").all()


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'[\n  {\n    "task_id": 0,\n    "info": {"x": 1},\n    "traj": [{"role": "system"', True),
        (b'{"info": {"config": {}}, "messages": [{"role": "user", "content": "hi"}]}', True),
        (b'[{"role": "user", "content": "hi"}, {"role": "assistant", "content"', True),
        (b'{"role": "user", "content": "hi"}\n{"role": "assistant", "content": "x"}\n', True),
        (b'{"type": "message", "role": "user", "content": []}', False),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "messages"}]}]}]}', False),
        (b'{"name": "a", "run_type": "chain", "inputs": {"messages": [{"role": "user"}]}}', False),
        (b'{"version": 2, "eval": {}, "samples": [{"messages": [{"role": "user"}]}]}', False),
        (b'{"question": "q", "history": [{"role": "user", "name": "A", "content": "x"}]}', False),
        (b'{"messages": "not a list of chat messages"}', False),
    ],
)  # fmt: skip
def test_sniffer(head: bytes, expected: bool) -> None:
    assert MessagesAdapter().sniff(head, Path("x.json")) is expected


def test_sniffer_claims_no_other_sample_format() -> None:
    samples = shared(SHARED / "samples" / "formats")
    files = [p for p in samples.iterdir() if p.is_file() and p.suffix != ".md"]
    assert files
    claimed = [p.name for p in files if MessagesAdapter().sniff(read_head(p), p)]
    assert claimed == []
