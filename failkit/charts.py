"""Altair charts of failkit's frames: pure functions that return a chart spec, never display it.

Each ``chart_*`` takes the frame an analysis function returned, aggregates or trims it to
what is drawn, and returns an Altair chart; ``chart.to_dict()`` is the test surface.
"""

from __future__ import annotations

from typing import Literal, get_args

import altair as alt
import pandas as pd

from failkit import whatif
from failkit.errors import FailkitError
from failkit.simulate import SLO
from failkit.stages import STAGES

STAGE_COLORS: dict[str, str] = {
    "planning": "#4c78a8",
    "tool_selection": "#f58518",
    "parameter_extraction": "#e45756",
    "tool_execution": "#72b7b2",
    "retrieval": "#54a24b",
    "response_synthesis": "#b279a2",
    "handoff": "#eeca3b",
    "human": "#ff9da6",
    "other": "#bab0ac",
}
"""One fixed colour per stage, so that charts of different runs agree."""

_FAILED = "#d62728"


def chart_chain(steps_df: pd.DataFrame, trace_id: str | None = None) -> alt.Chart:
    """Timeline of one run: a bar per step from its start to its end, coloured by stage.

    Failed steps get a red outline, the first failure a thick one, steps after it are faded.

    Args:
        steps_df: :func:`failkit.steps` (or :attr:`failkit.Chain.steps`).
        trace_id: the run to draw; may be omitted when the frame holds one run.

    Raises:
        FailkitError: several runs and no ``trace_id``, or no run with that id.
    """
    runs = steps_df["trace_id"].unique()
    if trace_id is None:
        if len(runs) > 1:
            raise FailkitError(
                f"the frame holds {len(runs)} runs: pass trace_id= (e.g. {runs[0]!r})"
            )
        trace_id = runs[0] if len(runs) else None
    st = steps_df.loc[steps_df["trace_id"] == trace_id]
    if trace_id is not None and st.empty:
        raise FailkitError(f"no run with trace_id {trace_id!r} in the frame")
    t0 = st["start_time"].min()
    start_s = (st["start_time"] - t0).dt.total_seconds()
    what = st["tool_name"].where(st["tool_name"].notna(), st["name"]).fillna("")
    data = pd.DataFrame(
        {
            "step": st["step"].astype("int64"),
            "label": st["step"].astype(str).str.zfill(3) + " " + st["kind"] + " " + what,
            "stage": st["stage"],
            "start_s": start_s,
            "end_s": start_s + st["duration_s"].fillna(0),
            "duration_s": st["duration_s"],
            "status": st["status"],
            "error": (st["error_type"].fillna("") + " " + st["error_message"].fillna(""))
            .str.strip()
            .str.slice(0, 200),
            "attempt": st["attempt"].astype("int64"),
            "failed": st["status"].eq("error"),
            "first_failure": st["is_first_failure"].astype(bool),
            "after_failure": st["after_failure"].astype(bool),
        }
    ).reset_index(drop=True)
    return (
        alt.Chart(data, title=f"run {trace_id}" if trace_id else "run")
        .mark_bar(height={"band": 0.8})
        .encode(
            x=alt.X("start_s:Q", title="seconds since the run started"),
            x2="end_s:Q",
            y=alt.Y("label:N", sort=alt.SortField("step"), title=None),
            color=alt.Color(
                "stage:N",
                scale=alt.Scale(domain=list(STAGES), range=[STAGE_COLORS[s] for s in STAGES]),
            ),
            stroke=alt.condition("datum.failed", alt.value(_FAILED), alt.value(None)),
            strokeWidth=alt.condition("datum.first_failure", alt.value(3), alt.value(1)),
            opacity=alt.condition("datum.after_failure", alt.value(0.45), alt.value(1.0)),
            tooltip=["step", "label", "stage", "status", "error", "attempt", "duration_s"],
        )
    )


# -- what-if: designs compared ------------------------------------------------------------------
DESIGN_COLORS: tuple[str, ...] = (
    "#8c8c8c", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#d62728",
)  # fmt: skip
"""Design colours in order of appearance: the first design (the base) grey, the next blue."""


_MAX_POINT_LABELS = 4


def _design_color(designs: list[str]) -> alt.Color:
    palette = [DESIGN_COLORS[i % len(DESIGN_COLORS)] for i in range(len(designs))]
    return alt.Color(
        "design:N", scale=alt.Scale(domain=designs, range=palette), legend=alt.Legend(title=None)
    )


def chart_waterfall(waterfall_df: pd.DataFrame) -> alt.LayerChart:
    """How success compounds: runs still on track after each stage, then end to end.

    Each stage is a floating bar from the share on track before it to the share after it; the
    last bar is the end-to-end success. Several designs stand side by side (then only the
    end-to-end bars carry a label).

    Args:
        waterfall_df: :func:`failkit.whatif.waterfall`.
    """
    designs = list(dict.fromkeys(waterfall_df["design"]))
    data = waterfall_df[whatif.WATERFALL_COLUMNS].reset_index(drop=True)
    base = alt.Chart(data).encode(
        x=alt.X(
            "label:N",
            sort=alt.SortField("step"),
            title=None,
            axis=alt.Axis(labelAngle=-30, labelLimit=160),
        ),
        xOffset=alt.XOffset("design:N", sort=designs),
    )
    bars = base.mark_bar().encode(
        y=alt.Y(
            "end:Q",
            title="runs still on track",
            axis=alt.Axis(format="%"),
            scale=alt.Scale(domain=[0, 1]),
        ),
        y2="start:Q",
        color=_design_color(designs),
        tooltip=[
            "design:N",
            "stage:N",
            alt.Tooltip("stage_success:Q", format=".2%", title="stage success"),
            alt.Tooltip("end:Q", format=".2%", title="on track after"),
            alt.Tooltip("loss:Q", format=".2%", title="lost here"),
        ],
    )
    text = base.mark_text(baseline="top", dy=3, fontSize=9).encode(
        y="end:Q", text=alt.Text("end:Q", format=".1%")
    )
    if len(designs) > 1:  # side by side, stage labels would collide: label the totals only
        text = text.transform_filter("datum.kind == 'end_to_end'")
    return alt.LayerChart(layer=[bars, text], title="How success compounds, stage by stage")


def chart_tradeoff(sim: pd.DataFrame) -> alt.LayerChart:
    """Success against cost and latency of each design: where each design sits.

    x is the mean cost of a run, y the end-to-end success rate, the point's size its p95
    latency; the tooltip carries the other metrics. Up to four designs are labelled by name.

    Args:
        sim: what :func:`failkit.simulate` returned.
    """
    data = whatif.metrics(sim)
    designs = list(data["design"])
    base = alt.Chart(data).encode(
        x=alt.X("cost_usd_mean:Q", title="mean cost per run (USD)", scale=alt.Scale(zero=False)),
        y=alt.Y("success_rate:Q", title="end-to-end success", axis=alt.Axis(format="%")),
    )
    points = base.mark_point(filled=True, opacity=0.85).encode(
        color=_design_color(designs),
        size=alt.Size("latency_s_p95:Q", title="p95 latency (s)", scale=alt.Scale(range=[60, 600])),
        tooltip=[
            "design:N",
            alt.Tooltip("success_rate:Q", format=".2%", title="success"),
            alt.Tooltip("autonomous_success_rate:Q", format=".2%", title="success, no human"),
            alt.Tooltip("human_touch_rate:Q", format=".2%", title="human touched"),
            alt.Tooltip("duplicate_action_rate:Q", format=".3%", title="duplicate actions"),
            alt.Tooltip("cost_usd_mean:Q", format="$.4f", title="mean cost"),
            alt.Tooltip("latency_s_mean:Q", format=".2f", title="mean latency (s)"),
            alt.Tooltip("latency_s_p95:Q", format=".2f", title="p95 latency (s)"),
            alt.Tooltip("slo_attainment:Q", format=".2%", title="SLO attainment"),
        ],
    )
    layers: list[alt.Chart] = [points]
    if len(designs) <= _MAX_POINT_LABELS:  # more names would pile up: the legend tells them
        layers.append(base.mark_text(align="left", dx=9, fontSize=10).encode(text="design:N"))
    return alt.LayerChart(layer=layers, title="Success vs cost (size: p95 latency)")


def chart_pass_k(df: pd.DataFrame) -> alt.Chart:
    """pass^k: the chance that all of k runs of a task succeed, per design.

    Args:
        df: what :func:`failkit.simulate` returned, or :func:`failkit.pass_hat_k` (drawn as
            the design ``observed``), or :func:`failkit.whatif.pass_k`.
    """
    data = whatif.pass_k(df)
    designs = list(dict.fromkeys(data["design"]))
    return (
        alt.Chart(data, title="pass^k: all k tries succeed")
        .mark_line(point=True)
        .encode(
            x=alt.X("k:Q", title="k (tries of the same task)", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("pass_hat_k:Q", title="pass^k", axis=alt.Axis(format="%")),
            color=_design_color(designs),
            tooltip=["design:N", "k:Q", alt.Tooltip("pass_hat_k:Q", format=".2%")],
        )
    )


def chart_slo(sim: pd.DataFrame, *, slo: SLO | None = None) -> alt.LayerChart:
    """Share of runs meeting the SLO per design, against the SLO's target (the rule).

    Args:
        sim: what :func:`failkit.simulate` returned, run with ``slo``.
        slo: the SLO (default ``SLO()``): its target and the title.
    """
    slo = slo or SLO()
    data = whatif.slo_attainment(sim, slo)
    designs = list(data["design"])
    base = alt.Chart(data).encode(
        x=alt.X("design:N", sort=designs, title=None, axis=alt.Axis(labelAngle=-30)),
    )
    y = alt.Y(
        "slo_attainment:Q",
        title="runs meeting the SLO",
        axis=alt.Axis(format="%"),
        scale=alt.Scale(domain=[0, 1]),
    )
    bars = base.mark_bar().encode(
        y=y,
        color=_design_color(designs),
        tooltip=[
            "design:N",
            alt.Tooltip("slo_attainment:Q", format=".2%", title="SLO attainment"),
            alt.Tooltip("target:Q", format=".0%"),
            "meets_target:N",
        ],
    )
    text = base.mark_text(baseline="bottom", dy=-2, fontSize=10).encode(
        y="slo_attainment:Q", text=alt.Text("slo_attainment:Q", format=".1%")
    )
    target = (
        alt.Chart(pd.DataFrame({"target": [slo.target]}))
        .mark_rule(strokeDash=[4, 3], color="#d62728")
        .encode(y="target:Q")
    )
    return alt.LayerChart(layer=[bars, text, target], title=f"SLO: {whatif.describe(slo)}")


ParetoMeasure = Literal["n_failed_runs", "n_runs", "n_events", "wasted_cost_usd", "wasted_seconds"]
"""Columns of :func:`failkit.failure_mode_summary` a Pareto chart can rank modes by."""
PARETO_MEASURES: tuple[str, ...] = get_args(ParetoMeasure)
ModeBreakdown = Literal["stage", "tool_name", "model"]
"""Columns of :func:`failkit.failure_modes` a heatmap can break modes down by."""


def _named(frame: pd.DataFrame) -> pd.Series:
    """A unique display name per mode: its label, plus its id when labels collide."""
    per_mode = frame.drop_duplicates("mode_id").set_index("mode_id")["mode_label"].astype(str)
    clash = per_mode.duplicated(keep=False)
    names = per_mode.where(~clash, per_mode + " [" + per_mode.index.str[:6] + "]")
    return frame["mode_id"].map(names)


def chart_mode_pareto(
    summary: pd.DataFrame, *, by: ParetoMeasure = "n_failed_runs", top: int = 15
) -> alt.LayerChart:
    """Pareto chart of failure modes: a bar per mode, largest first, and the cumulative share.

    Modes run down the y axis (their labels are long); the bars' scale is at the bottom, the
    cumulative share's at the top.

    Args:
        summary: :func:`failkit.failure_mode_summary`.
        by: the measure ranked, one of :data:`PARETO_MEASURES`.
        top: modes drawn (the cumulative share is of all modes).

    Raises:
        FailkitError: an unknown ``by``.
    """
    if by not in PARETO_MEASURES:
        raise FailkitError(f"by must be one of {', '.join(PARETO_MEASURES)}; got {by!r}")
    ranked = summary.sort_values([by, "mode_id"], ascending=[False, True], kind="stable")
    total = float(ranked[by].sum())
    data = pd.DataFrame(
        {
            "mode": _named(ranked),
            "mode_id": ranked["mode_id"],
            "main_stage": ranked["main_stage"],
            "value": ranked[by].astype("float64"),
            "cumulative_share": ranked[by].cumsum() / total if total else 0.0,
        }
    ).head(top)
    base = alt.Chart(data, title=f"failure modes by {by}").encode(
        y=alt.Y("mode:N", sort=data["mode"].tolist(), title=None, axis=alt.Axis(labelLimit=360)),
        tooltip=[
            "mode",
            "mode_id",
            "main_stage",
            "value",
            alt.Tooltip("cumulative_share", format=".1%"),
        ],
    )
    bars = base.mark_bar().encode(
        x=alt.X("value:Q", title=by),
        color=alt.Color(
            "main_stage:N",
            scale=alt.Scale(domain=list(STAGES), range=[STAGE_COLORS[s] for s in STAGES]),
        ),
    )
    line = base.mark_line(point=True, color="#333333").encode(
        x=alt.X(
            "cumulative_share:Q",
            title="cumulative share",
            axis=alt.Axis(format="%", orient="top"),
            scale=alt.Scale(domain=[0, 1]),
        ),
        order="cumulative_share:Q",
    )
    return alt.layer(bars, line).resolve_scale(x="independent")


def _top_modes(modes_df: pd.DataFrame, top: int) -> pd.DataFrame:
    """The events of the ``top`` modes with the most events, with a display name ``mode``."""
    counts = modes_df.groupby("mode_id").size().rename("n").reset_index()
    keep = counts.sort_values(["n", "mode_id"], ascending=[False, True])["mode_id"].head(top)
    events = modes_df.loc[modes_df["mode_id"].isin(keep)]
    return events.assign(mode=_named(events))


def chart_mode_heatmap(
    modes_df: pd.DataFrame, *, by: ModeBreakdown = "stage", top: int = 15
) -> alt.Chart:
    """Events per failure mode and stage (or tool, or model): where each kind of failure hits.

    Args:
        modes_df: :func:`failkit.failure_modes`.
        by: the breakdown column: ``stage``, ``tool_name`` or ``model``.
        top: modes drawn (those with the most events).

    Raises:
        FailkitError: an unknown ``by``.
    """
    if by not in get_args(ModeBreakdown):
        raise FailkitError(f"by must be one of {', '.join(get_args(ModeBreakdown))}; got {by!r}")
    events = _top_modes(modes_df, top)
    data = (
        events.assign(**{by: events[by].fillna("(none)")})
        .groupby(["mode", by], sort=True)
        .size()
        .rename("n_events")
        .reset_index()
    )
    order = data.groupby("mode")["n_events"].sum().sort_values(ascending=False).index.tolist()
    return (
        alt.Chart(data, title=f"failure modes by {by}")
        .mark_rect()
        .encode(
            x=alt.X(f"{by}:N", title=by),
            y=alt.Y("mode:N", sort=order, title=None, axis=alt.Axis(labelLimit=320)),
            color=alt.Color("n_events:Q", scale=alt.Scale(scheme="reds")),
            tooltip=["mode", by, "n_events"],
        )
    )


_TREND_FREQS = ("1min", "5min", "15min", "1h", "6h", "1D", "7D", "30D")
_TREND_MAX_BINS = 60


def chart_mode_trend(modes_df: pd.DataFrame, *, freq: str | None = None, top: int = 8) -> alt.Chart:
    """Events per failure mode over time, one line per mode.

    Args:
        modes_df: :func:`failkit.failure_modes`.
        freq: pandas frequency of the time bins; by default the finest of 1 min, 5 min,
            15 min, 1 h, 6 h, 1 day, 7 days, 30 days giving at most 60 bins.
        top: modes drawn (those with the most events).
    """
    events = _top_modes(modes_df.dropna(subset=["start_time"]), top)
    if freq is None:
        span = events["start_time"].max() - events["start_time"].min() if len(events) else None
        freq = next(
            (f for f in _TREND_FREQS if span is None or span / pd.Timedelta(f) <= _TREND_MAX_BINS),
            _TREND_FREQS[-1],
        )
    counts = (
        events.assign(time=events["start_time"].dt.floor(freq))
        .groupby(["mode", "time"], sort=True)
        .size()
    )
    if len(counts):  # bins without events are drawn as 0
        times = counts.index.get_level_values("time")
        grid = pd.MultiIndex.from_product(
            [counts.index.get_level_values("mode").unique(),
             pd.date_range(times.min(), times.max(), freq=freq)],
            names=["mode", "time"],
        )  # fmt: skip
        counts = counts.reindex(grid, fill_value=0)
    data = counts.rename("n_events").reset_index()
    return (
        alt.Chart(data, title=f"failure modes over time (events per {freq})")
        .mark_line(point=True)
        .encode(
            x=alt.X("time:T", title=None),
            y=alt.Y("n_events:Q", title="events"),
            color=alt.Color(
                "mode:N", legend=alt.Legend(labelLimit=320, orient="bottom", columns=1)
            ),
            tooltip=["mode", "time", "n_events"],
        )
    )
