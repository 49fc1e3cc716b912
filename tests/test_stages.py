"""The stage table: defaults, attribution of failures to the stage that caused them, extension."""

from __future__ import annotations

import pandas as pd
import pytest
from _chain_frames import frame, span

import failkit as fk
from failkit.stages import (
    DEFAULT_NON_IDEMPOTENT,
    DEFAULT_RULES,
    STAGES,
    StageRule,
    check_rules,
    non_idempotent,
    rules_frame,
    snake,
)


def test_rules_frame_lists_every_rule_in_order() -> None:
    table = rules_frame()
    assert list(table.columns) == [
        "priority", "id", "stage", "kind", "role", "name", "error", "blame", "transient",
        "may_have_acted",
    ]  # fmt: skip
    assert table["priority"].tolist() == list(range(len(DEFAULT_RULES)))
    assert table["id"].is_unique
    assert set(table["stage"]) <= set(STAGES)
    assert table["id"].iloc[-1] == "other"  # the catch-all comes last


def _failing_tool_run(kind: str, error_type: str, message: str) -> pd.DataFrame:
    """Agent → plan → LLM writing call c1 → the failing step → a second LLM (no tool)."""
    return frame(
        span("r", "root", None, "agent", 0, duration_s=9),
        span("r", "plan", "root", "llm", 0.1, input="q"),
        span("r", "call", "root", "llm", 1, output='[{"tool_call": {"id": "c1"}}]'),
        span(
            "r",
            "bad",
            "root",
            kind,
            2,
            status="error",
            error_type=error_type,
            error_message=message,
            tool_name="search" if kind == "tool" else None,
            tool_call_id="c1",
        ),
        span("r", "later", "root", "llm", 3),
    )


@pytest.mark.parametrize(
    ("kind", "error_type", "message", "stage", "rule", "cause"),
    [
        ("tool", "ModelBehaviorError", "Tool 'serch' not found; available: search",
         "tool_selection", "unknown_tool", "call"),
        ("tool", "ValidationError", "1 validation error for SearchArgs\nq\n  Field required",
         "parameter_extraction", "bad_arguments", "call"),
        ("tool", "TimeoutError", "request to https://x/y timed out after 30s",
         "tool_execution", "timeout", "bad"),
        ("tool", "429", "Client error '429 Too Many Requests' for url", "tool_execution",
         "rate_limit", "bad"),
        ("tool", "503", "Server error '503 Service Unavailable'", "tool_execution",
         "server_error", "bad"),
        ("tool", "403", "Client error '403 Forbidden'", "tool_execution", "permission", "bad"),
        ("tool", "KeyError", "'q'", "tool_execution", "tool", "bad"),
        ("llm", "BadRequestError", "This model's maximum context length is 128000 tokens",
         "planning", "context_length", "bad"),
        ("llm", "JSONDecodeError", "Expecting ',' delimiter: line 1 column 534 (char 533)",
         "response_synthesis", "unparseable_output", "bad"),
        ("llm", "RateLimitError", "Error code: 429 - rate_limit_error", "tool_execution",
         "rate_limit", "bad"),
        ("tool", None, "exitcode: 1 (execution failed)\nTraceback ... NameError",
         "parameter_extraction", "code_failed", "call"),
    ],
)  # fmt: skip
def test_failures_are_blamed_on_the_stage_that_caused_them(
    kind: str, error_type: str | None, message: str, stage: str, rule: str, cause: str
) -> None:
    st = fk.steps(_failing_tool_run(kind, error_type, message)).set_index("span_id")
    assert (st.loc["bad", "stage"], st.loc["bad", "rule"]) == (stage, rule)
    assert st.loc["bad", "cause_span_id"] == cause


def test_roles_of_steps_that_did_not_fail() -> None:
    st = fk.steps(
        frame(
            span("r", "root", None, "agent", 0, duration_s=9),
            span("r", "plan", "root", "llm", 0.1),
            span("r", "ret", "root", "retriever", 0.5),
            span("r", "call", "root", "llm", 1),
            span("r", "tool", "root", "tool", 2, tool_name="get_weather"),
            span("r", "hand", "root", "tool", 3, tool_name="transfer_to_billing"),
            span("r", "review", "root", "human", 4),
            span("r", "answer", "root", "llm", 5),
        )
    )
    assert dict(zip(st["span_id"], st["stage"], strict=True)) == {
        "root": "other",
        "plan": "planning",
        "ret": "retrieval",
        "call": "tool_selection",
        "tool": "tool_execution",
        "hand": "handoff",
        "review": "human",
        "answer": "response_synthesis",
    }


def test_a_code_agent_step_blames_the_llm_call_inside_it() -> None:
    """smolagents records code errors on the step span whose child LLM call wrote the code."""
    st = fk.steps(
        frame(
            span("r", "s1", None, "chain", 0, duration_s=2),
            span("r", "l1", "s1", "llm", 0.1),
            span(
                "r",
                "s2",
                None,
                "chain",
                3,
                duration_s=2,
                status="error",
                error_type="AgentExecutionError",
                error_message="Code execution failed at line",
            ),
            span("r", "l2", "s2", "llm", 3.1),
        )
    ).set_index("span_id")
    assert st.loc["s2", "stage"] == "parameter_extraction"
    assert st.loc["s2", "cause_span_id"] == "l2"


def test_user_rules_come_first() -> None:
    mine = StageRule("quota", "planning", error="insufficient_quota")
    run = _failing_tool_run("tool", "429", "insufficient_quota: you ran out of credit")
    default = fk.steps(run).set_index("span_id").loc["bad"]
    custom = fk.steps(run, rules=[mine, *DEFAULT_RULES]).set_index("span_id").loc["bad"]
    assert (default["stage"], default["rule"]) == ("tool_execution", "rate_limit")
    assert (custom["stage"], custom["rule"]) == ("planning", "quota")


def test_bad_rules_are_refused_with_a_fix() -> None:
    with pytest.raises(fk.FailkitError, match="unknown stage 'nonsense'"):
        StageRule("x", "nonsense")
    with pytest.raises(fk.FailkitError, match="bad error pattern"):
        StageRule("x", "other", error="(")
    with pytest.raises(fk.FailkitError, match="blame"):
        StageRule("x", "other", blame="nobody")  # type: ignore[arg-type]
    with pytest.raises(fk.FailkitError, match="StageRule rows"):
        check_rules([("x", "other")])  # type: ignore[list-item]
    with pytest.raises(fk.FailkitError, match="catch-all"):
        check_rules([StageRule("t", "tool_execution", kind="tool")])
    assert check_rules(None) is DEFAULT_RULES


def test_non_idempotent_tools() -> None:
    names = [
        "send_email", "book_flight", "charge_card", "cancel_booking", "post_message",
        "gmail_send_message", "createTicket", "get_booking", "search_posts", "get_weather",
        "list_orders", None, "",
    ]  # fmt: skip
    assert non_idempotent(names) == {
        "send_email", "book_flight", "charge_card", "cancel_booking", "post_message",
        "gmail_send_message", "createTicket",
    }  # fmt: skip
    assert non_idempotent(names, ["^get_weather$"]) == {"get_weather"}
    assert snake("cancelBooking") == "cancel_booking"
    assert DEFAULT_NON_IDEMPOTENT  # a documented default exists
