"""Large input (issue 8): a 100 MB value is kept whole, a line over the limit is quarantined.

failkit reads one record (a line of JSON lines) of up to 256 MiB
(:data:`failkit.ingest.lines.MAX_LINE_BYTES`); a longer line is quarantined with a reason
saying so and the rest of the file loads. The over-limit case is tested with the limit
lowered, so that the test stays small. The multi-GB streaming benchmark is
``benchmarks/large_otlp.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import failkit as fk
from failkit.ingest import lines, native

MB = 1 << 20
BIG = 100 * MB


def span(span_id: str, **fields: object) -> str:
    record = {
        "type": "span", "trace_id": "big-run", "span_id": span_id, "kind": "llm",
        "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01Z", "status": "ok",
    }  # fmt: skip
    return json.dumps(record | fields)


def write_big_native(path: Path, *, extra: str = "") -> Path:
    """failkit JSONL with a small span, a span whose attribute is 100 MB, and ``extra``."""
    marker = "@@BIG@@"
    template = span("big", attributes={"blob": marker}, output="short")
    head, tail = template.split(marker)
    with open(path, "w", encoding="ascii") as f:
        f.write(span("small") + "\n")
        f.write(head)
        for _ in range(BIG // MB):
            f.write("x" * MB)
        f.write(tail + "\n")
        f.write(extra)
    return path


@pytest.mark.parametrize("bad_line", [False, True], ids=["fast-path", "careful-path"])
def test_100_mb_attribute_in_failkit_jsonl_is_kept(tmp_path: Path, bad_line: bool) -> None:
    """Both read paths keep the value whole (a bad line forces the line-by-line path)."""
    path = write_big_native(tmp_path / "big.jsonl", extra="not json\n" if bad_line else "")
    store = fk.connect()
    report = store.ingest(path, progress=False)
    assert (report.rows_loaded, report.rows_quarantined) == (2, int(bad_line))
    got = store.sql(
        "SELECT span_id, length(attributes->>'$.blob') AS n FROM spans ORDER BY span_id"
    )
    sizes = got.set_index("span_id")["n"]
    assert sizes["big"] == BIG and pd.isna(sizes["small"])
    assert len(fk.steps(store)) == 2  # the analyses still run


def test_100_mb_attribute_in_otlp_is_kept(tmp_path: Path) -> None:
    marker = "@@BIG@@"
    request = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{
        "scope": {"name": "test"},
        "spans": [{
            "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "name": "chat", "kind": 3, "startTimeUnixNano": "1767225600000000000",
            "endTimeUnixNano": "1767225601000000000", "status": {},
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "blob", "value": {"stringValue": marker}}],
        }],
    }]}]}  # fmt: skip
    head, tail = json.dumps(request).split(marker)
    path = tmp_path / "big.otlp.jsonl"
    with open(path, "w", encoding="ascii") as f:
        f.write(head)
        for _ in range(BIG // MB):
            f.write("y" * MB)
        f.write(tail + "\n")
    store = fk.connect()
    report = store.ingest(path, progress=False)
    assert report.files["format"].tolist() == ["otlp"]
    assert (report.rows_loaded, report.rows_quarantined) == (1, 0)
    n = store.sql("SELECT length(attributes->>'$.blob') AS n FROM spans")["n"].tolist()
    assert n == [BIG]


def test_line_over_the_limit_is_quarantined_and_the_rest_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 1 * MB
    monkeypatch.setattr(lines, "MAX_LINE_BYTES", limit)
    monkeypatch.setattr(native, "MAX_LINE_BYTES", limit)
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join([span("a"), span("long", input="z" * (2 * limit)), span("b")]) + "\n")
    store = fk.connect()
    report = store.ingest(path, progress=False)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (3, 2, 1)
    q = store.quarantine_df()
    assert q["position"].tolist() == ["line 2"]
    assert q["reason"].iloc[0].startswith("line is longer than 1,048,576 bytes")
    assert len(q["raw"].iloc[0]) <= 2000  # what is kept of it is cut short
    assert sorted(store.spans_df()["span_id"]) == ["a", "b"]


def test_python_adapter_with_a_large_value(tmp_path: Path) -> None:
    """The adapters that parse in Python (here LangSmith runs) keep a 20 MB input too."""
    run = {
        "id": "6b6e2d8e-0000-4000-8000-000000000001", "trace_id":
        "6b6e2d8e-0000-4000-8000-000000000001", "name": "agent", "run_type": "chain",
        "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01Z",
        "dotted_order": "20260101T000000000000Z6b6e2d8e-0000-4000-8000-000000000001",
        "inputs": {"question": "q" * (20 * MB)},
    }  # fmt: skip
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(run) + "\n")
    store = fk.connect()
    report = store.ingest(path, progress=False)
    assert report.files["format"].tolist() == ["langsmith_runs"]
    assert report.rows_quarantined == 0
    n = store.sql("SELECT length(input->>'$.question') AS n FROM spans")["n"].tolist()
    assert n == [20 * MB]
