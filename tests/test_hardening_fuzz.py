"""Property tests: every adapter survives hostile and broken input (issue 8).

Each test starts from a real sample (``../shared/samples/formats``, ``../shared/datasets``)
or a small synthetic file and mutates it: truncation, wrong types, missing and extra fields,
huge strings, deep nesting, duplicate ids, parent cycles, orphans, end before start,
non-UTF-8 bytes, NaN/Infinity, empty files, binary garbage, damaged gzip. Every mutant is
loaded twice, with ``format=`` forced and auto-detected. The properties:

- nothing but :class:`failkit.FailkitError` escapes, and its message says why;
- otherwise ``rows_read == rows_loaded + rows_quarantined`` and every quarantine reason is a
  sentence naming the problem;
- the store stays consistent and usable: valid ids, kinds, statuses and times, no duplicate
  spans, traces rebuilt, and a good file still loads afterwards.

Decision chains terminate on parent cycles, self-parents, orphans and very deep chains.
Hypothesis runs derandomized with a few examples per format, so every run tries the same
ones; set ``FAILKIT_FUZZ_EXAMPLES`` to hunt longer with random examples.
"""

from __future__ import annotations

import atexit
import copy
import functools
import gzip
import io
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import REPO, SHARED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import failkit as fk
from failkit.errors import FailkitError
from failkit.ingest.inspect_ai import read_member
from failkit.schema import Kind, Status

SAMPLES = SHARED / "samples" / "formats"
DATASETS = SHARED / "datasets"
OTLP_READY = (REPO / "tests" / "ingest" / "test_otlp.py").exists()
"""The OTLP adapter is fuzzed once its own tests exist."""

EXAMPLES = int(os.environ.get("FAILKIT_FUZZ_EXAMPLES", "10"))
"""Mutants per format; raise it (``FAILKIT_FUZZ_EXAMPLES=500``) for a longer hunt."""
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=EXAMPLES <= 10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KINDS = {k.value for k in Kind}
STATUSES = {s.value for s in Status}

# -- seeds -------------------------------------------------------------------------------


def _native_seed() -> bytes:
    """A small failkit JSONL file: a run with an llm, a failed tool, a trace and a label."""
    t0 = "2026-01-01T00:00:0"
    rows: list[dict[str, Any]] = [
        {"type": "trace", "trace_id": "t1", "name": "book", "task_id": "k1"},
        {"type": "span", "trace_id": "t1", "span_id": "root", "kind": "agent", "name": "run",
         "start_time": f"{t0}0Z", "end_time": f"{t0}9Z", "status": "ok",
         "attributes": {"failkit.task_id": "k1"}},
        {"type": "span", "trace_id": "t1", "span_id": "llm1", "parent_id": "root", "kind": "llm",
         "name": "chat", "start_time": f"{t0}1Z", "end_time": f"{t0}2Z", "status": "ok",
         "model": "gpt-4o-mini", "tokens_in": 10, "tokens_out": 3, "cost_usd": 0.001,
         "input": "book a flight", "output": "calling search"},
        {"type": "span", "trace_id": "t1", "span_id": "tool1", "parent_id": "root",
         "kind": "tool", "name": "search", "tool_name": "search", "tool_args": {"q": "x"},
         "start_time": f"{t0}3Z", "end_time": f"{t0}4Z", "status": "error",
         "error_type": "TimeoutError", "error_message": "no answer in 30 s",
         "events": [{"name": "exception", "attributes": {"exception.type": "TimeoutError"}}]},
        {"type": "label", "trace_id": "t1", "name": "outcome", "value": "failure", "score": 0},
    ]  # fmt: skip
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _labels_seed() -> bytes:
    return (
        b"trace_id,name,value,span_id,score,source,comment\n"
        b't1,outcome,failure,,0,human,"wrong answer, see ""notes"""\n'
        b"t2,outcome,success,,1,judge,\n"
        b"t1,mistake_step,3,tool1,,human,timeout\n"
    )


def _langfuse_seed() -> bytes:
    trace = "7f3c2a1b9d8e4f60a1b2c3d4e5f60718"

    def obs(id_: str, type_: str, start: int, end: int, **kw: Any) -> dict[str, Any]:
        base = {
            "id": id_, "traceId": trace, "type": type_, "name": type_.lower(),
            "startTime": f"2026-01-01T00:00:0{start}.000Z",
            "endTime": f"2026-01-01T00:00:0{end}.000Z", "parentObservationId": "root",
            "level": "DEFAULT", "statusMessage": None, "metadata": {},
            "usage": {"input": 0, "output": 0, "total": 0, "unit": "TOKENS"},
        }  # fmt: skip
        return base | kw

    observations = [
        obs("root", "AGENT", 0, 9, name="weather_agent", parentObservationId=None),
        obs("gen1", "GENERATION", 1, 2, model="gpt-4o-mini", calculatedTotalCost=0.00003,
            usageDetails={"input": 112, "output": 18, "total": 130}),
        obs("tool1", "TOOL", 3, 4, name="get_weather", level="ERROR",
            statusMessage="TimeoutError('weather API did not answer')",
            input={"city": "Paris"}, metadata={"tool_call_id": "call_w1"}),
    ]  # fmt: skip
    document = {
        "id": trace, "name": "weather", "sessionId": "s1", "userId": "u1",
        "observations": observations,
        "scores": [{"name": "correct", "value": 0, "dataType": "NUMERIC", "traceId": trace}],
    }  # fmt: skip
    return json.dumps(document).encode()


def _messages_seed() -> bytes:
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_user", "arguments": '{"user_id": "u1"}'}}  # fmt: skip
    traj = [
        {"role": "system", "content": "You are an airline agent."},
        {"role": "user", "content": "Cancel my booking."},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_user", "content": "Error: no"},
        {"role": "assistant", "content": "Sorry, I could not find you."},
    ]
    records = [
        {"task_id": 1, "reward": 0.0, "trial": 0, "traj": traj},
        {"messages": [*traj[1:3], {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]},
    ]
    return json.dumps(records).encode()


def _file(path: Path, *, head_lines: int | None = None) -> Callable[[], bytes]:
    def read() -> bytes:
        if not path.exists():
            pytest.skip(f"{path} is absent: the shared samples live beside the repo in ../shared")
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if head_lines is not None:
            data = b"".join(data.splitlines(keepends=True)[:head_lines])
        return data

    return read


SEEDS: dict[str, list[tuple[str, Callable[[], bytes]]]] = {
    "failkit_jsonl": [("traces.jsonl", _native_seed)],
    "labels_csv": [("labels.csv", _labels_seed)],
    "langsmith_runs": [
        ("runs.jsonl", _file(SAMPLES / "langsmith_runs.merged.jsonl", head_lines=12)),
        ("ops.jsonl", _file(SAMPLES / "langsmith_runs.ops.jsonl", head_lines=16)),
    ],
    "openai_agents": [("agents.jsonl", _file(SAMPLES / "openai_agents_trace.jsonl"))],
    "inspect_eval": [("weather.eval", _file(SAMPLES / "inspect_ai_weather.eval"))],
    "inspect_json": [("weather.json", _file(SAMPLES / "inspect_ai_weather.json"))],
    "trail_trace": [
        (
            "72822db6e120878d916b515c2501246b.json",
            _file(DATASETS / "trail/traces/SWE_Bench/72822db6e120878d916b515c2501246b.json.gz"),
        )
    ],
    "trail_annotations": [
        (
            "fdaf88f3c0437bf27438b60ba4102c8a.json",
            _file(DATASETS / "trail/annotations/SWE_Bench/fdaf88f3c0437bf27438b60ba4102c8a.json"),
        )
    ],
    "langfuse_api": [("langfuse.json", _langfuse_seed)],
    "chat_messages": [("tau.json", _messages_seed)],
    "who_and_when": [("47.json", _file(DATASETS / "who-and-when/Algorithm-Generated/47.json"))],
}
if OTLP_READY:
    SEEDS["otlp"] = [
        ("genai.otlp.jsonl", _file(SAMPLES / "otel_genai_agent.otlp.jsonl")),
        ("js.otlp-http.json", _file(SAMPLES / "js_genai_agent.otlp-http.json")),
        ("oi.pb-json_format.json", _file(SAMPLES / "openinference_agent.pb-json_format.json")),
        ("genai.console.txt", _file(SAMPLES / "otel_genai_agent.console.txt")),
        ("genai.otlp.pb", _file(SAMPLES / "otel_genai_agent.otlp.pb")),
    ]
FORMATS = sorted(SEEDS)


# -- mutations ---------------------------------------------------------------------------

ODD_VALUES: list[Any] = [
    None, True, 0, -1, 2**64, -(2**63) - 1, 1e308, 1.5, math.nan, math.inf, -math.inf,
    "", " ", "null", "\x00", "\ud800", "\u202e\u0000\ufeff", "9999-99-99T99:99:99Z",
    "-1e300", "' OR 1=1; DROP TABLE spans; --", "<script>alert(1)</script>",
    [], {}, [None], {"": None}, [[1, [2, [3]]]], {"a": {"b": {"c": {}}}},
]  # fmt: skip
DEEP = "@@failkit-deep-{}@@"
_DEEP_RE = re.compile(r'"@@failkit-deep-(\d+)@@"')
_ID_KEY = re.compile(r"(^|_)(id|span_?id|spanId|run_id|uuid)$", re.I)
_PARENT_KEY = re.compile(r"parent", re.I)
_START_KEY = re.compile(r"start|timestamp", re.I)
_END_KEY = re.compile(r"end|completed", re.I)

TREE_OPS = (
    "delete", "wrong_type", "extra_field", "duplicate", "huge_string", "deep", "copy_string",
    "self_parent", "swap_times", "orphan",
)  # fmt: skip
BYTE_OPS = ("truncate", "insert", "non_utf8", "empty", "garbage", "bom", "crlf", "twice", "gzip")


def _walk(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, node) of a JSON tree, iteratively, not below 60 levels."""
    stack = [(path, value)]
    while stack:
        here, node = stack.pop()
        yield here, node
        if len(here) > 60:
            continue
        if isinstance(node, dict):
            stack.extend(((*here, k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*here, i), v) for i, v in enumerate(node))


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _mutate_tree(doc: Any, data: st.DataObject) -> Any:
    """Apply 1-4 structural mutations to a parsed JSON document."""
    for _ in range(data.draw(st.integers(1, 4), label="n_ops")):
        nodes = list(_walk(doc))
        path, node = nodes[data.draw(st.integers(0, len(nodes) - 1), label="node")]
        op = data.draw(st.sampled_from(TREE_OPS), label="op")
        if not path:
            if op in ("wrong_type", "deep"):
                doc = copy.deepcopy(data.draw(st.sampled_from(ODD_VALUES), label="value"))
            continue
        parent, key = _at(doc, path[:-1]), path[-1]
        owner = parent if isinstance(parent, dict) else node if isinstance(node, dict) else None
        if op == "delete":
            del parent[key]
        elif op == "wrong_type":
            parent[key] = copy.deepcopy(data.draw(st.sampled_from(ODD_VALUES), label="value"))
        elif op == "extra_field" and owner is not None:
            owner["zz_unexpected"] = data.draw(st.sampled_from(["x", 1, None, [1]]), label="v")
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(node))
        elif op == "huge_string":
            parent[key] = "é" * 100_000
        elif op == "deep":
            parent[key] = DEEP.format(data.draw(st.sampled_from([64, 950, 5000]), label="depth"))
        elif op == "copy_string":
            strings = [n for _, n in nodes if isinstance(n, str) and len(n) < 80]
            if strings:
                parent[key] = data.draw(st.sampled_from(strings), label="copied")
        elif op in ("self_parent", "orphan") and owner is not None:
            ids = [k for k in owner if _ID_KEY.search(str(k)) and not _PARENT_KEY.search(str(k))]
            parents = [k for k in owner if _PARENT_KEY.search(str(k))]
            target = parents[0] if parents else "parent_id"
            owner[target] = owner[ids[0]] if op == "self_parent" and ids else "ffffffffffffffff"
        elif op == "swap_times" and owner is not None:
            starts = [k for k in owner if _START_KEY.search(str(k))]
            ends = [k for k in owner if _END_KEY.search(str(k))]
            if starts and ends:
                owner[starts[0]], owner[ends[0]] = owner[ends[0]], owner[starts[0]]
    return doc


def _dumps(doc: Any) -> str:
    """JSON text, NaN/Infinity as Python writes them, deep placeholders expanded."""
    text = json.dumps(doc, allow_nan=True)
    return _DEEP_RE.sub(lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)


def _mutate_json(seed: bytes, data: st.DataObject) -> bytes | None:
    """Structural mutant of a JSON document or of some lines of a JSON-lines file."""
    try:
        doc = json.loads(seed)
    except ValueError:
        pass
    else:
        return _dumps(_mutate_tree(doc, data)).encode()
    try:
        lines = [json.loads(line) for line in seed.splitlines() if line.strip()]
    except ValueError:
        return None
    n = data.draw(st.integers(1, min(3, len(lines))), label="n_lines") if lines else 0
    for _ in range(n):
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        lines[i] = _mutate_tree(lines[i], data)
    return "".join(_dumps(x) + "\n" for x in lines).encode()


def _mutate_bytes(seed: bytes, data: st.DataObject) -> bytes:
    op = data.draw(st.sampled_from(BYTE_OPS), label="byte_op")
    at = data.draw(st.integers(0, len(seed)), label="at")
    if op == "truncate":
        return seed[:at]
    if op == "insert":
        return seed[:at] + data.draw(st.binary(min_size=1, max_size=64), label="bytes") + seed[at:]
    if op == "non_utf8":
        return seed[:at] + b"\xff\xfe\xc3\x28\xa0\xa1\x00" + seed[at:]
    if op == "empty":
        return b""
    if op == "garbage":
        return data.draw(st.binary(min_size=1, max_size=4096), label="garbage")
    if op == "bom":
        return b"\xef\xbb\xbf" + seed
    if op == "crlf":
        return seed.replace(b"\n", b"\r\n")
    if op == "twice":
        return seed + b"\n" + seed
    packed = gzip.compress(seed, mtime=0)
    return packed if data.draw(st.booleans(), label="whole") else packed[: max(at, 1) // 2]


def _mutate_archive(seed: bytes, data: st.DataObject) -> bytes:
    """An Inspect .eval archive rebuilt with structurally mutated JSON members."""
    out, raw = io.BytesIO(), io.BytesIO(seed)
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = read_member(src, raw, info)
            if info.filename.endswith(".json") and data.draw(st.booleans(), label="mutate"):
                body = _mutate_json(body, data) or body
            dst.writestr(info.filename, body)
    return out.getvalue()


def mutant(fmt: str, seed: bytes, data: st.DataObject) -> bytes:
    """A mutated copy of ``seed``: structural when it is JSON (or a zip of JSON), else bytes."""
    structural = data.draw(st.integers(0, 9), label="structural") < 7
    if structural and fmt == "inspect_eval":
        return _mutate_archive(seed, data)
    if structural:
        mutated = _mutate_json(seed, data)
        if mutated is not None:
            return mutated
    return _mutate_bytes(seed, data)


# -- properties --------------------------------------------------------------------------


def assert_sentence(text: str) -> None:
    """A reason a person can act on: several words, not a bare exception name."""
    assert isinstance(text, str) and len(text.split()) >= 4, repr(text)
    assert not re.fullmatch(r"[A-Za-z]+(Error|Exception)", text.strip()), text


def assert_consistent(store: fk.TraceStore) -> None:
    """The store's tables are readable and hold only valid, consistent rows."""
    spans = store.spans_df()
    assert spans["trace_id"].notna().all() and (spans["trace_id"] != "").all()
    assert spans["span_id"].notna().all() and (spans["span_id"] != "").all()
    assert not spans.duplicated(["trace_id", "span_id"]).any()
    assert set(spans["kind"]) <= KINDS
    assert set(spans["status"]) <= STATUSES
    both = spans.dropna(subset=["start_time", "end_time"])
    assert (both["end_time"] >= both["start_time"]).all()
    ingests = store.ingests_df()
    assert set(spans["ingest_id"]) <= set(ingests["ingest_id"])
    traces = store.traces_df()
    assert set(traces["trace_id"]) == set(spans["trace_id"])
    counts = spans.groupby("trace_id").size()
    assert (traces.set_index("trace_id")["n_spans"] == counts.reindex(traces["trace_id"])).all()
    labels = store.labels_df()
    assert labels["trace_id"].notna().all() and labels["name"].notna().all()
    for reason in store.quarantine_df()["reason"]:
        assert_sentence(reason)


@functools.cache
def _good_file() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="failkit-fuzz-good-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "good.jsonl"
    path.write_bytes(_native_seed().replace(b'"t1"', b'"good-run"'))
    return path


def check_load(path: Path, fmt: str, *, then_good: bool = False) -> None:
    """Load ``path`` and assert the hardening properties (see the module docstring).

    With ``then_good``, also check that a good file still loads into the same store.
    """
    store = fk.connect()
    try:
        try:
            report = store.ingest(path, format=fmt, progress=False)
        except FailkitError as exc:
            assert_sentence(str(exc))
            assert store.ingests_df().empty and store.spans_df().empty
        else:
            row = report.files.iloc[0]
            assert row["rows_read"] == row["rows_loaded"] + row["rows_quarantined"]
            assert len(store.quarantine_df()) == row["rows_quarantined"]
            assert (store.ingests_df()["rows_read"] == row["rows_read"]).all()
        assert_consistent(store)
        if then_good:
            after = store.ingest(_good_file(), format="failkit_jsonl", progress=False)
            assert after.rows_loaded == 5
            assert_consistent(store)
    finally:
        store.close()


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# -- tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_seeds_load_cleanly(fmt: str, tmp_path: Path) -> None:
    """The unmutated seeds are detected as their format and load (the baseline)."""
    for name, read in SEEDS[fmt]:
        path = _write(tmp_path, name, read())
        store = fk.connect()
        report = store.ingest(path, progress=False)
        assert report.files["format"].iloc[0] == fmt
        assert report.rows_loaded > 0
        assert_consistent(store)


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(data=st.data())
def test_mutants_never_crash_and_lose_nothing(fmt: str, data: st.DataObject) -> None:
    """Mutated seeds: only FailkitError escapes, every record is loaded or quarantined."""
    name, read = data.draw(st.sampled_from(SEEDS[fmt]), label="seed")
    body = mutant(fmt, read(), data)
    with tempfile.TemporaryDirectory(prefix="failkit-fuzz-") as folder:
        path = _write(Path(folder), name, body)
        check_load(path, fmt, then_good=True)
        check_load(path, "auto")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "body",
    [b"", b"\xef\xbb\xbf\n\n  \n", bytes(range(256)) * 4, b"{", b'[{"a": NaN}, Infinity]',
     b"\x1f\x8b\x08\x00\x00\x00"],
    ids=["empty", "blank", "binary", "brace", "nan", "cut-gzip"],
)  # fmt: skip
def test_degenerate_files(fmt: str, body: bytes, tmp_path: Path) -> None:
    """Empty, blank, binary and cut-off files: a FailkitError saying why, or nothing loaded."""
    name = SEEDS[fmt][0][0]
    path = _write(tmp_path, name, body)
    check_load(path, fmt)
    check_load(path, "auto")


def test_glob_characters_in_a_file_name_read_that_file(tmp_path: Path) -> None:
    """DuckDB globs ``*``, ``?``, ``[...]`` in paths: failkit must read the named file only."""
    seed = _native_seed()
    for name, other in (("run[1].jsonl", "run1.jsonl"), ("q?.jsonl", "qx.jsonl"),
                        ("star*.jsonl", "starzz.jsonl"), ("x{a,b}.jsonl", "xa.jsonl")):  # fmt: skip
        _write(tmp_path, other, seed.replace(b'"t1"', b'"decoy"'))
        path = _write(tmp_path, name, seed)
        for body in (seed, seed + b"not json\n"):  # fast path, then the careful one
            path.write_bytes(body)
            store = fk.connect()
            report = store.ingest([path], progress=False)
            assert set(store.spans_df()["trace_id"]) == {"t1"}, name
            assert report.rows_loaded == 5
    labels = _write(tmp_path, "labels[1].csv", _labels_seed())
    _write(tmp_path, "labels1.csv", b"trace_id,name,value\ndecoy,outcome,success\n")
    store = fk.connect()
    store.ingest(_good_file(), progress=False)
    store.add_labels([labels])
    assert "decoy" not in set(store.labels_df()["trace_id"])


# -- decision chains ---------------------------------------------------------------------

ROOT_REASONS = {"no_parent", "missing_parent", "parent_cycle"}


def _spans_frame(parents: list[str | None], trace_id: str = "t") -> pd.DataFrame:
    n = len(parents)
    return pd.DataFrame({
        "trace_id": [trace_id] * n,
        "span_id": [f"s{i}" for i in range(n)],
        "parent_id": parents,
        "kind": ["tool"] * n,
        "name": ["step"] * n,
        "status": ["ok"] * n,
        "start_time": pd.Timestamp("2026-01-01"),
    })  # fmt: skip


def assert_chain_is_a_tree(frame: pd.DataFrame, steps: pd.DataFrame) -> None:
    """Every span once; roots say why; children one level below a parent that comes first."""
    assert sorted(steps["span_id"]) == sorted(frame["span_id"])
    assert sorted(steps["step"]) == list(range(1, len(frame) + 1))
    by_id = steps.set_index("span_id")
    original = frame.set_index("span_id")["parent_id"]
    for span_id, row in by_id.iterrows():
        parent = original[span_id]
        if row["depth"] == 0:
            assert row["root_reason"] in ROOT_REASONS
            if pd.isna(parent):
                assert row["root_reason"] == "no_parent"
            elif parent not in by_id.index:
                assert row["root_reason"] == "missing_parent"
            else:
                assert row["root_reason"] == "parent_cycle"
        else:
            assert pd.isna(row["root_reason"]) and parent in by_id.index
            assert by_id.loc[parent, "depth"] == row["depth"] - 1
            assert by_id.loc[parent, "step"] < row["step"]


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(
    links=st.lists(st.one_of(st.none(), st.integers(0, 24), st.just(-1)), min_size=1, max_size=25)
)
def test_chains_repair_any_parent_graph(links: list[int | None]) -> None:
    """Random parent links (self-parents, cycles, orphans) always give a tree of steps."""
    parents = [None if p is None else "ghost" if p == -1 else f"s{p}" for p in links]
    frame = _spans_frame(parents)
    assert_chain_is_a_tree(frame, fk.steps(frame))


def test_chains_terminate_on_cycles_and_absurd_depth(tmp_path: Path) -> None:
    """A 10,000-deep chain, a 2-cycle, a self-parent and a 3-cycle with a tail, from a store."""

    def span(trace: str, span_id: str, parent: str | None) -> str:
        return json.dumps({
            "type": "span", "trace_id": trace, "span_id": span_id, "parent_id": parent,
            "kind": "tool", "name": span_id, "start_time": "2026-01-01T00:00:00Z",
        })  # fmt: skip

    lines = [span("deep", f"s{i}", f"s{i - 1}" if i else None) for i in range(10_000)]
    lines += [span("two", "a", "b"), span("two", "b", "a"), span("self", "x", "x")]
    lines += [span("three", s, p) for s, p in [("a", "c"), ("b", "a"), ("c", "b"), ("d", "c")]]
    path = tmp_path / "chains.jsonl"
    path.write_text("\n".join(lines) + "\n")
    store = fk.connect()
    assert store.ingest(path, progress=False).rows_loaded == 10_007
    frame = store.spans_df()
    steps = fk.steps(store)
    for trace, group in steps.groupby("trace_id"):
        assert_chain_is_a_tree(frame.loc[frame["trace_id"] == trace], group)
    assert steps.loc[steps["trace_id"] == "deep", "depth"].max() == 9_999
    cut = steps.dropna(subset=["root_reason"]).groupby("trace_id")["root_reason"].agg(set)
    assert cut.to_dict() == {
        "deep": {"no_parent"}, "two": {"parent_cycle"}, "self": {"parent_cycle"},
        "three": {"parent_cycle"},
    }  # fmt: skip
    assert "(root: parent_cycle)" in str(fk.chain(store, "two"))
    assert "(root: parent_cycle)" in fk.chain(store, "self")._repr_html_()
