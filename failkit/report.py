"""Report notebooks run against a store and written as one self-contained HTML file.

:func:`render_report` executes a report notebook with its parameters overridden (a cell tagged
``injected-parameters`` goes right after the cell tagged ``parameters``, as papermill does),
then writes one HTML file that needs no network:

- Altair charts (static Vega-Lite specs in the outputs) are drawn by Vega, Vega-Lite and
  vega-embed inlined once in the file (the bundle of ``vl-convert-python``);
- trace text is untrusted: HTML and Markdown outputs are sanitized (tags outside a small
  allow-list, such as ``<script>`` or ``<img onerror=…>``, are escaped and show as text),
  JavaScript and widget outputs are dropped, and chart specs are embedded as JSON that cannot
  close its ``<script>`` element.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import sys
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import bleach
import nbformat
from tqdm.auto import tqdm

from failkit.errors import FailkitError
from failkit.widgets import STATIC_CHARTS_ENV

PathArg = str | PathLike[str]
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"

DEFAULT_NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_failure_report.ipynb"

_VEGALITE_PREFIX = "application/vnd.vegalite."
_DROPPED_PREFIXES = ("application/vnd.jupyter.widget", "application/javascript", "text/javascript")
_ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "div",
        "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre",
        "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
        "tr", "ul",
    }
)  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "*": ["class", "title"],
    "a": ["href", "title"],
    "td": ["colspan", "rowspan"],
    "th": ["colspan", "rowspan"],
}
_STYLE = re.compile(r"<style\b[^>]*>.*?</style\s*>", re.IGNORECASE | re.DOTALL)
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block body_footer %}</main>
{{ resources.failkit_scripts }}
</body>
{% endblock body_footer %}
"""
_BOOT = """
const specs = JSON.parse(document.getElementById("failkit-chart-specs").textContent);
document.querySelectorAll("div.failkit-chart").forEach((el) => {
  vegaEmbed(el, specs[Number(el.dataset.chart)], {actions: false, renderer: "svg"});
});
"""


def render_report(
    db_path: PathArg,
    out_html: PathArg,
    *,
    notebook: PathArg | None = None,
    parameters: Mapping[str, Any] | None = None,
    show_code: bool = False,
    timeout_s: float = 600.0,
    progress: bool = True,
) -> Path:
    """Execute a report notebook against a database and write one self-contained HTML file.

    Args:
        db_path: the failkit DuckDB file; the notebook gets it as ``DB`` (absolute path).
        out_html: where to write the HTML file (its folder is created).
        notebook: the report notebook (default: ``notebooks/02_failure_report.ipynb``). It
            should have a cell tagged ``parameters``; the overrides go right after it.
        parameters: more overrides, ``name -> value`` (str, int, float, bool or None).
        show_code: keep the code cells' input in the HTML.
        timeout_s: limit for one cell.
        progress: show a progress bar over the cells (on stderr).

    Returns:
        The path of the HTML file.

    Raises:
        FailkitError: no such database or notebook, a bad parameter, or a cell failed (the
            message names the cell and the error).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    db = Path(db_path).expanduser().resolve()
    if not db.is_file():
        raise FailkitError(f"no database at {db}: load traces first (failkit ingest ... --db {db})")
    nb_path = Path(notebook).expanduser() if notebook is not None else DEFAULT_NOTEBOOK
    if not nb_path.is_file():
        raise FailkitError(f"no report notebook at {nb_path}: pass --notebook <file.ipynb>")
    out = Path(out_html).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(nb_path, as_version=4)
    inject_parameters(nb, {"DB": str(db), **(parameters or {})})
    client = NotebookClient(
        nb,
        timeout=int(timeout_s),
        kernel_name="python3",
        store_widget_state=False,
        resources={"metadata": {"path": str(out.parent.resolve())}},
    )
    env = {**os.environ, STATIC_CHARTS_ENV: "1"}
    cells = tqdm(
        nb.cells, desc=f"report {nb_path.name}", unit="cell", disable=not progress, file=sys.stderr
    )
    with client.setup_kernel(env=env):
        for index, cell in enumerate(cells):
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as exc:
                errors = [o for o in cell.outputs if o.get("output_type") == "error"]
                err: dict[str, Any] = errors[0] if errors else {}
                first_line = next(iter(cell.source.splitlines()), "")[:60]
                raise FailkitError(
                    f"{nb_path.name}: the cell starting {first_line!r} failed: "
                    f"{err.get('ename', 'error')}: {err.get('evalue', exc)}"
                ) from None
    out.write_text(to_html(nb, show_code=show_code), encoding="utf-8")
    return out


def inject_parameters(nb: nbformat.NotebookNode, parameters: Mapping[str, Any]) -> None:
    """Insert a cell tagged ``injected-parameters`` after the ``parameters`` cell (or first).

    Each parameter becomes ``NAME = <repr(value)>``; a previous injected cell is replaced.
    The cell also makes Altair charts static specs (the HTML export draws them).

    Raises:
        FailkitError: a name that is not an identifier, or a value of another type.
    """
    lines = []
    for name, value in parameters.items():
        if not name.isidentifier() or keyword.iskeyword(name):
            raise FailkitError(f"parameter name {name!r} is not a Python identifier")
        if isinstance(value, PathLike):
            value = os.fspath(value)
        if value is not None and not isinstance(value, str | int | float | bool):
            raise FailkitError(
                f"parameter {name} must be a str, int, float, bool or None, "
                f"got {type(value).__name__}"
            )
        lines.append(f"{name} = {value!r}")
    lines += ["import failkit", "failkit.enable_offline_charts()"]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [INJECTED_TAG]})
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.metadata.get("tags", [])]
    at = next(
        (i + 1 for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.metadata.get("tags", [])), 0
    )
    nb.cells.insert(at, cell)


def to_html(nb: nbformat.NotebookNode, *, show_code: bool = False) -> str:
    """An executed notebook as one HTML page: outputs sanitized, charts drawn offline.

    Args:
        nb: the executed notebook (its outputs are rewritten in place).
        show_code: keep the code cells' input.
    """
    import jinja2
    from nbconvert import HTMLExporter

    specs = _sanitize_outputs(nb)
    nb.metadata.pop("widgets", None)
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"failkit_report.html.j2": _TEMPLATE})],
        template_file="failkit_report.html.j2",
        exclude_input=not show_code,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    scripts = ""
    if specs:
        scripts = (
            f'<script id="failkit-chart-specs" type="application/json">{_json_for_html(specs)}'
            f"</script>\n<script>{_vega_bundle()}</script>"
        )
    title = nb.metadata.get("title") or "failkit report"
    body, _ = exporter.from_notebook_node(
        nb, resources={"failkit_scripts": scripts, "metadata": {"name": title}}
    )
    return body


def _sanitize_outputs(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    """Rewrite outputs for a static page; return the chart specs, in order of the placeholders."""
    from nbconvert.filters import markdown2html

    specs: list[dict[str, Any]] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data is None:
                continue
            vega = next((k for k in data if k.startswith(_VEGALITE_PREFIX)), None)
            if vega is not None:
                spec = data[vega]
                specs.append(json.loads(spec) if isinstance(spec, str) else dict(spec))
                placeholder = f'<div class="failkit-chart" data-chart="{len(specs) - 1}"></div>'
                output["data"] = nbformat.from_dict({"text/html": placeholder})
                continue
            for key in [k for k in data if k.startswith(_DROPPED_PREFIXES)]:
                del data[key]
            if "text/markdown" in data:
                data["text/html"] = sanitize_html(markdown2html(_text(data.pop("text/markdown"))))
            elif "text/html" in data:
                data["text/html"] = sanitize_html(_text(data["text/html"]))
    return specs


def sanitize_html(fragment: str) -> str:
    """HTML with tags and attributes outside a table-friendly allow-list escaped (shown as text).

    ``<style>`` elements (pandas puts one before its tables) are removed first.
    """
    without_style = _STYLE.sub("", fragment)
    return bleach.clean(without_style, tags=_ALLOWED_TAGS, attributes=_ALLOWED_ATTRIBUTES)


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def _json_for_html(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` as unicode escapes."""
    text = json.dumps(value, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed with the code that draws the placeholders (no network)."""
    import vl_convert as vlc
    from altair.utils._importers import vl_version_for_vl_convert

    bundle = vlc.javascript_bundle(_BOOT, vl_version=vl_version_for_vl_convert())
    return bundle.replace("</script", "<\\/script")
