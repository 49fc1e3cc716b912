"""The two halves of a synthetic experiment: the world (tasks, environment) and the agent design.

The same :class:`World` run under two :class:`AgentDesign` values sees the same tasks with the
same difficulties, arrival times and trials, so predictions for one design can be checked
against what the other design really did.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from failkit.synth.catalog import CORE_TOOLS, MODE_INDEX, MODELS, STAGES, toolset

DEFAULT_MAX_ATTEMPTS: dict[str, int] = {
    "tool_selection": 2,
    "parameter_extraction": 2,
    "tool_execution": 3,
    "response_synthesis": 2,
}


def _check_modes(values: dict[str, float], what: str) -> dict[str, float]:
    unknown = sorted(set(values) - set(MODE_INDEX))
    if unknown:
        raise ValueError(f"unknown failure modes in {what}: {unknown}; known: {list(MODE_INDEX)}")
    bad = {k: v for k, v in values.items() if not 0.0 <= v <= 1.0}
    if bad:
        raise ValueError(f"{what} must be probabilities in [0, 1], got {bad}")
    return values


def _check_stages(values: dict[str, float] | dict[str, int], what: str) -> None:
    unknown = sorted(set(values) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stages in {what}: {unknown}; known: {list(STAGES)}")


class World(BaseModel):
    """The task population and how the environment behaves; independent of the agent design.

    Attributes:
        n_tasks: distinct tasks.
        trials: runs per task (for pass^k); runs = ``n_tasks * trials``.
        seed: fixes the task population (difficulty, steps, arguments, arrival times).
        start_time: arrival time of the first run (UTC).
        runs_per_minute: mean arrival rate (Poisson); runs overlap in time.
        difficulty_a: Beta ``a`` of task difficulty in [0, 1].
        difficulty_b: Beta ``b`` of task difficulty.
        max_rounds: most tool rounds a task needs (``1 + Binomial(max_rounds - 1, difficulty)``).
        mode_rates: per-mode rates replacing the catalog's (see ``catalog.MODES``).
        recovery: per-mode probabilities that one repeat of the failed step succeeds.
        p_side_effect_on_timeout: chance that a timed-out call of a non-idempotent tool acted.
        tool_timeout_s: client timeout of tool calls.
        human_seconds: median time a human checkpoint takes.
        human_usd_per_hour: what human review time costs.
        judge_coverage: share of answered runs with a silent failure that the LLM judge
            flags with a comment (see :mod:`failkit.synth.judge`).
        judge_vague: share of the judge's comments that name no specific problem.
        judge_span_share: share of the judge's verdicts that point at the span blamed
            (the others are about the whole run).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_tasks: int = Field(default=200, ge=1)
    trials: int = Field(default=5, ge=1)
    seed: int = Field(default=0, ge=0)
    start_time: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    runs_per_minute: float = Field(default=30.0, gt=0)
    difficulty_a: float = Field(default=2.0, gt=0)
    difficulty_b: float = Field(default=5.0, gt=0)
    max_rounds: int = Field(default=4, ge=1, le=12)
    mode_rates: dict[str, float] = Field(default_factory=dict)
    recovery: dict[str, float] = Field(default_factory=dict)
    p_side_effect_on_timeout: float = Field(default=0.5, ge=0, le=1)
    tool_timeout_s: float = Field(default=30.0, gt=0)
    human_seconds: float = Field(default=45.0, gt=0)
    human_usd_per_hour: float = Field(default=60.0, ge=0)
    judge_coverage: float = Field(default=0.9, ge=0, le=1)
    judge_vague: float = Field(default=0.05, ge=0, le=1)
    judge_span_share: float = Field(default=0.5, ge=0, le=1)

    @field_validator("mode_rates")
    @classmethod
    def _known_rates(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_modes(v, "mode_rates")

    @field_validator("recovery")
    @classmethod
    def _known_recovery(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_modes(v, "recovery")

    @field_validator("start_time")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @property
    def n_runs(self) -> int:
        """Runs in the world: every task, ``trials`` times."""
        return self.n_tasks * self.trials


class AgentDesign(BaseModel):
    """How the agent is built: the levers a what-if analysis pulls.

    Attributes:
        name: label of the design (ground truth ``design``).
        seed: seeds the run-time randomness (the world's seed fixes the tasks).
        n_tools: tools given to the agent (the 8 core ones, then distractors); tool-selection
            rates are multiplied by :func:`failkit.synth.catalog.tool_factor`.
        max_attempts: attempts per stage (an int applies to every stage; stages missing
            from a dict get 1): detectable transient failures are repeated until then.
        checkpoint_tools: tools whose calls a human reviews before they run.
        catch_rate: chance that the reviewer catches a bad proposed call.
        max_human_redos: caught calls redone per tool round at most; later bad calls pass.
        structured_outputs: constrained decoding: no unparseable output, no wrong arg types.
        log_confidence: LLM spans log ``failkit.confidence``.
        confidence_calibration: 1 = confidence separates right from wrong, 0 = noise.
        model_quality: per-stage multiplier of that stage's failure rates (missing = 1).
        model: LLM used for every call (provider, price from ``catalog.MODELS``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="baseline", min_length=1)
    seed: int = Field(default=0, ge=0)
    n_tools: int = Field(default=16, ge=len(CORE_TOOLS), le=1000)
    max_attempts: int | dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MAX_ATTEMPTS))
    checkpoint_tools: tuple[str, ...] = ()
    catch_rate: float = Field(default=0.9, ge=0, le=1)
    max_human_redos: int = Field(default=2, ge=0)
    structured_outputs: bool = False
    log_confidence: bool = True
    confidence_calibration: float = Field(default=0.7, ge=0, le=1)
    model_quality: dict[str, float] = Field(default_factory=dict)
    model: str = "gpt-4o-mini"

    @field_validator("max_attempts")
    @classmethod
    def _attempts(cls, v: int | dict[str, int]) -> int | dict[str, int]:
        values = v if isinstance(v, dict) else {"all": v}
        if isinstance(v, dict):
            _check_stages(v, "max_attempts")
        if any(n < 1 for n in values.values()):
            raise ValueError(f"max_attempts must be >= 1, got {v}")
        return v

    @field_validator("model_quality")
    @classmethod
    def _quality(cls, v: dict[str, float]) -> dict[str, float]:
        _check_stages(v, "model_quality")
        if any(q < 0 for q in v.values()):
            raise ValueError(f"model_quality multipliers must be >= 0, got {v}")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if v not in MODELS:
            raise ValueError(f"unknown model {v!r}; known: {list(MODELS)}")
        return v

    @model_validator(mode="after")
    def _checkpoints(self) -> AgentDesign:
        names = {t.name for t in toolset(self.n_tools)}
        unknown = sorted(set(self.checkpoint_tools) - names)
        if unknown:
            raise ValueError(
                f"checkpoint_tools {unknown} are not among the design's {self.n_tools} tools"
            )
        return self

    def attempts(self, stage: str) -> int:
        """Most attempts of a stage's step."""
        if isinstance(self.max_attempts, int):
            return self.max_attempts
        return self.max_attempts.get(stage, 1)

    def quality(self, stage: str) -> float:
        """Failure-rate multiplier of a stage."""
        return self.model_quality.get(stage, 1.0)

    def digest(self) -> int:
        """A stable 63-bit number identifying every knob (seeds the design's ids)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
