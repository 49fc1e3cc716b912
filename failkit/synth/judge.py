"""An LLM judge over the synthetic runs: verdicts with free-text comments, as evaluators write.

Silent failures raise no error, so the traces alone cannot tell a wrong tool from a wrong
answer; production teams learn of them from an evaluator (an LLM judge, user feedback, a
reviewer) that scores the run and says in a sentence what went wrong (Langfuse scores with
comments, LangSmith feedback, TRAIL annotations). The judge here does the same:

- it reviews the runs that gave an answer (a run stopped by an error has nothing to judge)
  and flags those whose first unrecovered failure was silent, each with probability
  ``World.judge_coverage``;
- its comment states the problem (one of four wordings per kind of mistake, which share
  some words and not others, as a rubric-driven judge's do) and a detail quoting the run's
  own values (the tool called, the value passed, the code invented; one of four wordings
  or none), with an optional opening and closing remark common to every kind; no mode
  name appears in it;
- with probability ``World.judge_vague`` the comment names no specific problem ("not what
  the user asked for");
- with probability ``World.judge_span_share`` the verdict points at the span it blames
  (the LLM call that made the mistake), else at the whole run.

Its draws come from their own seeded stream, so the traces do not change with its settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from failkit.synth.catalog import MODE_INDEX, Tool
from failkit.synth.config import AgentDesign, World
from failkit.synth.engine import NO_MODE, Simulation
from failkit.synth.render import TaskText
from failkit.synth.world import Population

JUDGE_NAME = "judge"
"""Label name of the judge's verdicts."""
JUDGE_SOURCE = "llm_judge"
JUDGE_COLUMNS = ["trace_id", "span_id", "name", "value", "score", "source", "comment"]
"""Columns of :func:`judge`."""
_STREAM = 0x6A75646765
"""Appended to the seeds of the judge's random stream (kept apart from the traces')."""

_OPENINGS = (
    "", "", "", "", "Fail.", "Incorrect.", "Verdict: fail.", "Score 0:", "Not acceptable.",
    "Reviewed the run.", "Problem found.", "Rejecting this one.",
)  # fmt: skip
_CLOSINGS = (
    "", "", "", "", "", "The user would have to redo this.", "Needs a fix.",
    "Marking as failed.", "See the trace.", "Otherwise fine.",
)  # fmt: skip

_PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "bad_plan": (
        (
            "The plan is incomplete.",
            "Planning missed a step.",
            "Incomplete plan: a requested step was skipped.",
            "The agent never planned part of the request.",
        ),
        (
            "Nothing in it covers '{phrase}'.",
            "{tool} was never scheduled.",
            "It planned {n_planned} of the {n_asked} steps; the user also asked to {phrase}.",
            "",
        ),
    ),
    "wrong_tool": (
        (
            "Not the right tool for the job.",
            "Incorrect tool choice.",
            "The tool it called does not fit the request.",
            "It called the wrong function.",
        ),
        (
            "It used {used} instead of {needed}.",
            "The user asked to {phrase}, which needs {needed}, not {used}.",
            "{used} cannot {phrase}.",
            "",
        ),
    ),
    "wrong_argument_value": (
        (
            "An argument value is off.",
            "Incorrect parameter passed to {tool}.",
            "The call had a wrong input value.",
            "Bad argument in the {tool} call.",
        ),
        (
            "{field} was {wrong} but the user said {right}.",
            "It should have been {right}, not {wrong}.",
            "The user asked about {right}; the agent sent {wrong}.",
            "",
        ),
    ),
    "wrong_answer": (
        (
            "The final answer is wrong.",
            "Incorrect final response.",
            "The reply misstates the result.",
            "The answer does not match what was done.",
        ),
        (
            "It says {wrong} where the tools handled {right}.",
            "{right} became {wrong} in the summary.",
            "The user asked for {right}, the answer reports {wrong}.",
            "",
        ),
    ),
    "hallucination": (
        (
            "Hallucinated content in the answer.",
            "The response makes up facts.",
            "Fabricated claim in the reply.",
            "Unsupported statement: an invented detail.",
        ),
        (
            "It claims confirmation code {code} was sent by SMS; no tool did that.",
            "No step sent an SMS or produced code {code}.",
            "Nothing in the tool results supports the SMS it mentions.",
            "",
        ),
    ),
}
"""How the judge words each silent mistake: a statement of the problem, then a detail
(either may be any of its variants); slots are filled from the run."""

VAGUE_COMMENTS = (
    "The response does not do what the user asked.",
    "Not what the user wanted.",
    "Task not completed correctly.",
    "Poor result overall.",
    "The outcome is wrong.",
)
"""Comments that name no specific problem."""


class _Facts:
    """The values a comment quotes, read from the run's task and the failing span."""

    def __init__(self, pop: Population, sim: Simulation, tools: tuple[Tool, ...]) -> None:
        self.pop, self.spans, self.tools = pop, sim.spans, tools
        self.text = TaskText(pop, tools)

    def _last(self, task: int) -> int:
        return int(self.pop.n_rounds[task]) - 1

    def _values(self, task: int, r: int, tool: int) -> tuple[str, str, str]:
        """(field, right value, wrong value) of the first argument of ``tool`` in round ``r``."""
        field = self.tools[tool].fields[0][0]
        right = self.text.args(task, r, tool, NO_MODE)[field]
        wrong = self.text.args(task, r, tool, MODE_INDEX["wrong_argument_value"])[field]
        return field, str(right), str(wrong)

    def bad_plan(self, task: int, row: int) -> dict[str, Any]:
        last = self._last(task)
        return {
            "phrase": self.text.phrase(task, last),
            "tool": self.tools[int(self.pop.tools[task, last])].name,
            "n_planned": last,
            "n_asked": last + 1,
        }

    def wrong_tool(self, task: int, row: int) -> dict[str, Any]:
        r = int(self.spans["round"][row])
        return {
            "phrase": self.text.phrase(task, r),
            "used": self.tools[int(self.spans["tool"][row])].name,
            "needed": self.tools[int(self.pop.tools[task, r])].name,
        }

    def wrong_argument_value(self, task: int, row: int) -> dict[str, Any]:
        r, tool = int(self.spans["round"][row]), int(self.spans["tool"][row])
        field, right, wrong = self._values(task, r, tool)
        return {"tool": self.tools[tool].name, "field": field, "right": right, "wrong": wrong}

    def wrong_answer(self, task: int, row: int) -> dict[str, Any]:
        last = self._last(task)
        _, right, wrong = self._values(task, last, int(self.pop.tools[task, last]))
        return {"right": right, "wrong": wrong}

    def hallucination(self, task: int, row: int) -> dict[str, Any]:
        return {"code": f"ZX-{int(self.spans['var'][row]) % 10000:04d}"}


def judge(
    world: World,
    design: AgentDesign,
    pop: Population,
    sim: Simulation,
    truth: pd.DataFrame,
    tools: tuple[Tool, ...],
) -> pd.DataFrame:
    """The judge's verdicts on the runs of one generated design.

    Args:
        world: gives the judge's settings (``judge_coverage``, ``judge_vague``,
            ``judge_span_share``) and, with ``design``, its seed.
        design: the agent design.
        pop: the task population.
        sim: the simulation.
        truth: :attr:`failkit.synth.SynthResult.truth` (first failures, span ids).
        tools: the design's tools.

    Returns:
        One row per verdict, in run order: ``trace_id``, ``span_id`` (the span blamed, or
        missing for a verdict on the run), ``name`` (``judge``), ``value`` (``fail``),
        ``score`` (0.0), ``source`` (``llm_judge``), ``comment``.
    """
    rng = np.random.default_rng([world.seed, design.seed, design.digest(), _STREAM])
    n = world.n_runs
    draws = rng.random((n, 7))
    answered = sim.completed & sim.silent & truth["silent"].eq(True).to_numpy()
    judged = np.flatnonzero(answered & (draws[:, 0] < world.judge_coverage))
    facts = _Facts(pop, sim, tools)
    first = sim.first_unrecovered()
    rows = []
    for run in judged.tolist():
        row = int(sim.events["span"][first[run]])
        mode = truth["failure_mode"].iat[run]
        d = draws[run]
        if d[1] < world.judge_vague:
            core = _pick(VAGUE_COMMENTS, d[2])
        else:
            task = int(pop.run_task[run])
            fill: Callable[[int, int], dict[str, Any]] = getattr(facts, mode)
            problems, details = _PHRASES[mode]
            values = fill(task, row)
            core = _pick(problems, d[2]) + " " + _pick(details, d[6])
            core = core.strip().format(**values)
        comment = " ".join(p for p in (_pick(_OPENINGS, d[3]), core, _pick(_CLOSINGS, d[4])) if p)
        on_span = d[5] < world.judge_span_share
        rows.append(
            [
                truth["trace_id"].iat[run],
                truth["first_failure_cause_span_id"].iat[run] if on_span else None,
                comment,
            ]
        )
    out = pd.DataFrame(rows, columns=["trace_id", "span_id", "comment"])
    return out.assign(name=JUDGE_NAME, value="fail", score=0.0, source=JUDGE_SOURCE)[JUDGE_COLUMNS]


def _pick(options: tuple[str, ...], u: float) -> str:
    return options[int(u * len(options))]
