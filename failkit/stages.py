"""Which decision stage a step carries, and which stage a failure is blamed on.

One table of rules, read top to bottom, decides both. A rule with an ``error`` pattern is a
**failure rule**: it applies to failed steps only and names the stage that *caused* the
failure (an unknown tool name is a tool_selection failure even though the tool span raised
it). A rule without one is a **role rule**: it names the stage a step carries from what it
is (a tool span executes a tool; the last LLM call of a run writes the answer). A failed
step takes the first matching failure rule, else its role rule.

Patterns are RE2 regular expressions (DuckDB's), searched case-insensitively: ``kind`` in
the span kind, ``role`` in the LLM role (see below), ``name`` in ``tool_name + ' ' + name``,
``error`` in ``error_type + ': ' + error_message``. ``None`` matches anything.

LLM roles (computed from the order of steps in a run):

- ``tool_call``: the next working step (llm / tool / retriever / human) is a tool call. Such a
  step both picks the tool and writes its arguments; its role stage is ``tool_selection``,
  and a failure caused by its arguments is blamed on it as ``parameter_extraction``.
- ``final``: the last LLM step of the run, when it is not a tool call → ``response_synthesis``.
- ``plan``: any other LLM step (before the first tool, or thinking between tools) → ``planning``.

Extend the table by putting your rules first, e.g.::

    rules = [StageRule("quota", "tool_execution", error="insufficient_quota"), *DEFAULT_RULES]
    fk.steps(store, rules=rules)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Literal

import pandas as pd

from failkit.errors import FailkitError

STAGES: tuple[str, ...] = (
    "planning",
    "tool_selection",
    "parameter_extraction",
    "tool_execution",
    "retrieval",
    "response_synthesis",
    "handoff",
    "human",
    "other",
)
"""Every stage a step or a failure can be attributed to."""

Blame = Literal["self", "caller"]


@dataclass(frozen=True)
class StageRule:
    """One row of the stage table.

    Attributes:
        id: short name of the rule (reported in ``steps().rule``).
        stage: stage it assigns (one of :data:`STAGES`).
        kind: pattern on the span kind.
        role: pattern on the LLM role (``tool_call``, ``final``, ``plan``).
        name: pattern on ``tool_name + ' ' + name``.
        error: pattern on ``error_type + ': ' + error_message``; set = a failure rule.
        blame: ``self`` (the failing step is the cause) or ``caller`` (the LLM step that wrote
            the call: linked by ``tool_call_id``, else the nearest LLM step before it).
        transient: a repeat of the step can succeed (timeouts, rate limits, server errors).
        may_have_acted: the call may have had its effect although it failed (a timed-out
            ``book_flight`` may have booked): a repeat of it risks a duplicate side effect.
    """

    id: str
    stage: str
    kind: str | None = None
    role: str | None = None
    name: str | None = None
    error: str | None = None
    blame: Blame = "self"
    transient: bool = False
    may_have_acted: bool = False

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise FailkitError(
                f"rule {self.id!r}: unknown stage {self.stage!r}; use one of {', '.join(STAGES)}"
            )
        if self.blame not in ("self", "caller"):
            raise FailkitError(f"rule {self.id!r}: blame must be 'self' or 'caller'")
        for f in ("kind", "role", "name", "error"):
            pattern = getattr(self, f)
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise FailkitError(
                        f"rule {self.id!r}: bad {f} pattern {pattern!r}: {exc}"
                    ) from exc


_R = StageRule
_NOT_LLM = r"^(tool|retriever|embedding|chain|agent|other)$"
_CODE = r"(^|\b(status|http|error|code)\W{{0,3}}){}\b"
"""An HTTP status code as an error type (``429: …``) or after status / http / error / code."""

DEFAULT_RULES: tuple[StageRule, ...] = (
    # ---- failure rules: the stage that caused the failure -----------------------------------
    _R("unknown_tool", "tool_selection", blame="caller", transient=True,
       error=r"unknown tool|no such tool|tool\b.{0,80}\bnot found|not a valid tool|"
             r"invalid tool name|toolnotfound|unknowntool"),
    _R("context_length", "planning",
       error=r"context.?length|context window|maximum context|prompt is too long|"
             r"too many tokens"),
    _R("code_failed", "parameter_extraction", kind=_NOT_LLM, blame="caller", transient=True,
       error=r"code execution failed|execution failed|exitcode: *[1-9]|interpretererror|"
             r"agentexecutionerror|error in code parsing|agentparsingerror"),
    _R("bad_arguments", "parameter_extraction", kind=_NOT_LLM, blame="caller", transient=True,
       error=r"validation|invalid arg|missing (required )?(arg|param|field)|field required|"
             r"unexpected keyword|required (positional )?arg|schema|is not of type|typeerror|"
             r"invalid (value|param|input)|modelretry|" + _CODE.format("(400|422)")),
    # before timeout: an HTTP 504 Gateway Timeout is the server's error, not the client's
    _R("server_error", "tool_execution", transient=True, may_have_acted=True,
       error=_CODE.format(r"5(\d\d|xx)") + r"|server error|service unavailable|bad gateway|"
             r"overloaded|connection (error|reset|aborted)"),
    _R("timeout", "tool_execution", transient=True, may_have_acted=True,
       error=r"time.?out|timed out|deadline exceeded"),
    _R("rate_limit", "tool_execution", transient=True,
       error=_CODE.format("429") + r"|rate.?limit|too many requests|quota"),
    _R("permission", "tool_execution",
       error=_CODE.format("40[13]") + r"|forbidden|unauthori[sz]ed|permission|access denied"),
    _R("unparseable_output", "response_synthesis", kind="^llm$", transient=True,
       error=r"json|pars(e|ing)|decod|malformed|unexpected model behavio"),
    _R("judged_wrong", "response_synthesis", kind="^(evaluator|guardrail)$", blame="caller",
       error=r"."),
    # ---- role rules: the stage a step carries ------------------------------------------------
    _R("handoff", "handoff", name=r"handoff|transfer_to|delegate"),
    _R("human", "human", kind="^human$"),
    _R("retrieval", "retrieval", kind="^(retriever|embedding)$"),
    _R("tool", "tool_execution", kind="^tool$"),
    _R("llm_tool_call", "tool_selection", kind="^llm$", role="^tool_call$"),
    _R("llm_final", "response_synthesis", kind="^llm$", role="^final$"),
    _R("llm_plan", "planning", kind="^llm$"),
    _R("other", "other"),
)  # fmt: skip
"""The default stage table; see the module docstring for how it is read."""


def rules_frame(rules: Iterable[StageRule] = DEFAULT_RULES) -> pd.DataFrame:
    """The rules as a readable table, in the order they are tried.

    Returns:
        One row per rule: ``priority``, then the :class:`StageRule` fields.
    """
    rows = [asdict(r) for r in rules]
    frame = pd.DataFrame(rows, columns=[f.name for f in fields(StageRule)])
    frame.insert(0, "priority", range(len(frame)))
    return frame


def check_rules(rules: Sequence[StageRule] | None) -> tuple[StageRule, ...]:
    """The rules to use (the defaults for None).

    Raises:
        FailkitError: an item is not a :class:`StageRule`, or no role rule matches every step.
    """
    if rules is None:
        return DEFAULT_RULES
    out = tuple(rules)
    bad = [r for r in out if not isinstance(r, StageRule)]
    if bad:
        raise FailkitError(f"rules must be StageRule rows, got {bad[0]!r}")
    if not any(r.error is None and r.kind is r.role is r.name is None for r in out):
        raise FailkitError(
            "rules need a catch-all role rule last, e.g. StageRule('other', 'other'); "
            "extend failkit.stages.DEFAULT_RULES rather than replacing it"
        )
    return out


DEFAULT_NON_IDEMPOTENT: tuple[str, ...] = (
    r"^(send|post|book|create|update|delete|remove|charge|cancel|pay|refund|transfer|submit|"
    r"place|purchase|order|reserve|publish|insert|upload|write|modify|exchange)(_|$)",
    r"_(send|create|update|delete|remove|charge|cancel|pay|refund|transfer|submit|publish|"
    r"insert|upload|write)(_|$)",
)
"""Patterns (Python regex, searched in the snake_cased lowercase tool name) of tools whose
effect happens again when they are called again. ``send_email``, ``book_flight``,
``gmail_send_message``, ``cancelBooking`` match; ``get_booking``, ``search_posts`` do not."""

_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def snake(name: str) -> str:
    """A tool name as the idempotency patterns see it: camelCase → snake_case, lowercase."""
    return _CAMEL.sub(r"\1_\2", name).replace("-", "_").replace(".", "_").lower()


def non_idempotent(
    tool_names: Iterable[str | None], patterns: Sequence[str] | None = None
) -> set[str]:
    """The tool names among ``tool_names`` that match a non-idempotent pattern.

    Args:
        tool_names: tool names as logged.
        patterns: Python regular expressions searched in :func:`snake` of each name
            (exact names work too); None for :data:`DEFAULT_NON_IDEMPOTENT`.
    """
    compiled = [re.compile(p) for p in (DEFAULT_NON_IDEMPOTENT if patterns is None else patterns)]
    return {t for t in tool_names if t and any(c.search(snake(t)) or c.search(t) for c in compiled)}
