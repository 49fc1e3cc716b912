"""What-if compute behind the explorer: lever settings → a changed design → tidy frames to chart.

A *setting* is the value of one lever on one stage; :func:`settings_of` reads them off a design
and :func:`apply_levers` turns changed settings into a new design with the levers of
:class:`~failkit.design.Design` (only settings that differ from the base design are applied, so
what the base design holds that a lever cannot express, e.g. routing given as flag rates, is
kept). The frame functions reshape :func:`failkit.simulate` output for the charts of
:mod:`failkit.charts`; :func:`waterfall` computes how success compounds stage by stage.

Example:
    >>> import failkit as fk
    >>> from failkit import whatif
    >>> base = fk.Design(stages=[fk.Stage(name=f"s{i}", p_success=0.95) for i in range(4)])
    >>> wf = whatif.waterfall([base])
    >>> [round(x, 4) for x in wf["end"]]
    [0.95, 0.9025, 0.8574, 0.8145, 0.8145]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from failkit.design import Checkpoint, Design, Stage
from failkit.errors import FailkitError

# _outcomes & co: the exact engine's per-stage outcomes given the task. waterfall() needs the
# chance that each stage ends right, which simulate() computes but does not return.
from failkit.simulate import _Z_FINE, SLO, _outcomes, _point_rates, _task_rates, _z_grid

LeverValue = int | float | bool
Settings = dict[str, dict[str, LeverValue]]
"""Lever settings: stage name → lever name → value (see :data:`LEVERS`)."""

END_TO_END = "end to end"
WATERFALL_COLUMNS = [
    "design", "step", "stage", "label", "kind", "stage_success", "start", "end", "loss",
]  # fmt: skip
METRIC_COLUMNS = [
    "design", "success_rate", "autonomous_success_rate", "human_touch_rate",
    "duplicate_action_rate", "cost_usd_mean", "cost_usd_p95", "latency_s_mean", "latency_s_p50",
    "latency_s_p95", "slo_attainment",
]  # fmt: skip
PASS_K_COLUMNS = ["design", "k", "pass_hat_k", "ci_low", "ci_high"]
SLO_COLUMNS = ["design", "slo_attainment", "target", "meets_target"]


@dataclass(frozen=True)
class Lever:
    """One per-stage lever of the explorer.

    Attributes:
        name: the setting's key (``max_attempts``, ``checkpoint``, …).
        label: what a control shows.
        kind: ``int`` / ``float`` sliders or a ``bool`` toggle.
        low, high, step: the slider's range (unused for toggles).
    """

    name: str
    label: str
    kind: Literal["int", "float", "bool"]
    low: float = 0.0
    high: float = 1.0
    step: float = 1.0


LEVERS: tuple[Lever, ...] = (
    Lever("max_attempts", "retries: max attempts", "int", 1, 6, 1),
    Lever("checkpoint", "human checkpoint", "bool"),
    Lever("catch_rate", "checkpoint catch rate", "float", 0.0, 1.0, 0.05),
    Lever("routing_threshold", "routing threshold (0 = off)", "float", 0.0, 0.95, 0.05),
    Lever("n_tools", "tools offered", "int", 1, 64, 1),
    Lever("structured_outputs", "structured outputs", "bool"),
    Lever("error_multiplier", "model error x", "float", 0.1, 2.0, 0.05),
)
"""Every lever, in the order controls show them and :func:`apply_levers` applies them."""

_LEVER_NAMES = tuple(lever.name for lever in LEVERS)


def stage_levers(stage: Stage) -> list[Lever]:
    """The levers that apply to ``stage`` (``n_tools`` only where the toolset size is known)."""
    return [lv for lv in LEVERS if lv.name != "n_tools" or stage.n_tools is not None]


def settings_of(design: Design) -> Settings:
    """The lever settings a design has now, per stage.

    A stage without a checkpoint reads ``catch_rate`` as the default checkpoint's; one without
    threshold routing reads ``routing_threshold`` 0 (off).
    """
    out: Settings = {}
    for s in design.stages:
        routing = s.routing.threshold if s.routing and s.routing.threshold is not None else 0.0
        values: dict[str, LeverValue] = {
            "max_attempts": s.max_attempts,
            "checkpoint": s.checkpoint is not None,
            "catch_rate": (s.checkpoint or Checkpoint()).catch_rate,
            "routing_threshold": routing,
            "n_tools": s.n_tools or 0,
            "structured_outputs": s.structured_outputs,
            "error_multiplier": s.error_multiplier,
        }
        out[s.name] = {lv.name: values[lv.name] for lv in stage_levers(s)}
    return out


def apply_levers(base: Design, settings: Mapping[str, Mapping[str, LeverValue]]) -> Design:
    """The design ``base`` becomes with these lever settings.

    Only settings that differ from :func:`settings_of` ``(base)`` are applied, with the lever
    methods of :class:`~failkit.design.Design`, so the design's name lists the changes
    (``"base + retries(tool_execution, 3)"``). Stages or levers not in ``settings`` keep their
    values.

    Raises:
        FailkitError: an unknown stage or lever, or a lever that does not apply to the stage.
    """
    now = settings_of(base)
    design = base
    for stage_name, changes in settings.items():
        if stage_name not in now:
            raise FailkitError(
                f"design {base.name!r} has no stage {stage_name!r}; stages: "
                + ", ".join(base.stage_names)
            )
        unknown = sorted(set(changes) - set(now[stage_name]))
        if unknown:
            raise FailkitError(
                f"unknown lever(s) {', '.join(unknown)} for stage {stage_name!r}; levers: "
                + ", ".join(now[stage_name])
            )
        design = _apply(design, stage_name, now[stage_name], {**now[stage_name], **changes})
    return design


def _apply(
    design: Design, stage: str, old: Mapping[str, LeverValue], new: Mapping[str, LeverValue]
) -> Design:
    """Apply the levers of one stage whose settings changed from ``old`` to ``new``."""
    s = design.stage(stage)
    if new["max_attempts"] != old["max_attempts"]:
        design = design.with_retries(stage, int(new["max_attempts"]), backoff_s=s.backoff_s)
    if new["checkpoint"] != old["checkpoint"] or (
        new["checkpoint"] and new["catch_rate"] != old["catch_rate"]
    ):
        if new["checkpoint"]:
            cp = s.checkpoint or Checkpoint()
            design = design.with_checkpoint(
                stage,
                catch_rate=float(new["catch_rate"]),
                catch_rate_detectable=cp.catch_rate_detectable,
                human_seconds=cp.human_seconds,
                human_cost_usd=cp.human_cost_usd,
            )
        else:
            design = design.with_stage(stage, checkpoint=None, label=f"no checkpoint({stage})")
    threshold = float(new["routing_threshold"])
    if threshold != old["routing_threshold"]:
        if threshold > 0.0:
            design = design.with_confidence_routing(threshold, stages=[stage])
        else:
            design = design.with_stage(stage, routing=None, label=f"no routing({stage})")
    if "n_tools" in new and new["n_tools"] != old["n_tools"]:
        design = design.with_tools(int(new["n_tools"]), stage=stage)
    if new["structured_outputs"] != old["structured_outputs"]:
        if new["structured_outputs"]:
            design = design.with_structured_outputs(stage)
        else:
            design = design.with_stage(
                stage, structured_outputs=False, label=f"no structured_outputs({stage})"
            )
    if new["error_multiplier"] != old["error_multiplier"]:
        design = design.with_model(stage, float(new["error_multiplier"]))
    return design


def waterfall(designs: Design | Sequence[Design]) -> pd.DataFrame:
    """How success compounds: the share of runs still on track after each stage, per design.

    A stage ends *right* when an attempt succeeds, a checkpoint corrects it, or routing sends a
    silent failure to a human who fixes it (after retries: see :mod:`failkit.design`). Given
    the task the stages are independent, so the share on track after stage i is the mean over
    task difficulty of the product of the stages' rates up to i — exactly the end-to-end
    ``success_rate`` of :func:`failkit.simulate` after the last stage.

    Returns:
        Per design, one row per stage and a last ``end_to_end`` row: ``design``, ``step``
        (1..n, n + 1 for the total), ``stage``, ``label`` (``"1. name"``, or ``"end to end"``),
        ``kind`` (``stage`` / ``end_to_end``), ``stage_success`` (the stage's own rate, given
        it is reached), ``start`` and ``end`` (share on track before and after it; 0 and the
        end-to-end rate for the total), ``loss`` (``start - end``; ``1 - end`` for the total).
    """
    items = [designs] if isinstance(designs, Design) else list(designs)
    frames = []
    for d in items:
        ok, w = _stage_ok(d)
        on_track = np.cumprod(ok, axis=1).T @ w
        n = len(d.stages)
        end = np.append(on_track, on_track[-1])
        start = np.concatenate([[1.0], on_track[:-1], [0.0]])
        loss = np.append(start[:-1] - end[:-1], 1.0 - end[-1])
        frames.append(
            pd.DataFrame(
                {
                    "design": d.name,
                    "step": np.arange(1, n + 2, dtype=np.int64),
                    "stage": [*d.stage_names, END_TO_END],
                    "label": [f"{i}. {s}" for i, s in enumerate(d.stage_names, 1)] + [END_TO_END],
                    "kind": ["stage"] * n + ["end_to_end"],
                    "stage_success": np.append(ok.T @ w, on_track[-1]),
                    "start": start,
                    "end": end,
                    "loss": loss,
                }
            )
        )
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in WATERFALL_COLUMNS})
    return pd.concat(frames, ignore_index=True).astype({"design": "str", "stage": "str"})


def _stage_ok(design: Design) -> tuple[np.ndarray, np.ndarray]:
    """P(stage ends right | task) as (task nodes, stages), and the nodes' weights."""
    z, w = _z_grid(design.task_spread, _Z_FINE)
    p = _task_rates(_point_rates(design)[None, :], design.task_spread, z)[0]
    cols = []
    for i, stage in enumerate(design.stages):
        o = _outcomes(stage, p[None, :, i])
        cols.append((o.ok_auto.sum(-1) + o.caught + o.bad * o.phi_fail)[0])
    return np.stack(cols, axis=1), w


def _dtype(column: str) -> str:
    if column in ("design", "stage", "label", "kind"):
        return "str"
    if column in ("step", "k"):
        return "int64"
    if column == "meets_target":
        return "bool"
    return "float64"


def _check_sim(sim: pd.DataFrame) -> None:
    missing = [c for c in ("design", "metric", "value") if c not in sim.columns]
    if missing:
        raise FailkitError(
            f"expected the frame failkit.simulate() returns; missing column(s) {', '.join(missing)}"
        )


def _by_design(sim: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``simulate`` long frame → design → metric → value (designs in their order).

    Plain Python on purpose: the frames are small and the explorer calls this on every change.
    """
    _check_sim(sim)
    out: dict[str, dict[str, float]] = {}
    for design, metric, value in zip(
        sim["design"].tolist(), sim["metric"].tolist(), sim["value"].tolist(), strict=True
    ):
        out.setdefault(str(design), {})[str(metric)] = float(value)
    return out


def metrics(sim: pd.DataFrame) -> pd.DataFrame:
    """The headline metrics of each design, one row per design (in the order of ``sim``).

    Args:
        sim: what :func:`failkit.simulate` returned.

    Returns:
        Columns of :data:`METRIC_COLUMNS`: ``design``, the rates, ``cost_usd_mean`` /
        ``cost_usd_p95``, ``latency_s_mean`` / ``_p50`` / ``_p95``, ``slo_attainment``.
    """
    by = _by_design(sim)
    columns: dict[str, Any] = {"design": pd.Series(list(by), dtype="str")}
    for m in METRIC_COLUMNS[1:]:
        columns[m] = np.array([v.get(m, np.nan) for v in by.values()], dtype=float)
    return pd.DataFrame(columns)


def pass_k(sim: pd.DataFrame) -> pd.DataFrame:
    """pass^k curves: from :func:`failkit.simulate`, or observed from :func:`failkit.pass_hat_k`.

    A ``pass_hat_k`` frame (columns ``k``, ``pass_hat_k``, …) becomes the design ``observed``;
    frames that already have ``design``, ``k`` and ``pass_hat_k`` pass through.

    Returns:
        One row per design and k: ``design``, ``k``, ``pass_hat_k``, ``ci_low``, ``ci_high``.
    """
    if {"k", "pass_hat_k"} <= set(sim.columns):
        out = sim.copy()
        if "design" not in out.columns:
            out.insert(0, "design", "observed")
        return out.reindex(columns=PASS_K_COLUMNS).astype({c: _dtype(c) for c in PASS_K_COLUMNS})
    _check_sim(sim)
    rows = [
        (d, int(m.removeprefix("pass_hat_")), v, lo, hi)
        for d, m, v, lo, hi in zip(
            sim["design"].tolist(),
            sim["metric"].tolist(),
            sim["value"].tolist(),
            sim["ci_low"].tolist() if "ci_low" in sim.columns else [np.nan] * len(sim),
            sim["ci_high"].tolist() if "ci_high" in sim.columns else [np.nan] * len(sim),
            strict=True,
        )
        if m.startswith("pass_hat_")
    ]
    d, k, v, lo, hi = (list(c) for c in zip(*rows, strict=True)) if rows else ([],) * 5
    return pd.DataFrame(
        {
            "design": pd.Series(d, dtype="str"),
            "k": np.array(k, dtype=np.int64),
            "pass_hat_k": np.array(v, dtype=float),
            "ci_low": np.array(lo, dtype=float),
            "ci_high": np.array(hi, dtype=float),
        }
    )


def slo_attainment(sim: pd.DataFrame, slo: SLO | None = None) -> pd.DataFrame:
    """Share of runs meeting the SLO, per design, against its target.

    Args:
        sim: what :func:`failkit.simulate` returned (with the same ``slo``).
        slo: the SLO it was run with (default ``SLO()``), for the target.

    Returns:
        One row per design: ``design``, ``slo_attainment``, ``target``, ``meets_target``.
    """
    target = (slo or SLO()).target
    by = _by_design(sim)
    att = np.array([v.get("slo_attainment", np.nan) for v in by.values()], dtype=float)
    return pd.DataFrame(
        {
            "design": pd.Series(list(by), dtype="str"),
            "slo_attainment": att,
            "target": np.full(att.size, target),
            "meets_target": att >= target,
        }
    )


def describe(slo: SLO) -> str:
    """A short human description of an SLO (``"success, <= 10 s, no human, <= $0.05; 95%"``)."""
    parts = ["success"] if slo.success else []
    if slo.max_seconds is not None:
        parts.append(f"<= {slo.max_seconds:g} s")
    if slo.no_human:
        parts.append("no human")
    if slo.max_cost_usd is not None:
        parts.append(f"<= ${slo.max_cost_usd:g}")
    return f"{', '.join(parts) or 'any run'}; target {slo.target:.0%}"


def flatten(
    settings: Mapping[str, Mapping[str, LeverValue]], *, sep: str = "__"
) -> dict[str, LeverValue]:
    """``{stage: {lever: v}}`` → ``{"stage__lever": v}`` (the explorer's control names)."""
    return {
        f"{st}{sep}{lever}": v for st, levers in settings.items() for lever, v in levers.items()
    }


def unflatten(params: Mapping[str, LeverValue], *, sep: str = "__") -> Settings:
    """``{"stage__lever": v}`` → ``{stage: {lever: v}}``, splitting at the last ``sep``.

    Raises:
        FailkitError: a key without ``sep`` or with an unknown lever name.
    """
    out: Settings = {}
    for key, value in params.items():
        stage, found, lever = key.rpartition(sep)
        if not found or lever not in _LEVER_NAMES:
            raise FailkitError(
                f"{key!r} is not '<stage>{sep}<lever>' with a lever among: "
                + ", ".join(_LEVER_NAMES)
            )
        out.setdefault(stage, {})[lever] = value
    return out
