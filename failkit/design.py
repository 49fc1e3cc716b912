"""Agent designs: ordered stages with their reliability, and levers that return changed copies.

A :class:`Design` is what :func:`failkit.simulate` evaluates. Every number on a :class:`Stage`
is a per-attempt probability or distribution; the levers (``with_retries``, ``with_checkpoint``,
``with_confidence_routing``, ``with_tools``, ``with_structured_outputs``, ``with_model``,
``add_stage``, ``remove_stage``) never edit a design in place, they return a new one.

What a stage does with one run (the model :mod:`failkit.simulate` computes):

1. The first attempt succeeds with ``p_success`` (after the levers, see
   :attr:`Stage.failure_multiplier`, and the task's difficulty, see :attr:`Design.task_spread`).
2. With a :class:`Checkpoint`, a human reviews every attempt before it acts (``human_seconds``,
   ``human_cost_usd`` each time); a bad first attempt is caught with ``catch_rate`` when its
   mistake is silent and ``catch_rate_detectable`` when it would raise; a caught attempt is
   redone and reviewed again (one more attempt and review), the stage then succeeds and the run
   counts as human-touched.
3. An uncaught failure is *detectable* (an error is raised) with ``p_detectable``, otherwise
   *silent*: the run goes on with a wrong-but-plausible output and ends as a failure.
4. A *transient* detectable failure (``p_transient`` of them) is retried up to ``max_attempts``
   attempts in all, waiting ``backoff_s`` before the first retry and twice as long before each
   further one; each retry fixes it with ``p_recover``. A *permanent* one ends the run at once,
   unless ``retry_permanent`` (a blanket retry-on-any-error policy): then it is retried too and
   fails every time. A detectable failure left after the last attempt ends the run.
5. Each failed detectable attempt of a non-``idempotent`` stage may still have acted
   (``p_side_effect_on_failure``, e.g. a timed-out payment that went through); when an attempt
   that acted is followed by another attempt that acts, the run holds a duplicate action.
6. With :class:`Routing`, an output (correct or silently wrong) is flagged as low-confidence with
   ``p_flag_given_ok`` / ``p_flag_given_fail``; a flagged output goes to a human who fixes it
   (a wrong one becomes right) at ``human_seconds`` / ``human_cost_usd``; the run counts as
   human-touched.
7. A stage with ``presence`` below 1 is run by that share of the runs that reach it; its rates
   and laws already count the others as zero-cost successes, so only human work is scaled: the
   checkpoint charges ``human_seconds`` / ``human_cost_usd`` times ``presence`` (only present
   runs are reviewed), and routing flags right outputs with ``p_flag_given_ok`` times
   ``presence`` (wrong outputs all come from present runs).

Every attempt takes a draw of ``latency_s`` and ``cost_usd`` (discrete distributions, see
:class:`Dist`); an attempt that raised an error (a detectable failure) draws from
``latency_s_failed`` / ``cost_usd_failed`` instead when they are given (a timed-out call lasts
the timeout, a rejected request costs nothing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Self, TypeVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from scipy import stats

from failkit.errors import FailkitError

DEFAULT_TOOL_GAMMA = 0.5
"""Default slope of tool-selection error against toolset size (see :func:`tool_error_curve`)."""

MAX_TASK_SPREAD = 5.0
"""Largest :attr:`Design.task_spread` accepted (a logit standard deviation of 5 is extreme)."""

_Prob = Annotated[float, Field(ge=0.0, le=1.0)]
_NonNeg = Annotated[float, Field(ge=0.0)]
_FROZEN = ConfigDict(frozen=True, extra="forbid")
_M = TypeVar("_M", bound=BaseModel)


def tool_error_curve(n_tools: float, *, gamma: float = DEFAULT_TOOL_GAMMA) -> float:
    """Relative tool-selection error with ``n_tools`` tools: ``1 + gamma * log2(n_tools)``.

    The error rate of a tool-selection stage is taken to grow linearly in the logarithm of the
    toolset size, anchored at one tool (``n0 = 1``): each doubling of the toolset adds ``gamma``
    times the single-tool error. Only ratios of this curve are used: a stage measured with
    ``n_tools_measured`` tools and given ``n_tools`` has its error multiplied by
    ``curve(n_tools) / curve(n_tools_measured)``.

    The default ``gamma = 0.5`` is an assumption, not a fit: it encodes the direction and rough
    size of what function-calling benchmarks and practitioners report (selection accuracy falls as
    tools are added, e.g. the Berkeley Function Calling Leaderboard's multi-tool categories and
    "Less is More" (Paramanayakam et al., 2024), where pruning the toolset raised success).
    It scales *all* of a stage's failures, also those that do not depend on the toolset. When
    runs span several toolset sizes, fit the curve instead
    (:func:`failkit.estimate.fit_tool_slope`, :attr:`Stage.tool_slope`).
    """
    if n_tools < 1:
        raise FailkitError(f"n_tools must be at least 1, got {n_tools}")
    return 1.0 + gamma * math.log2(n_tools)


def tool_error_ratio(n_tools: float, n_measured: float, *, slope: float | None = None) -> float:
    """Factor on a tool-selection failure rate measured with ``n_measured`` tools, at ``n_tools``.

    With a fitted ``slope`` (the failure rate's relative change per doubling of the toolset at
    ``n_measured``, see :func:`failkit.estimate.fit_tool_slope`):
    ``max(0, 1 + slope * log2(n_tools / n_measured))`` — a failure rate linear in the logarithm
    of the toolset size, with an intercept that keeps the failures the toolset does not cause.
    Without: the default curve's ratio ``tool_error_curve(n_tools) /
    tool_error_curve(n_measured)``.
    """
    if slope is None:
        return tool_error_curve(n_tools) / tool_error_curve(n_measured)
    if n_tools < 1 or n_measured < 1:
        raise FailkitError(f"toolset sizes must be at least 1, got {n_tools}, {n_measured}")
    return max(0.0, 1.0 + slope * math.log2(n_tools / n_measured))


class Dist(BaseModel):
    """A discrete distribution of a non-negative quantity (seconds, USD) per attempt.

    The simulator uses exactly this discrete law: Monte Carlo samples its values, the exact
    method convolves it along the runs' paths.
    """

    model_config = _FROZEN

    values: tuple[float, ...] = Field(min_length=1)
    probs: tuple[float, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Self:
        v, p = np.asarray(self.values, float), np.asarray(self.probs, float)
        if v.shape != p.shape:
            raise ValueError(f"values ({v.size}) and probs ({p.size}) differ in length")
        if not (np.all(np.isfinite(v)) and np.all(v >= 0)):
            raise ValueError("values must be finite and >= 0")
        if np.any(p < 0) or abs(p.sum() - 1.0) > 1e-6:
            raise ValueError(f"probs must be >= 0 and sum to 1 (sum is {p.sum():.6g})")
        return self

    @classmethod
    def fixed(cls, value: float) -> Dist:
        """Always ``value``."""
        return cls(values=(float(value),), probs=(1.0,))

    @classmethod
    def lognormal(cls, *, median: float, p95: float, points: int = 32) -> Dist:
        """A lognormal with this median and 95th percentile, discretized to ``points`` values.

        Each value is the mean of the lognormal within one of ``points`` equal-probability bins,
        so the mean is the lognormal's mean exactly; quantiles are those of the discrete law.
        """
        if not 0 < median <= p95:
            raise FailkitError(f"need 0 < median <= p95, got median={median}, p95={p95}")
        sigma = math.log(p95 / median) / stats.norm.ppf(0.95)
        if sigma == 0.0:
            return cls.fixed(median)
        edges = stats.norm.ppf(np.linspace(0.0, 1.0, points + 1))
        mean = median * math.exp(sigma**2 / 2)
        partial = stats.norm.cdf(edges - sigma)  # E[X; z < edge] / E[X]
        values = mean * np.diff(partial) * points
        return cls(values=tuple(values.tolist()), probs=(1.0 / points,) * points)

    @classmethod
    def from_sample(cls, sample: Sequence[float] | np.ndarray, *, points: int = 64) -> Dist:
        """The empirical distribution of ``sample`` (NaN dropped).

        With at most ``points`` distinct values it is kept as is; otherwise the sorted sample is
        cut into ``points`` groups of (nearly) equal size and each group becomes its mean, which
        keeps the sample mean exactly.
        """
        x = np.sort(np.asarray(sample, float)[~np.isnan(np.asarray(sample, float))])
        if x.size == 0:
            raise FailkitError("sample is empty (or all NaN): nothing to build a Dist from")
        uniq, counts = np.unique(x, return_counts=True)
        if uniq.size <= points:
            return cls(values=tuple(uniq.tolist()), probs=tuple((counts / x.size).tolist()))
        groups = np.array_split(x, points)
        return cls(
            values=tuple(float(g.mean()) for g in groups),
            probs=tuple(g.size / x.size for g in groups),
        )

    @property
    def mean(self) -> float:
        """Expected value."""
        return float(np.dot(self.values, self.probs))


def _as_dist(value: Any) -> Any:
    return Dist.fixed(value) if isinstance(value, int | float) else value


DistLike = Annotated[Dist, BeforeValidator(_as_dist)]
"""A :class:`Dist`, or a number meaning a fixed value."""


class Checkpoint(BaseModel):
    """A human reviews every attempt of a stage before it acts; a caught one is redone.

    ``catch_rate`` is the share of bad attempts caught whose mistake is silent (wrong but
    plausible), ``catch_rate_detectable`` of those that would raise an error (``None``: the
    same); a reviewer of proposed tool calls sees a wrong tool or a wrong value, not a misspelt
    tool name that the runtime rejects anyway.
    """

    model_config = _FROZEN

    catch_rate: _Prob = 0.9
    catch_rate_detectable: _Prob | None = None
    human_seconds: _NonNeg = 30.0
    human_cost_usd: _NonNeg = 0.25


CDF_POINTS = 101
"""Thresholds ``0, 0.01, …, 1`` at which :class:`Calibration` holds empirical CDFs."""


class Calibration(BaseModel):
    """How logged confidence separates correct from wrong outputs.

    Either parametric: confidence of correct outputs ~ Beta(``ok_alpha``, ``ok_beta``), of
    wrong ones ~ Beta(``fail_alpha``, ``fail_beta``). The defaults are an assumption (correct
    outputs mean 0.82, wrong ones 0.63: overconfident, as verbalized LLM confidence tends to
    be). Or empirical, as :func:`failkit.estimate.estimate_design` learns it from logged
    confidences: ``ok_cdf`` / ``fail_cdf`` hold the share of confidences *below* each threshold
    ``i / 100`` (:data:`CDF_POINTS` values), interpolated linearly in between; they take
    precedence over the Beta parameters. Logged confidences rarely follow a Beta (a share of
    them is noise, or they cluster on round values), and routing only needs the CDF at its
    threshold, which the empirical CDF estimates without a shape assumption.
    """

    model_config = _FROZEN

    ok_alpha: float = Field(default=9.0, gt=0)
    ok_beta: float = Field(default=2.0, gt=0)
    fail_alpha: float = Field(default=5.0, gt=0)
    fail_beta: float = Field(default=3.0, gt=0)
    ok_cdf: tuple[_Prob, ...] | None = Field(
        default=None, min_length=CDF_POINTS, max_length=CDF_POINTS
    )
    fail_cdf: tuple[_Prob, ...] | None = Field(
        default=None, min_length=CDF_POINTS, max_length=CDF_POINTS
    )

    @classmethod
    def from_samples(cls, ok: np.ndarray, wrong: np.ndarray) -> Calibration:
        """Empirical CDFs of the confidences of correct (``ok``) and wrong outputs."""
        return cls.from_counts(cdf_counts(ok), len(ok), cdf_counts(wrong), len(wrong))

    @classmethod
    def from_counts(
        cls, ok_below: np.ndarray, n_ok: int, wrong_below: np.ndarray, n_wrong: int
    ) -> Calibration:
        """Empirical CDFs from :func:`cdf_counts` of ``n_ok`` correct and ``n_wrong`` wrong
        outputs' confidences (counts of several samples add up)."""
        return cls(
            ok_cdf=tuple((np.asarray(ok_below) / n_ok).tolist()),
            fail_cdf=tuple((np.asarray(wrong_below) / n_wrong).tolist()),
        )

    def p_flag_given_fail(self, threshold: float) -> float:
        """Share of wrong outputs whose confidence is below ``threshold``."""
        if self.fail_cdf is not None:
            return _interp_cdf(self.fail_cdf, threshold)
        return float(stats.beta.cdf(threshold, self.fail_alpha, self.fail_beta))

    def p_flag_given_ok(self, threshold: float) -> float:
        """Share of correct outputs whose confidence is below ``threshold``."""
        if self.ok_cdf is not None:
            return _interp_cdf(self.ok_cdf, threshold)
        return float(stats.beta.cdf(threshold, self.ok_alpha, self.ok_beta))


def cdf_counts(x: np.ndarray) -> np.ndarray:
    """How many of ``x`` lie below each threshold ``i / 100`` of :class:`Calibration`."""
    grid = np.arange(CDF_POINTS) / (CDF_POINTS - 1)
    return np.searchsorted(np.sort(np.asarray(x, float)), grid, side="left")


def _interp_cdf(cdf: tuple[float, ...], threshold: float) -> float:
    return float(np.interp(threshold, np.arange(CDF_POINTS) / (CDF_POINTS - 1), cdf))


class Routing(BaseModel):
    """Low-confidence outputs of a stage go to a human who fixes them."""

    model_config = _FROZEN

    p_flag_given_fail: _Prob
    p_flag_given_ok: _Prob
    human_seconds: _NonNeg = 60.0
    human_cost_usd: _NonNeg = 0.5
    threshold: _Prob | None = None


class Stage(BaseModel):
    """One step of an agent's decision chain, with the numbers that drive the simulation.

    Give ``p_success``, or the Beta posterior ``alpha`` / ``beta`` (successes + 1,
    failures + 1) whose mean it then defaults to; with a posterior, :func:`failkit.simulate`
    propagates its uncertainty into intervals. ``p_success`` is the rate *as measured*; the
    levers act through :attr:`failure_multiplier`. See the module docstring for the semantics.

    Attributes:
        p_success: chance that one attempt succeeds.
        p_detectable: share of failures that raise an error (the rest are silent).
        p_transient: share of detectable failures a retry can fix.
        p_recover: chance that one retry fixes a transient failure; ``None``: a retry is a
            fresh attempt (succeeds with the task's ``p_success``).
        latency_s, cost_usd: per-attempt :class:`Dist` (a number means a fixed value).
        latency_s_failed, cost_usd_failed: the same for attempts that raised an error
            (``None``: as any other attempt).
        idempotent, p_side_effect_on_failure: whether repeating the step is harmless, and the
            chance that a failed detectable attempt acted anyway.
        max_attempts, backoff_s, retry_permanent: the retry policy.
        checkpoint, routing, calibration: human review before the step; low-confidence
            routing after it; the confidence calibration ``with_confidence_routing`` uses.
        parse_failure_share, structured_outputs: share of failures that are parse/format
            errors, and whether structured outputs remove them.
        error_multiplier: failure-rate factor of another model (``with_model``).
        n_tools, n_tools_measured, tool_slope: toolset size now and when ``p_success`` was
            measured, and the fitted relative slope of the failure rate per doubling of the
            toolset (``None``: the default curve; see :func:`tool_error_ratio`).
        presence: share of the runs at this stage that really run it. An estimated design's
            tool-round stages hold the runs that skip the round as zero-cost successes (see
            :mod:`failkit.estimate`); its rates and laws already include them, so only human
            work uses it (step 7 of the module docstring).
    """

    model_config = _FROZEN

    name: str = Field(min_length=1)
    p_success: _Prob | None = None
    alpha: float | None = Field(default=None, gt=0)
    beta: float | None = Field(default=None, gt=0)
    p_detectable: _Prob = 1.0
    p_transient: _Prob = 1.0
    p_recover: _Prob | None = None
    latency_s: DistLike = Dist.fixed(0.0)
    cost_usd: DistLike = Dist.fixed(0.0)
    latency_s_failed: DistLike | None = None
    cost_usd_failed: DistLike | None = None
    idempotent: bool = True
    p_side_effect_on_failure: _Prob = 0.0
    max_attempts: int = Field(default=1, ge=1, le=20)
    backoff_s: _NonNeg = 0.0
    retry_permanent: bool = False
    checkpoint: Checkpoint | None = None
    routing: Routing | None = None
    calibration: Calibration | None = None
    parse_failure_share: _Prob = 0.0
    structured_outputs: bool = False
    error_multiplier: _NonNeg = 1.0
    n_tools: int | None = Field(default=None, ge=1)
    n_tools_measured: int | None = Field(default=None, ge=1)
    tool_slope: float | None = None
    presence: _Prob = 1.0

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        a, b = data.get("alpha"), data.get("beta")
        if (a is None) != (b is None):
            raise ValueError("give both alpha and beta (the Beta posterior), or neither")
        if data.get("p_success") is None:
            if a is None:
                raise ValueError("give p_success, or alpha and beta to take it from")
            data["p_success"] = a / (a + b)
        if data.get("n_tools") is not None and data.get("n_tools_measured") is None:
            data["n_tools_measured"] = data["n_tools"]
        if data.get("n_tools_measured") is not None and data.get("n_tools") is None:
            raise ValueError("n_tools_measured needs n_tools (the toolset size in this design)")
        return data

    @property
    def failure_multiplier(self) -> float:
        """Factor on the measured failure rate: model, toolset size, structured outputs.

        ``error_multiplier`` (``with_model``), :func:`tool_error_ratio` from
        ``n_tools_measured`` to ``n_tools`` (``with_tools``), and ``1 - parse_failure_share``
        when ``structured_outputs`` is on (the remaining failures keep their mix of
        detectable / transient).
        """
        factor = self.error_multiplier
        if self.n_tools is not None and self.n_tools_measured is not None:
            factor *= tool_error_ratio(self.n_tools, self.n_tools_measured, slope=self.tool_slope)
        if self.structured_outputs:
            factor *= 1.0 - self.parse_failure_share
        return factor

    @property
    def splits_failed(self) -> bool:
        """Attempts that raised an error have laws of their own."""
        return self.latency_s_failed is not None or self.cost_usd_failed is not None

    @property
    def p_effective(self) -> float:
        """Per-attempt success after the levers: ``1 - (1 - p_success) * failure_multiplier``."""
        assert self.p_success is not None  # filled in by the validator
        return float(np.clip(1.0 - (1.0 - self.p_success) * self.failure_multiplier, 0.0, 1.0))


def _replace(model: _M, **changes: Any) -> _M:
    """A validated copy of ``model`` with ``changes`` (``model_copy`` does not validate)."""
    return type(model).model_validate({**dict(model), **changes})


class Design(BaseModel):
    """An agent design: ordered stages, and how much task difficulty varies.

    ``task_spread`` is the standard deviation, on the logit scale, of a per-task difficulty
    shared by all stages: task ``z ~ N(0, 1)`` has stage success ``expit(c + task_spread * z)``
    with ``c`` chosen so that the mean over tasks is the stage's rate. It leaves every stage's
    average rate unchanged, makes failures of one run travel together, and makes pass^k fall
    slower than ``p**k`` (hard tasks fail every time, easy ones rarely).
    """

    model_config = _FROZEN

    name: str = Field(default="design", min_length=1)
    stages: tuple[Stage, ...] = Field(min_length=1)
    task_spread: float = Field(default=0.0, ge=0.0, le=MAX_TASK_SPREAD)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(dupes)}")
        return self

    @classmethod
    def from_store(
        cls, store: Any, *, name: str = "observed", task_spread: float | str = "fit"
    ) -> Design:
        """Today's design estimated from a store's traces (:func:`failkit.estimate.from_store`)."""
        from failkit.estimate import from_store

        return from_store(store, name=name, task_spread=task_spread)  # type: ignore[arg-type]

    @property
    def stage_names(self) -> list[str]:
        """Stage names in order."""
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        """The stage called ``name``.

        Raises:
            FailkitError: no such stage (the message lists the valid names).
        """
        for s in self.stages:
            if s.name == name:
                return s
        raise FailkitError(
            f"design {self.name!r} has no stage {name!r}; stages: {', '.join(self.stage_names)}"
        )

    # -- generic edits ------------------------------------------------------------------------
    def with_name(self, name: str) -> Design:
        """The same design under another name."""
        return _replace(self, name=name)

    def with_stage(self, name: str, *, label: str | None = None, **changes: Any) -> Design:
        """A copy whose stage ``name`` has the given fields changed (validated).

        ``label`` is appended to the design name (``"base + retries(x, 3)"``); without it the
        name is kept.
        """
        self.stage(name)
        stages = tuple(_replace(s, **changes) if s.name == name else s for s in self.stages)
        new_name = f"{self.name} + {label}" if label else self.name
        return _replace(self, stages=stages, name=new_name)

    # -- levers -------------------------------------------------------------------------------
    def with_retries(self, stage: str, max_attempts: int, *, backoff_s: float = 0.0) -> Design:
        """Retry transient failures of ``stage`` up to ``max_attempts`` attempts in all.

        Non-idempotent stages accrue duplicate actions (see the module docstring).
        """
        return self.with_stage(
            stage,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            label=f"retries({stage}, {max_attempts})",
        )

    def with_checkpoint(
        self,
        stage: str,
        *,
        catch_rate: float = 0.9,
        human_seconds: float = 30.0,
        human_cost_usd: float = 0.25,
        catch_rate_detectable: float | None = None,
    ) -> Design:
        """A human confirms ``stage`` before it acts (see :class:`Checkpoint`)."""
        cp = Checkpoint(
            catch_rate=catch_rate,
            catch_rate_detectable=catch_rate_detectable,
            human_seconds=human_seconds,
            human_cost_usd=human_cost_usd,
        )
        return self.with_stage(stage, checkpoint=cp, label=f"checkpoint({stage})")

    def with_confidence_routing(
        self,
        threshold: float,
        *,
        stages: Sequence[str] | None = None,
        calibration: Calibration | None = None,
        human_seconds: float = 60.0,
        human_cost_usd: float = 0.5,
    ) -> Design:
        """Send outputs with confidence below ``threshold`` to a human.

        Each stage (all by default) flags with its own :attr:`Stage.calibration` when it has
        one, else ``calibration``, else the default :class:`Calibration`.
        """
        if not 0.0 <= threshold <= 1.0:
            raise FailkitError(f"threshold is a confidence in [0, 1], got {threshold}")
        names = self.stage_names if stages is None else list(stages)
        for n in names:
            self.stage(n)
        new_stages = []
        for s in self.stages:
            if s.name in names:
                cal = s.calibration or calibration or Calibration()
                routing = Routing(
                    p_flag_given_fail=cal.p_flag_given_fail(threshold),
                    p_flag_given_ok=cal.p_flag_given_ok(threshold),
                    human_seconds=human_seconds,
                    human_cost_usd=human_cost_usd,
                    threshold=threshold,
                )
                s = _replace(s, routing=routing)
            new_stages.append(s)
        label = f"routing(<{threshold:g})"
        return _replace(self, stages=tuple(new_stages), name=f"{self.name} + {label}")

    def with_tools(self, n: int, *, stage: str | None = None, slope: float | None = None) -> Design:
        """Give the tool-selection stages (those with ``n_tools``) a toolset of ``n`` tools.

        Their failure rate follows :func:`tool_error_ratio` from the measured size: with
        ``slope`` (fitted, :func:`failkit.estimate.fit_tool_slope`) when given, else the stage's
        own :attr:`Stage.tool_slope`, else the default curve.

        Raises:
            FailkitError: no stage has ``n_tools`` set (or ``stage`` is unknown).
        """
        targets = [stage] if stage is not None else [s.name for s in self.stages if s.n_tools]
        if not targets:
            raise FailkitError(
                "no stage has n_tools set: give the tool-selection stage n_tools=<toolset size>"
            )
        design = self
        for name in targets:
            changes = {"n_tools": n} if slope is None else {"n_tools": n, "tool_slope": slope}
            design = design.with_stage(name, **changes)
        return _replace(design, name=f"{self.name} + tools({n})")

    def with_structured_outputs(self, stage: str) -> Design:
        """Remove the parse/format failures of ``stage`` (its ``parse_failure_share``)."""
        return self.with_stage(stage, structured_outputs=True, label=f"structured_outputs({stage})")

    def with_model(self, stage: str, error_multiplier: float) -> Design:
        """Another model for ``stage``: its measured failure rate times ``error_multiplier``."""
        return self.with_stage(
            stage, error_multiplier=error_multiplier, label=f"model({stage}, x{error_multiplier:g})"
        )

    def add_stage(
        self, stage: Stage, *, after: str | None = None, before: str | None = None
    ) -> Design:
        """Insert ``stage`` after or before a named stage (at the end when neither is given)."""
        if after is not None and before is not None:
            raise FailkitError("give after= or before=, not both")
        stages = list(self.stages)
        if after is not None:
            self.stage(after)
            pos = self.stage_names.index(after) + 1
        elif before is not None:
            self.stage(before)
            pos = self.stage_names.index(before)
        else:
            pos = len(stages)
        stages.insert(pos, stage)
        return _replace(self, stages=tuple(stages), name=f"{self.name} + add({stage.name})")

    def remove_stage(self, name: str) -> Design:
        """Drop the stage called ``name``."""
        self.stage(name)
        stages = tuple(s for s in self.stages if s.name != name)
        if not stages:
            raise FailkitError(f"cannot remove {name!r}: a design needs at least one stage")
        return _replace(self, stages=stages, name=f"{self.name} - {name}")
