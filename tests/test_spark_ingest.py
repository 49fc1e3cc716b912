"""ingest_to_lake cuts big JSON-lines files into byte ranges, each loaded by its own task."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, sample
from spark_fixtures import spark  # noqa: F401  (the fixture)

import failkit as fk
from failkit.spark.ingest import byte_ranges

pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning"
)

BAD = b"{not json\n"


def _lake_equals_store(spark, files: list[Path], lake: Path, split_bytes: int):  # noqa: F811
    """Load ``files`` on Spark in ranges and with ``store.ingest``; every table is equal."""
    from failkit.spark import ingest_to_lake

    store = fk.connect()
    store.ingest(files, progress=False)
    report = ingest_to_lake(spark, files, lake, split_bytes=split_bytes)
    got = fk.connect_parquet(lake)
    for table in ("spans", "traces", "labels", "quarantine"):
        query = f"SELECT * FROM {table} ORDER BY ALL"  # fixed table names
        pd.testing.assert_frame_equal(got.sql(query), store.sql(query))
    counts = ["ingest_id", "path", "format", "sha256", "rows_read", "rows_loaded"]
    counts.append("rows_quarantined")
    expected = store.ingests_df()[counts].sort_values("path", ignore_index=True)
    pd.testing.assert_frame_equal(report[counts].sort_values("path", ignore_index=True), expected)
    return store


def _runs_cut(path: Path, ranges: list[tuple[int, int]]) -> set[str]:
    """Runs of a failkit JSONL file with lines in more than one range."""
    data = path.read_bytes()
    seen: dict[str, set[int]] = {}
    for part, (a, b) in enumerate(ranges):
        for line in data[a:b].splitlines():
            run = _native_run(line)
            if run:
                seen.setdefault(run, set()).add(part)
    return {run for run, parts in seen.items() if len(parts) > 1}


def _native_run(line: bytes) -> str | None:
    try:
        return json.loads(line).get("trace_id")
    except ValueError:
        return None


def test_a_failkit_jsonl_file_in_three_ranges_gives_the_tables_of_store_ingest(
    spark,  # noqa: F811
    tmp_path: Path,
):
    """A bad line and a blank one in the second range keep their line numbers; runs cut by
    a range boundary (run records included) are rebuilt whole."""
    lines = gzip.decompress((REPO / "data" / "sample" / "traces.jsonl.gz").read_bytes())
    lines = lines.splitlines(keepends=True)
    middle = len(lines) // 2
    path = tmp_path / "traces.jsonl"
    path.write_bytes(b"".join([*lines[:middle], BAD, b"\n", *lines[middle:]]))
    split = path.stat().st_size // 3 + 1
    ranges = byte_ranges(path, split)
    assert len(ranges) == 3
    bad_at = path.read_bytes().index(BAD)
    assert ranges[1][0] < bad_at < ranges[1][1]
    assert len(_runs_cut(path, ranges)) >= 2  # one run at each cut
    store = _lake_equals_store(spark, [path], tmp_path / "lake", split)
    position = store.quarantine_df()["position"].tolist()
    assert position == [f"line {middle + 1}"]


def _request(line: bytes, spans: slice) -> bytes:
    """An OTLP request line holding a slice of the spans of a one-scope request."""
    request = json.loads(line)
    scope = request["resourceSpans"][0]["scopeSpans"][0]
    scope["spans"] = scope["spans"][spans]
    return json.dumps(request).encode() + b"\n"


def test_an_otlp_json_lines_file_in_ranges(spark, tmp_path: Path):  # noqa: F811
    """A run whose requests sit in two ranges is one run; a bad line and a span repeated
    in one request keep their positions (``line 3``, ``line 4 span 2``)."""
    big, other = sample("langgraph_openinference.otlp.jsonl").read_bytes().splitlines()
    first, second = _request(big, slice(0, 12)), _request(big, slice(12, None))
    request = json.loads(other)
    spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.insert(1, spans[0])
    rest = [sample(f"{n}.otlp.jsonl").read_bytes() for n in ("otel_genai_agent", "langfuse_otel")]
    path = tmp_path / "requests.otlp.jsonl"
    path.write_bytes(b"".join([first, second, BAD, json.dumps(request).encode() + b"\n", *rest]))
    ranges = byte_ranges(path, len(first))
    assert ranges[1][0] == len(first) and len(ranges) >= 3
    store = _lake_equals_store(spark, [path], tmp_path / "lake", len(first))
    assert store.sql("SELECT count(DISTINCT trace_id) AS n FROM spans")["n"].iloc[0] == 6
    assert store.quarantine_df()["position"].tolist() == ["line 3", "line 4 span 2"]


def test_gzip_and_small_files_are_loaded_whole(spark, tmp_path: Path):  # noqa: F811
    """gzip cannot be read from the middle: a big gzip file is one task, as is a small file."""
    files = [REPO / "data" / "sample" / "traces.jsonl.gz", REPO / "data" / "sample" / "labels.csv"]
    _lake_equals_store(spark, files, tmp_path / "lake", 1 << 16)


def test_byte_ranges_end_on_newlines(tmp_path: Path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"aaaa\nbb\n" + b"c" * 30 + b"\nd")
    ranges = byte_ranges(path, 6)
    assert ranges == [(0, 8), (8, 39), (39, 40)]
    assert byte_ranges(path, 1000) == [(0, 40)]
    data = path.read_bytes()
    assert all(data[b - 1 : b] == b"\n" for _, b in ranges[:-1])


def test_split_bytes_must_be_positive(spark, tmp_path: Path):  # noqa: F811
    from failkit.errors import FailkitError
    from failkit.spark import ingest_to_lake

    with pytest.raises(FailkitError, match="split_bytes must be a positive"):
        ingest_to_lake(spark, REPO / "data" / "sample" / "labels.csv", tmp_path, split_bytes=0)
