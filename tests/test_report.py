"""The HTML report: executed against a store, self-contained, and trace text shown as text."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

import failkit as fk
from failkit.cli import app
from failkit.report import INJECTED_TAG, inject_parameters, render_report, sanitize_html

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"

# A report notebook that shows hostile trace text every way a notebook can: a pandas table, a
# chart, Markdown, raw HTML, print and a failing-looking repr.
CELLS = [
    ("DB = None\nSEED = 0", ["parameters"]),
    ("import failkit as fk\nimport altair as alt\nfrom IPython.display import HTML, Markdown\n"
     "fk.enable_offline_charts()\nstore = fk.connect(DB, read_only=True)", []),
    ("spans = store.spans_df()[['span_id', 'tool_name', 'error_message']]\nspans", []),
    ("alt.Chart(spans).mark_bar()"
     ".encode(x='tool_name:N', y='count():Q', tooltip=['error_message'])", []),
    ("Markdown(f\"first error: {spans['error_message'].dropna().iloc[0]}\")", []),
    ("HTML(f\"<b>tool</b>: {spans['tool_name'].dropna().iloc[0]}\")", []),
    ("print(spans['error_message'].dropna().iloc[0])", []),
]  # fmt: skip


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def _store(path: Path) -> Path:
    def span(**kw: object) -> dict[str, object]:
        times = {"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01Z"}
        return {"type": "span", "trace_id": "t1", "kind": "tool", "status": "ok", **times, **kw}

    lines = [
        span(span_id="root", kind="agent", name="run"),
        span(span_id="a", parent_id="root", tool_name=SCRIPT, status="error",
             error_type="ValueError", error_message=f"bad {IMG} and {SCRIPT}"),
        span(span_id="b", parent_id="root", tool_name=IMG),
    ]  # fmt: skip
    src = path.with_suffix(".jsonl")
    src.write_text("".join(json.dumps(x) + "\n" for x in lines), "utf-8")
    with fk.connect(path) as store:
        assert store.ingest(src).rows_loaded == len(lines)
    return path


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The hostile store's report, made by ``failkit report`` (the command line)."""
    tmp = tmp_path_factory.mktemp("report")
    db, nb, out = _store(tmp / "traces.duckdb"), _notebook(tmp / "r.ipynb"), tmp / "o" / "r.html"
    args = ["report", "--db", str(db), "--out", str(out), "--notebook", str(nb)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"report: {out}" in result.output
    return out.read_text("utf-8")


def test_report_is_self_contained_with_chart_data(report: str) -> None:
    parser = _Tags()
    parser.feed(report)
    srcs = [a.get("src") or a.get("href") for _, a in parser.tags if a.get("src") or a.get("href")]
    assert not [s for s in srcs if s and s.startswith(("http:", "https:", "//"))]
    specs_json = re.search(r'<script id="failkit-chart-specs"[^>]*>(.*?)</script>', report, re.S)
    assert specs_json is not None
    specs = json.loads(specs_json.group(1))
    assert len(specs) == 1 and report.count('class="failkit-chart"') == 1
    rows = next(iter(specs[0]["datasets"].values()))
    assert {r["tool_name"] for r in rows} >= {SCRIPT, IMG}
    bundle = report[report.rindex("<script>") : report.rindex("</script>")]
    assert len(bundle) > 100_000 and "el.dataset.chart" in bundle  # Vega inlined, drawn offline
    assert "DB = None" not in report  # code hidden by default


def test_hostile_trace_text_is_escaped_everywhere(report: str) -> None:
    assert SCRIPT not in report and IMG not in report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert "&lt;img src=x onerror=alert(1)&gt;" in report
    parser = _Tags()
    parser.feed(report)
    assert not [a for tag, a in parser.tags if tag == "img"]
    assert not [a for _, a in parser.tags if any(k.startswith("on") for k in a)]
    scripts = [a for tag, a in parser.tags if tag == "script"]
    assert scripts == [{"id": "failkit-chart-specs", "type": "application/json"}, {}]
    assert "&lt;style" not in report  # pandas' style element is removed, not shown


def test_sanitize_html_keeps_tables_and_escapes_the_rest() -> None:
    html = sanitize_html(
        f'<style>p {{}}</style><table class="x"><tr><th>a</th><td onclick="x()">{IMG}</td></tr>'
        "</table><style>x</style><script>y</script>"
    )
    assert html.startswith('<table class="x"><tbody><tr><th>a</th><td>&lt;img')
    assert html.endswith("&lt;script&gt;y&lt;/script&gt;")
    assert "&lt;img" in html and "onclick" not in html


def test_inject_parameters_after_the_tagged_cell_and_replaces_previous() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"),
                nbformat.v4.new_code_cell("DB = None", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = 1")]  # fmt: skip
    inject_parameters(nb, {"DB": Path("/tmp/a b'.duckdb"), "SEED": 3})
    inject_parameters(nb, {"DB": "/tmp/c.duckdb"})
    assert [INJECTED_TAG in c.metadata.get("tags", []) for c in nb.cells] == [0, 0, 1, 0]
    assert nb.cells[2].source.splitlines()[0] == "DB = '/tmp/c.duckdb'"
    with pytest.raises(fk.FailkitError, match="identifier"):
        inject_parameters(nb, {"not a name": 1})
    with pytest.raises(fk.FailkitError, match="identifier"):
        inject_parameters(nb, {"class": 1})
    with pytest.raises(fk.FailkitError, match="must be a str"):
        inject_parameters(nb, {"X": [1]})


def test_missing_database_or_notebook_and_failing_cell(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["report", "--db", str(tmp_path / "no.duckdb")])
    assert missing.exit_code == 2 and "no database" in missing.output
    db = _store(tmp_path / "t.duckdb")
    with pytest.raises(fk.FailkitError, match="no report notebook"):
        render_report(db, tmp_path / "r.html", notebook=tmp_path / "none.ipynb")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise KeyError('boom')")]
    nbformat.write(nb, tmp_path / "bad.ipynb")
    with pytest.raises(
        fk.FailkitError,
        match=r"the cell starting \"raise KeyError\('boom'\)\" failed: KeyError: 'boom'",
    ):
        render_report(db, tmp_path / "r.html", notebook=tmp_path / "bad.ipynb", progress=False)
    assert not (tmp_path / "r.html").exists()
