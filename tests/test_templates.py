"""Message templates: every masking rule on known examples, properties, and Drain merging."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from failkit.templates import MASK, MASKS, mask, templates


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("GET https://api.example.com/v1/x?id=7&q=a failed", "GET <*> failed"),
        ("no account for alice.smith@example.com", "no account for <*>"),
        ("run 123e4567-E89B-12d3-a456-426614174000 lost", "run <*> lost"),
        ("stalled at 2026-01-05T10:11:12.345Z", "stalled at <*>"),
        ("stalled at 2026-01-05 10:11:12+02:00 and 10:11:12", "stalled at <*> and <*>"),
        ("due on 2026-03-07", "due on <*>"),
        (r"cannot open C:\Users\bob\data.csv", "cannot open <*>"),
        ("cannot open /srv/agent/tools/http.py now", "cannot open <*> now"),
        ("read src/marshmallow/schema.py", "read <*>"),
        ("read rules/L031.py", "read <*>"),
        ("Tool 'gt_weather' not found", "Tool <*> not found"),
        ('missing key "booking_id"', "missing key <*>"),
        ("got ''", "got <*>"),
        ("input_value={'to': 'Seat change'}", "input_value={<*>}"),
        ("line 'x = f(1)' failed", "line <*> failed"),
        (
            "Client error '429 Too Many Requests' for url",
            "Client error '<*> Too Many Requests' for url",
        ),
        ("model's context and it's long", "model's context and it's long"),
        ("run `rm -rf x` refused", "run <*> refused"),
        ("bad pointer 0xDEADbeef", "bad pointer <*>"),
        ("trace 4bf92f3577b34da6a3ce929d0e0e4736 gone", "trace <*> gone"),
        ("customer cus_559229 owes 12.50 USD", "customer <*> owes <*> USD"),
        ("flight UA123 on python3.12", "flight <*> on <*>"),
        ("allowed: [1, 2, 3]", "allowed: [<*>]"),
        ("  many\n\tspaces   here ", "many spaces here"),
    ],
)
def test_each_rule_masks_what_it_names(message: str, expected: str) -> None:
    assert mask(pd.Series([message])).iloc[0] == expected


def test_rules_are_named_and_compile_as_python_patterns_too() -> None:
    names = [m.name for m in MASKS]
    assert len(names) == len(set(names))
    for m in MASKS:
        re.compile(m.pattern)


def test_missing_stays_missing_and_the_index_is_kept() -> None:
    s = pd.Series(["took 5s", None, float("nan"), 42], index=[10, 11, 12, 13])
    out = mask(s)
    assert out.index.tolist() == [10, 11, 12, 13]
    assert out.tolist()[0] == "took <*>"
    assert out.iloc[1] is None and out.iloc[2] is None
    assert out.iloc[3] == MASK
    assert mask([]).empty


def test_long_messages_keep_their_first_tokens() -> None:
    text = "error " + " ".join(["word"] * 100)
    assert mask([text], max_tokens=5).iloc[0] == "error word word word word"


@settings(max_examples=200, deadline=None)
@given(hs.lists(hs.text(max_size=80), min_size=1, max_size=5))
def test_no_ascii_digit_survives_and_masking_is_idempotent(texts: list[str]) -> None:
    once = mask(texts)
    assert not any(re.search(r"[0-9]", t) for t in once)
    assert mask(once).tolist() == once.tolist()


def test_drain_merges_messages_that_differ_in_one_word() -> None:
    out = templates(
        [
            "InterpreterError: Import of inspect is not allowed",
            "InterpreterError: Import of os is not allowed",
            "TimeoutError: request to https://x.io/a timed out after 30s",
        ]
    )
    assert out.tolist() == [
        "InterpreterError: Import of <*> is not allowed",
        "InterpreterError: Import of <*> is not allowed",
        "TimeoutError: request to <*> timed out after <*>",
    ]


def test_drain_keeps_kinds_apart_that_share_most_words() -> None:
    out = templates(
        [
            "Client error '429 Too Many Requests' for url 'https://a.io/x'",
            "Server error '500 Internal Server Error' for url 'https://a.io/y'",
        ]
    )
    assert out.nunique() == 2


@settings(max_examples=25, deadline=None)
@given(hs.permutations(
    [
        "Import of inspect is not allowed", "Import of os is not allowed",
        "Import of sys is not allowed", "Tool 'a' not found", "Tool 'b' not found",
        "request to https://x.io/1 timed out", None, "disk /dev/sda1 full",
    ]
))  # fmt: skip
def test_templates_do_not_depend_on_message_order(messages: list[str | None]) -> None:
    ordered = sorted(messages, key=str)
    expected = dict(zip(ordered, templates(ordered), strict=True))
    got = templates(messages)
    assert got.tolist() == [expected[m] for m in messages]
