"""No way in (issue 8): hostile names and content are data, never SQL, markup or paths.

Every value a user or a trace supplies — file names, globs, format names, trace and span ids,
label names, span content — reaches DuckDB as a bound parameter (or, for the few column
names taken from a file, only after checking them against a fixed list), is stored
verbatim, and is escaped wherever it is rendered as HTML. Inspect ``.eval`` archives with
unsafe member names or zip-bomb ratios are refused before anything is extracted.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import failkit as fk
from failkit.errors import FailkitError, FormatError
from failkit.schema import TABLES

HOSTILE = [
    "x'); DROP TABLE spans; --",
    'x"); DROP TABLE spans; --',
    "'; DELETE FROM ingests WHERE '1'='1",
    "$1; ATTACH '/tmp/evil.duckdb' AS evil; --",
    "read_csv('/etc/passwd')",
    "*",
    "run[1]?",
    "\\'; COPY spans TO '/tmp/leak.csv'; --",
]
SCRIPT = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"


def assert_intact(store: fk.TraceStore) -> None:
    """Every failkit table still exists with its columns."""
    tables = set(store.sql("SELECT table_name FROM duckdb_tables()")["table_name"])
    assert set(TABLES) <= tables
    databases = store.sql("SELECT database_name FROM duckdb_databases()")["database_name"]
    assert "evil" not in set(databases)


def span(trace_id: str, span_id: str, **fields: object) -> dict[str, object]:
    return {
        "type": "span", "trace_id": trace_id, "span_id": span_id, "kind": "tool",
        "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01Z",
    } | fields  # fmt: skip


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    return path


@pytest.mark.parametrize(
    "name",
    ["a'; DROP TABLE spans; --.jsonl", 'b"; DROP TABLE spans; --.jsonl', "c $(rm -rf ~).jsonl",
     "d\nnewline.jsonl", "e%s%n.jsonl", "f[1]*.jsonl"],
)  # fmt: skip
@pytest.mark.parametrize("careful", [False, True], ids=["clean", "with-bad-line"])
def test_hostile_file_names(tmp_path: Path, name: str, careful: bool) -> None:
    path = write_jsonl(tmp_path / name, [span("t1", "s1"), span("t1", "s2")])
    if careful:  # the line-by-line path reads the file again
        path.write_text(path.read_text() + "{oops\n")
    store = fk.connect()
    report = store.ingest([path], progress=False)
    assert (report.rows_loaded, report.rows_quarantined) == (2, int(careful))
    assert store.ingests_df()["path"].tolist() == [str(path)]
    assert_intact(store)


def test_hostile_glob_directory_and_database_path(tmp_path: Path) -> None:
    folder = tmp_path / 'it\'s a "dir"; DROP TABLE spans; --'
    folder.mkdir()
    write_jsonl(folder / "one.jsonl", [span("t1", "s1")])
    write_jsonl(folder / "two.jsonl", [span("t2", "s1")])
    db = tmp_path / "it's; DROP TABLE spans; --.duckdb"
    with fk.connect(db) as store:
        assert store.ingest(str(folder / "*.jsonl"), progress=False).rows_loaded == 2
        assert store.ingest(folder, progress=False).rows_loaded == 0  # same files
        assert_intact(store)
    with fk.connect(db, read_only=True) as store:
        assert len(store.spans_df()) == 2


@pytest.mark.parametrize("value", HOSTILE[:2] + HOSTILE[3:5] + HOSTILE[6:])
def test_hostile_ids_names_and_content_are_stored_verbatim(tmp_path: Path, value: str) -> None:
    records = [
        span(value, value, parent_id=value + "-parent", name=value, tool_name=value,
             error_message=value, input=value, status="error", attributes={value: value}),
        {"type": "label", "trace_id": value, "span_id": value, "name": value, "value": value},
        {"type": "trace", "trace_id": value, "name": value, "task_id": value},
    ]  # fmt: skip
    store = fk.connect()
    report = store.ingest(write_jsonl(tmp_path / "hostile.jsonl", records), progress=False)
    assert (report.rows_loaded, report.rows_quarantined) == (3, 0)
    stored = value.strip().lower()  # ids are kept as trimmed lowercase text
    row = store.sql("SELECT * FROM spans WHERE trace_id = ?", [stored]).iloc[0]
    assert (row["span_id"], row["name"], row["tool_name"]) == (stored, value, value)
    assert json.loads(row["attributes"]) == {value: value}
    assert store.labels_df()["name"].tolist() == [value]
    assert store.traces_df()["task_id"].tolist() == [value]
    # analyses take ids as bound parameters too
    assert len(fk.steps(store, trace_ids=[value])) == 1
    assert fk.chain(store, value).trace_id == stored
    with pytest.raises(FailkitError, match="no run with trace_id"):
        fk.chain(store, value + "-other")
    store.add_labels(pd.DataFrame({"trace_id": [value], "name": [value], "value": [value]}))
    assert len(store.labels_df()) == 2
    assert_intact(store)


@pytest.mark.parametrize("value", HOSTILE[:3])
def test_hostile_values_in_the_python_adapters(tmp_path: Path, value: str) -> None:
    """The adapters that build rows in Python stage them through Arrow, never SQL text."""
    run = {
        "id": value, "trace_id": value, "name": value, "run_type": "tool",
        "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01Z",
        "inputs": {value: value}, "error": f"ValueError('{value}')", "dotted_order": value,
    }  # fmt: skip
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(run) + "\n")
    store = fk.connect()
    report = store.ingest(path, format="langsmith_runs", progress=False)
    assert report.rows_quarantined == 0
    assert store.spans_df()["name"].tolist() == [value]
    assert_intact(store)


def test_hostile_format_names_and_label_columns(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ok.jsonl", [span("t1", "s1")])
    store = fk.connect()
    for fmt in HOSTILE:
        with pytest.raises(FormatError, match="unknown format"):
            store.ingest(path, format=fmt, progress=False)
    # CSV header names are checked against the label columns before any SQL is built
    csv = tmp_path / "labels.csv"
    csv.write_text('trace_id,name,value,"x\'); DROP TABLE spans; --"\nt1,outcome,success,1\n')
    with pytest.raises(FailkitError, match="unknown column"):
        store.add_labels(csv)
    frame = pd.DataFrame({"trace_id": ["t1"], "name": ["n"], "value": ["v"], HOSTILE[0]: [1]})
    with pytest.raises(FailkitError, match="unknown column"):
        store.add_labels(frame)
    assert store.ingest(path, progress=False).rows_loaded == 1
    assert_intact(store)


def test_sql_binds_hostile_parameters(tmp_path: Path) -> None:
    store = fk.connect()
    store.ingest(write_jsonl(tmp_path / "ok.jsonl", [span("t1", "s1")]), progress=False)
    for value in HOSTILE:
        assert store.sql("SELECT * FROM spans WHERE trace_id = ?", [value]).empty
        assert store.sql("SELECT * FROM spans WHERE name = $n", {"n": value}).empty
    assert_intact(store)
    assert len(store.spans_df()) == 1


def test_trace_content_is_escaped_in_html(tmp_path: Path) -> None:
    records = [
        span("t1", "root", kind="agent", name=SCRIPT),
        span("t1", "tool", parent_id="root", name=SCRIPT, tool_name=SCRIPT, status="error",
             error_type=SCRIPT, error_message=SCRIPT),
        {"type": "label", "trace_id": "t1", "name": "outcome", "value": "failure"},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / f"{SCRIPT.replace('/', '_')}.jsonl", records)
    store = fk.connect()
    report = store.ingest(path, progress=False)
    for html in (report._repr_html_(), fk.chain(store, "t1")._repr_html_(),
                 fk.summary(store)._repr_html_()):  # fmt: skip
        assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in fk.chain(store, "t1")._repr_html_()
    assert "&lt;script&gt;" in report._repr_html_()


# -- Inspect .eval archives --------------------------------------------------------------

HEADER = json.dumps({"version": 2, "eval": {"task": "t", "eval_id": "e1", "run_id": "r1"}})


def archive(
    path: Path, members: dict[str, bytes | str], method: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


@pytest.mark.parametrize(
    "member",
    ["../evil.json", "samples/../../evil.json", "/etc/evil.json", "..\\..\\evil.json",
     "C:/evil.json", "samples\\..\\..\\evil.json"],
)  # fmt: skip
def test_eval_with_unsafe_member_names_is_refused(tmp_path: Path, member: str) -> None:
    path = archive(tmp_path / "log.eval", {"header.json": HEADER, member: "{}"})
    store = fk.connect()
    with pytest.raises(FailkitError, match="refusing the archive"):
        store.ingest(path, format="inspect_eval", progress=False)
    assert store.ingests_df().empty
    assert not (tmp_path.parent / "evil.json").exists()


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2])
def test_eval_zip_bomb_is_refused_before_inflating(tmp_path: Path, method: int) -> None:
    bomb = b"\x00" * (32 << 20)  # 32 MiB of zeros: ratio over 1000 with every method
    path = archive(tmp_path / "bomb.eval", {"header.json": HEADER, "samples/a_epoch_1.json": bomb},
                   method)  # fmt: skip
    assert path.stat().st_size < 200_000
    store = fk.connect()
    with pytest.raises(FailkitError, match="zip bomb or a damaged file"):
        store.ingest(path, progress=False)
    assert store.ingests_df().empty


def test_eval_member_never_read_past_its_declared_size(tmp_path: Path) -> None:
    """A member whose directory entry understates its size is cut, not inflated whole."""
    sample = b" " * (8 << 20) + b"{}"
    members = {"header.json": HEADER, "samples/a_epoch_1.json": sample}
    path = archive(tmp_path / "liar.eval", members)
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")  # the sample's central directory entry (the last)
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")  # uncompressed size: 100
    path.write_bytes(bytes(data))
    store = fk.connect()
    report = store.ingest(path, format="inspect_eval", progress=False)
    assert report.rows_loaded == 0
    reasons = store.quarantine_df()["reason"].tolist()
    assert reasons and "cannot be read" in reasons[0]
