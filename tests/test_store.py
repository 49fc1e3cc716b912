"""TraceStore: schema, transactional and idempotent loads, quarantine, labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

import failkit as fk
from failkit.ingest import native, register
from failkit.ingest.base import Staging
from failkit.schema import TABLES, names


def span(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "span",
        "trace_id": "t1",
        "span_id": "s1",
        "kind": "llm",
        "start_time": "2026-01-01T00:00:00Z",
        "end_time": "2026-01-01T00:00:01.5Z",
        "status": "ok",
    }
    base.update(kw)
    return base


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), "utf-8"
    )
    return path


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "good.jsonl",
        [
            span(span_id="root", kind="agent", name="run", attributes={"failkit.task_id": "k1"}),
            span(span_id="c1", parent_id="root", tokens_in=10, tokens_out=3, cost_usd=0.002),
            span(
                span_id="c2",
                parent_id="root",
                kind="tool",
                tool_name="search",
                tool_args={"q": "x"},
                status="error",
                error_type="TimeoutError",
            ),
            {"type": "label", "trace_id": "t1", "name": "outcome", "value": "failure"},
        ],
    )


def test_tables_match_schema() -> None:
    store = fk.connect()
    for table, columns in TABLES.items():
        got = store.sql(f"DESCRIBE {table}")["column_name"].tolist()
        assert got == names(columns)


def test_good_file_loads_and_builds_trace(good_file: Path) -> None:
    store = fk.connect()
    report = store.ingest(good_file)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (4, 4, 0)
    spans = store.spans_df().set_index("span_id")
    assert sorted(spans.index) == ["c1", "c2", "root"]
    assert spans["duration_s"].tolist() == [1.5, 1.5, 1.5]
    assert json.loads(spans.loc["c2", "tool_args"]) == {"q": "x"}
    trace = store.traces_df().iloc[0]
    assert trace["task_id"] == "k1"
    assert trace["outcome"] == "failure"
    assert trace["status"] == "error"
    assert (trace["n_spans"], trace["n_llm"], trace["n_tool"]) == (3, 1, 1)
    assert trace["tokens_in"] == 10  # llm spans only
    assert trace["name"] == "run"


BAD_LINES = {
    "not json": "not valid JSON",
    '{"trace_id": "t1", "span_id": ': "not valid JSON",
    "[1, 2]": "JSON array, not an object",
    json.dumps(span(trace_id=None, span_id="x1")): "missing trace_id",
    json.dumps(span(span_id="")): "missing span_id",
    json.dumps(span(span_id="x2", tokens_in="many")): "field tokens_in should be an integer",
    json.dumps(span(span_id="x3", start_time="yesterday")): "field start_time should be an ISO",
    json.dumps(span(span_id="x4", attributes=[1])): "field attributes should be an object",
    json.dumps(span(span_id="x5", kind="robot")): "unknown kind robot",
    json.dumps(span(span_id="x6", status="meh")): "unknown status meh",
    json.dumps(span(span_id="x7", end_time="2025-12-31T23:59:59Z")): "is before start_time",
    json.dumps({"type": "gizmo", "trace_id": "t1"}): "unknown record type gizmo",
    json.dumps({"type": "label", "trace_id": "t1"}): "label without name",
}


def test_each_bad_line_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    lines = [json.dumps(span(span_id="ok1"))]
    lines += list(BAD_LINES)
    lines += [json.dumps(span(span_id="ok1"))]  # duplicate of line 1
    path = write_lines(tmp_path / "mixed.jsonl", lines)
    store = fk.connect()
    report = store.ingest(path)
    assert report.rows_read == report.rows_loaded + report.rows_quarantined
    assert report.rows_loaded == 1
    assert report.rows_quarantined == len(BAD_LINES) + 1
    q = store.quarantine_df().set_index("position")
    for i, expected in enumerate(BAD_LINES.values(), start=2):
        assert expected in q.loc[f"line {i}", "reason"], (i, q.loc[f"line {i}", "reason"])
    assert "duplicate span" in q.loc[f"line {len(lines)}", "reason"]
    assert q["raw"].notna().all()


def test_a_clean_file_read_in_parallel_keeps_its_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the fast path reads (every line well typed), big enough for DuckDB to read
    in parallel: the spans the store rejects, and a run record, keep their line numbers."""
    pad = "x" * 400
    lines: list[object] = [
        span(trace_id=f"t{i // 7}", span_id=f"s{i}", input=pad) for i in range(60_000)
    ]
    odd = {3: "robot", 31_337: "droid", 59_998: "bot"}
    for line, kind in odd.items():
        lines[line - 1] = span(trace_id="t0", span_id=f"odd{line}", kind=kind)
    lines[41_000] = {"type": "trace", "trace_id": "t1", "name": "run one"}
    path = write_lines(tmp_path / "big.jsonl", lines)
    assert path.stat().st_size > 20e6
    monkeypatch.setattr(native, "_load_careful", lambda stage: pytest.fail("not read fast"))
    store = fk.connect()
    report = store.ingest(path, progress=False)
    assert report.rows_quarantined == len(odd)
    q = store.quarantine_df().set_index("position")["reason"]
    for line, kind in odd.items():
        assert f"unknown kind {kind}" in q[f"line {line}"]
    assert store.traces_df().set_index("trace_id").loc["t1", "name"] == "run one"


def test_non_utf8_line_is_quarantined_and_numbering_stays_right(tmp_path: Path) -> None:
    path = tmp_path / "enc.jsonl"
    path.write_bytes(
        json.dumps(span(span_id="a")).encode()
        + b"\n"
        + b'{"trace_id": "\xff\xfe"}\n'
        + b"\n"
        + b"garbage\n"
    )
    store = fk.connect()
    report = store.ingest(path)
    assert (report.rows_loaded, report.rows_quarantined) == (1, 2)
    q = store.quarantine_df().set_index("position")["reason"]
    assert "not valid UTF-8" in q["line 2"]
    assert "not valid JSON" in q["line 4"]


def test_same_file_twice_loads_nothing_new(good_file: Path, tmp_path: Path) -> None:
    store = fk.connect()
    store.ingest(good_file)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(good_file.read_bytes())
    again = store.ingest([good_file, copy])
    assert again.rows_loaded == 0
    assert again.files["status"].tolist() == ["skipped", "skipped"]
    assert len(store.spans_df()) == 3
    assert len(store.ingests_df()) == 1


def test_overlapping_file_quarantines_already_loaded_spans(good_file: Path, tmp_path: Path) -> None:
    store = fk.connect()
    store.ingest(good_file)
    other = write_lines(tmp_path / "more.jsonl", [span(span_id="c1"), span(span_id="c9")])
    report = store.ingest(other)
    assert (report.rows_loaded, report.rows_quarantined) == (1, 1)
    assert "already loaded" in store.quarantine_df()["reason"].iloc[0]
    assert store.traces_df()["n_spans"].iloc[0] == 4


class ExplodingAdapter:
    """Stages real rows, then fails, as a crash mid-load would."""

    name: ClassVar[str] = "test_exploding"
    description: ClassVar[str] = "test only"

    def sniff(self, head: bytes, path: Path) -> bool:
        return False

    def load(self, stage: Staging) -> None:
        stage.append(
            "stage_spans",
            [
                {
                    "trace_id": "boom",
                    "span_id": "1",
                    "kind": "llm",
                    "status": "ok",
                    "source": "x",
                    "position": "1",
                }
            ],
        )
        stage.quarantine("2", "bad")
        raise RuntimeError("disk on fire")


def test_failed_load_leaves_store_unchanged(good_file: Path, tmp_path: Path) -> None:
    register(ExplodingAdapter())
    store = fk.connect(tmp_path / "t.duckdb")
    store.ingest(good_file)
    before = {t: store.sql(f"SELECT count(*) AS n FROM {t}")["n"][0] for t in TABLES}
    victim = write_lines(tmp_path / "victim.jsonl", [span(trace_id="t9", span_id="v")])
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.ingest(victim, format="test_exploding")
    after = {t: store.sql(f"SELECT count(*) AS n FROM {t}")["n"][0] for t in TABLES}
    assert before == after
    # the store still works after the rollback
    more = write_lines(tmp_path / "more.jsonl", [span(trace_id="t2", span_id="z")])
    assert store.ingest(more).rows_loaded == 1


def test_add_labels_from_csv_and_frame(good_file: Path, tmp_path: Path) -> None:
    store = fk.connect()
    store.ingest(good_file)
    csv = tmp_path / "verdicts.csv"
    csv.write_text("trace_id,name,value,score\nT1,outcome,success,1\nt1,judge,meh,abc\n")
    report = store.add_labels(csv)
    assert (report.rows_loaded, report.rows_quarantined) == (1, 1)
    assert store.traces_df()["outcome"].iloc[0] == "success"
    frame = pd.DataFrame({"trace_id": ["t1"], "name": ["outcome"], "value": ["failed"]})
    store.add_labels(frame)
    assert store.traces_df()["outcome"].iloc[0] == "failure"
    assert store.add_labels(frame).rows_loaded == 0  # idempotent


def test_add_labels_names_missing_columns() -> None:
    store = fk.connect()
    with pytest.raises(fk.FailkitError, match=r"missing column\(s\) value.*unknown column\(s\) x"):
        store.add_labels(pd.DataFrame({"trace_id": ["t"], "name": ["n"], "x": [1]}))


def test_unknown_path_and_format_errors(tmp_path: Path) -> None:
    store = fk.connect()
    with pytest.raises(fk.FailkitError, match="no file matches"):
        store.ingest(tmp_path / "nope*.jsonl")
    weird = tmp_path / "weird.txt"
    weird.write_text("hello world\n")
    with pytest.raises(fk.FormatError, match="Supported formats"):
        store.ingest(weird)
    with pytest.raises(fk.FormatError, match="unknown format 'nope'"):
        store.ingest(weird, format="nope")


def test_directory_glob_and_gzip(good_file: Path, tmp_path: Path) -> None:
    import gzip

    sub = tmp_path / "d"
    sub.mkdir()
    (sub / "a.jsonl.gz").write_bytes(gzip.compress(good_file.read_bytes()))
    write_lines(sub / "b.jsonl", [span(trace_id="t2", span_id="q")])
    store = fk.connect()
    report = store.ingest(sub)
    assert report.rows_loaded == 5
    assert sorted(store.traces_df()["trace_id"]) == ["t1", "t2"]
    assert len(fk.connect().ingest(str(sub / "*.jsonl")).files) == 1


def test_sql_binds_parameters(good_file: Path) -> None:
    store = fk.connect()
    store.ingest(good_file)
    hostile = "t1' OR '1'='1"
    assert store.sql("SELECT * FROM spans WHERE trace_id = ?", [hostile]).empty
    assert len(store.sql("SELECT * FROM spans WHERE trace_id = $t", {"t": "t1"})) == 3
    with pytest.raises(fk.FailkitError, match="query failed"):
        store.sql("SELECT * FROM nowhere")


def test_file_store_reopens_and_second_writer_gets_clear_error(
    good_file: Path, tmp_path: Path
) -> None:
    db = tmp_path / "traces.duckdb"
    with fk.connect(db) as store:
        store.ingest(good_file)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import failkit as fk, time; s = fk.connect({str(db)!r}); print('ready', flush=True); "
            "time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(fk.StoreLockedError, match="open for writing in another process"):
            fk.connect(db)
    finally:
        holder.kill()
        holder.communicate()
    with fk.connect(db, read_only=True) as store:
        assert len(store.spans_df()) == 3
        with pytest.raises(fk.FailkitError, match="read_only"):
            store.ingest(good_file)
