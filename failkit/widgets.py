"""The what-if explorer: ipywidgets controls over the design levers, wired to live Altair charts.

The only module that imports ipywidgets. The compute is :mod:`failkit.whatif` and the charts are
:mod:`failkit.charts`; this module wires them: a control per stage and lever, and on every
change the current design is re-simulated (exact method, no posterior draws, ``interactive``:
the SLO lattice in single precision, reusing the work on stages that did not change) and the
charts are redrawn. Charts render through ``altair.JupyterChart`` in offline mode (the Vega
JavaScript comes from ``vl-convert-python``, no CDN), so the explorer works on a machine without
network.

Example:
    >>> import failkit as fk
    >>> d = fk.Design(stages=[fk.Stage(name=f"s{i}", p_success=0.95) for i in range(4)])
    >>> ex = fk.explore(d)
    >>> ex.update(s1__max_attempts=3)
    >>> ex.current_design.stage("s1").max_attempts
    3
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Iterable
from typing import Any

import altair as alt
import ipywidgets as W
import pandas as pd

from failkit import charts, whatif
from failkit.design import Design
from failkit.errors import FailkitError
from failkit.simulate import SLO, simulate
from failkit.store import TraceStore
from failkit.whatif import LeverValue

STATIC_CHARTS_ENV = "FAILKIT_STATIC_CHARTS"
"""Set to ``1`` (a report run does) for :func:`enable_offline_charts` to emit static specs only."""

SEP = "__"
"""Separator of stage and lever in control names: ``"tool_execution__max_attempts"``."""

BASE, CURRENT = "base", "current"
VEGALITE_MIME = f"application/vnd.vegalite.v{alt.SCHEMA_VERSION.lstrip('v').split('.')[0]}+json"
"""The MIME type of a static Vega-Lite spec in a display bundle (what the HTML report draws).

A ``+json`` type, so that nbformat stores the spec as JSON (Altair 6's own ``….v6.json`` type
fails notebook validation when the spec is a dict)."""

_PANEL = {"width": 300, "height": 190}
_PCT = "{:.1%}".format


def enable_offline_charts() -> None:
    """Draw Altair charts offline in JupyterLab, and keep their specs for reports.

    Enables an Altair renderer (``"failkit"``) whose output is an offline ``JupyterChart``
    widget (Vega bundled by ``vl-convert-python``: no CDN) plus the static Vega-Lite spec, which
    :func:`failkit.report.render_report` draws in the HTML file. In a report run (environment
    variable ``FAILKIT_STATIC_CHARTS=1``) only the static spec is emitted.
    """
    if not _static():
        alt.JupyterChart.enable_offline()
    if "failkit" not in alt.renderers.names():
        alt.renderers.register("failkit", _render)
    alt.renderers.enable("failkit")


def _static() -> bool:
    return os.environ.get(STATIC_CHARTS_ENV) == "1"


def _render(spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    bundle: dict[str, Any] = {}
    if not _static():
        chart = alt.Chart.from_dict(spec)
        widget = alt.JupyterChart(chart, embed_options=metadata.get("embed_options"))
        bundle.update(_bundle(widget._repr_mimebundle_()))
    bundle.update({"text/plain": "<Altair chart>", VEGALITE_MIME: spec})
    return bundle


def _bundle(
    result: dict[str, Any] | tuple[dict[str, Any], dict[str, Any]] | None,
) -> dict[str, Any]:
    """The data part of a ``_repr_mimebundle_`` result (widgets return a dict, a pair or None)."""
    if isinstance(result, tuple):
        return dict(result[0])
    return dict(result or {})


class Explorer:
    """Sliders and toggles over a design's levers, with charts of the result that update live.

    Attributes:
        base_design: the design the levers start from.
        current_design: the base with the controls' settings applied.
        alternatives: designs kept with :meth:`keep`, by name.
        controls: control name (``"<stage>__<lever>"``) → widget.
        frames: the frames behind the charts (``sim``, ``waterfall``, ``metrics``).
        last_update_s: wall time of the last update (simulate, charts, spec sent).
        widget: the ipywidgets container to display.
        interactive: whether updates simulate with ``interactive=True`` (see :func:`explore`).
    """

    def __init__(
        self,
        base: Design,
        *,
        slo: SLO | None = None,
        ks: Iterable[int] = range(1, 9),
        interactive: bool = True,
    ):
        enable_offline_charts()
        self.slo = slo or SLO()
        self.interactive = interactive
        self._ks = sorted({int(k) for k in ks})
        self.base_design = base.with_name(BASE)
        self.current_design = self.base_design
        self.alternatives: dict[str, Design] = {}
        self._sims: dict[str, pd.DataFrame] = {BASE: self._simulate(self.base_design)}
        self._waterfalls = {BASE: whatif.waterfall(self.base_design)}
        self._holding = False
        self.last_update_s = 0.0
        self.frames: dict[str, pd.DataFrame] = {}
        self.controls = self._make_controls()
        self._summary = W.HTML()
        self._status = W.Label()
        # No chart: _refresh sets the spec directly (building Altair charts is too slow per change).
        self._chart = alt.JupyterChart(
            None,  # type: ignore[arg-type]  # the trait allows None
            embed_options={"actions": False, "renderer": "svg"},
        )
        self._skeleton: dict[str, Any] | None = None
        self.widget = self._layout(base.name)
        self._refresh()

    # -- public -----------------------------------------------------------------------------
    def update(self, **params: LeverValue) -> None:
        """Set controls by name (``tool_execution__max_attempts=3``) and redraw once.

        Raises:
            FailkitError: an unknown control name (the message lists them).
        """
        unknown = sorted(set(params) - set(self.controls))
        if unknown:
            raise FailkitError(
                f"unknown control(s) {', '.join(unknown)}; controls: {', '.join(self.controls)}"
            )
        self._holding = True
        try:
            for name, value in params.items():
                self.controls[name].value = value
        finally:
            self._holding = False
        self._refresh()

    def settings(self) -> dict[str, LeverValue]:
        """The controls' values by control name."""
        return {name: w.value for name, w in self.controls.items()}

    def reset(self) -> None:
        """Put every control back to the base design's setting."""
        self.update(**whatif.flatten(whatif.settings_of(self.base_design), sep=SEP))

    def keep(self, name: str | None = None) -> str:
        """Keep the current design as an alternative drawn next to base and current.

        Returns:
            Its name (the first free ``"alt <n>"`` unless given).

        Raises:
            FailkitError: the name is taken.
        """
        if name is None:
            n = len(self.alternatives) + 1
            while f"alt {n}" in self.alternatives:
                n += 1
            name = f"alt {n}"
        if name in (BASE, CURRENT) or name in self.alternatives:
            raise FailkitError(f"a design is already called {name!r}: pick another name")
        design = self.current_design.with_name(name)
        self.alternatives[name] = design
        self._sims[name] = self._simulate(design)
        self._skeleton = None  # another design: colours and axes change
        self._refresh()
        return name

    def chart_specs(self) -> dict[str, dict[str, Any]]:
        """The Vega-Lite spec of each chart: ``waterfall``, ``tradeoff``, ``pass_k``, ``slo``."""
        return {name: chart.to_dict() for name, chart in self._charts().items()}

    @property
    def spec(self) -> dict[str, Any]:
        """The spec the chart widget shows now (the four charts in one view)."""
        return dict(self._chart.spec or {})

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = _bundle(self.widget._repr_mimebundle_(**kwargs))
        bundle["text/plain"] = repr(self)
        bundle[VEGALITE_MIME] = self.spec
        return bundle

    def __repr__(self) -> str:
        return (
            f"Explorer(stages={self.base_design.stage_names}, "
            f"alternatives={list(self.alternatives)})"
        )

    # -- wiring ----------------------------------------------------------------------------------
    def _simulate(self, design: Design) -> pd.DataFrame:
        return simulate(
            design,
            method="exact",
            ci_draws=0,
            slo=self.slo,
            ks=self._ks,
            interactive=self.interactive,
        )

    def _make_controls(self) -> dict[str, W.ValueWidget]:
        controls: dict[str, W.ValueWidget] = {}
        style = {"description_width": "190px"}
        layout = W.Layout(width="360px")
        settings = whatif.settings_of(self.base_design)
        for stage in self.base_design.stages:
            for lever in whatif.stage_levers(stage):
                value = settings[stage.name][lever.name]
                common = {"description": lever.label, "style": style, "layout": layout}
                widget: W.ValueWidget
                if lever.kind == "bool":
                    widget = W.Checkbox(value=bool(value), indent=False, **common)
                elif lever.kind == "int":
                    high = max(int(lever.high), 2 * int(value))
                    widget = W.IntSlider(
                        value=int(value), min=int(lever.low), max=high, step=int(lever.step),
                        continuous_update=False, **common,
                    )  # fmt: skip
                else:
                    widget = W.FloatSlider(
                        value=float(value), min=lever.low, max=max(lever.high, float(value)),
                        step=lever.step, readout_format=".2f", continuous_update=False, **common,
                    )  # fmt: skip
                widget.observe(self._on_change, names="value")
                controls[f"{stage.name}{SEP}{lever.name}"] = widget
        return controls

    def _layout(self, title: str) -> W.Widget:
        pages = [
            W.VBox([self.controls[f"{s.name}{SEP}{lv.name}"] for lv in whatif.stage_levers(s)])
            for s in self.base_design.stages
        ]
        stages = W.Accordion(
            children=pages,
            titles=tuple(self.base_design.stage_names),
            selected_index=0,
            layout=W.Layout(width="390px"),
        )
        keep = W.Button(description="keep as alternative", icon="bookmark")
        reset = W.Button(description="reset to base", icon="undo")
        for button in (keep, reset):
            button.layout.width = "auto"
        keep.on_click(lambda _: self.keep())
        reset.on_click(lambda _: self.reset())
        side = W.VBox(
            [self._summary, W.HBox([keep, reset]), self._status],
            layout=W.Layout(flex="1 1 420px", margin="0 0 0 16px"),
        )
        head = W.HTML(f"<b>What-if explorer</b> &middot; base design: {html.escape(title)}")
        top = W.HBox([stages, side], layout=W.Layout(flex_flow="row wrap"))
        return W.VBox([head, top, self._chart])

    def _on_change(self, _change: dict[str, Any]) -> None:
        if not self._holding:
            self._refresh()

    def _refresh(self) -> None:
        t0 = time.perf_counter()
        settings = whatif.unflatten(self.settings(), sep=SEP)
        for name, widget in self.controls.items():
            if name.endswith(f"{SEP}catch_rate"):
                checkpoint = self.controls[name.removesuffix("catch_rate") + "checkpoint"]
                widget.disabled = not checkpoint.value
        changed = whatif.apply_levers(self.base_design, settings)
        current = changed.with_name(CURRENT)
        if current != self.current_design:  # unchanged (a disabled control, keep): reuse frames
            self.current_design = current
            self._sims[CURRENT] = self._simulate(current)
            self._waterfalls[CURRENT] = whatif.waterfall(current)
        designs = [self.base_design, self.current_design, *self.alternatives.values()]
        sim = pd.concat([self._sims[d.name] for d in designs], ignore_index=True)
        self.frames = {
            "sim": sim,
            "waterfall": pd.concat(self._waterfalls.values(), ignore_index=True),
            "metrics": whatif.metrics(sim),
        }
        data = {name: _records(df) for name, df in self._chart_data().items()}
        if self._skeleton is None:
            self._skeleton = self._build_skeleton(data)
        self._chart.spec = {**self._skeleton, "datasets": {**self._skeleton["datasets"], **data}}
        self._summary.value = self._summary_html(changed.name)
        self.last_update_s = time.perf_counter() - t0
        self._status.value = f"updated in {self.last_update_s * 1000:.0f} ms"

    def _charts(self) -> dict[str, alt.TopLevelMixin]:
        """The four charts of the current frames (what :func:`failkit.charts` draws)."""
        sim = self.frames["sim"]
        return {
            "waterfall": charts.chart_waterfall(self.frames["waterfall"]),
            "tradeoff": charts.chart_tradeoff(sim),
            "pass_k": charts.chart_pass_k(sim),
            "slo": charts.chart_slo(sim, slo=self.slo),
        }

    def _chart_data(self) -> dict[str, pd.DataFrame]:
        """The frame each chart of :meth:`_charts` draws (its main dataset)."""
        sim = self.frames["sim"]
        return {
            "waterfall": self.frames["waterfall"][whatif.WATERFALL_COLUMNS],
            "tradeoff": self.frames["metrics"],
            "pass_k": whatif.pass_k(sim),
            "slo": whatif.slo_attainment(sim, self.slo),
        }

    def _build_skeleton(self, data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """The four charts as one spec whose main datasets are named after the charts.

        Building Altair charts takes a few hundred ms; a lever change keeps the designs and
        stages, hence the encodings and scales, so updates only swap these datasets in.
        """
        panels: list[dict[str, Any]] = []
        datasets: dict[str, Any] = {}
        top: dict[str, Any] = {}
        for name, chart in self._charts().items():
            spec = chart.to_dict()
            own = spec.pop("datasets")
            main = next((k for k, v in own.items() if v == data[name]), None)
            if main is None:
                raise FailkitError(f"chart {name!r} does not draw the frame the explorer updates")
            own[name] = own.pop(main)
            datasets.update(own)
            top = {k: spec.pop(k) for k in ("$schema", "config") if k in spec}
            panels.append({**_rename_data(spec, main, name), **_PANEL})
        return {
            **top,
            "vconcat": [{"hconcat": panels[:2]}, {"hconcat": panels[2:]}],
            "datasets": datasets,
        }

    def _summary_html(self, changes: str) -> str:
        m = self.frames["metrics"]
        columns = {
            "success": ("success_rate", _PCT),
            "no human": ("autonomous_success_rate", _PCT),
            "human touch": ("human_touch_rate", _PCT),
            "duplicates": ("duplicate_action_rate", "{:.2%}".format),
            "mean cost": ("cost_usd_mean", "${:.4f}".format),
            "p95 latency": ("latency_s_p95", "{:.1f} s".format),
            "SLO met": ("slo_attainment", _PCT),
        }
        head = "".join(f"<th>{html.escape(c)}</th>" for c in ["design", *columns])
        rows = []
        for i, design in enumerate(m["design"].tolist()):
            cells = [f"<td>{fmt(float(m[col].iloc[i]))}</td>" for col, fmt in columns.values()]
            rows.append(f"<tr><th>{html.escape(design)}</th>{''.join(cells)}</tr>")
        lever_text = changes.removeprefix(self.base_design.name).removeprefix(" + ")
        return (
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<div>changes: {html.escape(lever_text or 'none')}</div>"
            f"<div>SLO: {html.escape(whatif.describe(self.slo))}</div>"
        )


def explore(
    source: Design | TraceStore,
    *,
    slo: SLO | None = None,
    ks: Iterable[int] = range(1, 9),
    interactive: bool = True,
) -> Explorer:
    """An interactive what-if explorer over a design (or the design estimated from a store).

    Args:
        source: a :class:`~failkit.design.Design`, or a :class:`~failkit.store.TraceStore`
            whose design ``Design.from_store`` estimates.
        slo: the SLO whose attainment is charted (default ``SLO()``).
        ks: the k of the pass^k curve.
        interactive: simulate with ``interactive=True``: SLO attainment within 1e-5 of
            :func:`~failkit.simulate.simulate`'s default (every other metric identical), in a
            fraction of the time; ``False``: the default method on every update (slower).

    Returns:
        An :class:`Explorer`; display it (last expression of a cell) to get the controls.

    Raises:
        FailkitError: ``source`` is neither (or the store holds no runs to estimate from).
    """
    if isinstance(source, TraceStore):
        source = Design.from_store(source)
    if isinstance(source, Design):
        return Explorer(source, slo=slo, ks=ks, interactive=interactive)
    raise FailkitError(f"explore() takes a Design or a TraceStore, got {type(source).__name__}")


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as the JSON records Altair embeds (NaN as null), without Altair's overhead."""
    columns = list(map(str, df.columns))
    values = [df[c].tolist() for c in df.columns]
    return [
        {
            c: None if isinstance(v, float) and v != v else v
            for c, v in zip(columns, row, strict=True)
        }
        for row in zip(*values, strict=True)
    ]


def _rename_data(node: Any, old: str, new: str) -> Any:
    """A copy of a spec with every ``{"data": {"name": old}}`` pointing to ``new``."""
    if isinstance(node, dict):
        return {
            k: {"name": new} if k == "data" and v == {"name": old} else _rename_data(v, old, new)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rename_data(v, old, new) for v in node]
    return node
