"""Failure modes on small known-good runs and on the synthetic agent's ground truth."""

from __future__ import annotations

import tempfile
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import pytest
from _chain_frames import frame, span, store

import failkit as fk
from failkit import failures, synth
from failkit.charts import chart_mode_heatmap, chart_mode_pareto, chart_mode_trend
from failkit.errors import FailkitError
from failkit.evaluate import (
    AGREEMENT_COLUMNS,
    CONTINGENCY_COLUMNS,
    compare_to_labels,
    synth_mode_labels,
)
from failkit.failures import (
    MODE_COLUMNS,
    STABILITY_COLUMNS,
    SUMMARY_COLUMNS,
    failure_mode_stability,
)
from failkit.templates import mask

SYNTH_RUNS = 1000
SEEDS = (0, 1, 2)


def _tool_run(trace: str, t: float, tool: str, error_type: str, message: str) -> list[dict]:
    """A run whose only tool call fails: root, LLM call, tool span with the error."""
    return [
        span(trace, f"{trace}-root", None, "agent", t, duration_s=5),
        span(trace, f"{trace}-llm", f"{trace}-root", "llm", t + 0.1, cost_usd=0.01),
        span(
            trace, f"{trace}-tool", f"{trace}-root", "tool", t + 1.5, status="error",
            tool_name=tool, error_type=error_type, error_message=message, duration_s=2.0,
        ),
    ]  # fmt: skip


_VALIDATION = (
    "1 validation error for {model}\n{field}\n  Field required [type=missing, "
    "input_value={{}}, input_type=dict]\n    For further information visit "
    "https://errors.pydantic.dev/2.11/v/missing"
)
KNOWN_RUNS = [
    ("r1", "get_weather", "TimeoutError", "request to https://a.io/w?c=Oslo timed out after 30s"),
    ("r2", "book_flight", "TimeoutError", "request to https://a.io/f/UA1/book timed out after 30s"),
    ("r3", "send_email", "ValidationError", _VALIDATION.format(model="SendEmailArgs", field="to")),
    ("r4", "get_booking", "ValidationError",
     _VALIDATION.format(model="GetBookingArgs", field="booking_id")),
    ("r5", "charge_card", "429", "Client error '429 Too Many Requests' for url 'https://a.io/c'"),
]  # fmt: skip


@pytest.fixture(scope="module")
def known() -> pd.DataFrame:
    """Five runs: two timeouts and two missing arguments on different tools, a rate limit."""
    rows = [r for i, (t, *rest) in enumerate(KNOWN_RUNS) for r in _tool_run(t, 60.0 * i, *rest)]
    return fk.failure_modes(frame(*rows))


def test_modes_are_kinds_of_failure_with_tools_as_a_breakdown(known: pd.DataFrame) -> None:
    assert list(known.columns) == MODE_COLUMNS
    assert known["span_id"].tolist() == [f"r{i}-tool" for i in range(1, 6)]
    by_run = known.set_index("trace_id")
    assert by_run.loc["r1", "mode_id"] == by_run.loc["r2", "mode_id"]
    assert by_run.loc["r3", "mode_id"] == by_run.loc["r4", "mode_id"]
    assert known["mode_id"].nunique() == 3
    assert by_run["category"].tolist() == [
        "timeout", "timeout", "bad_arguments", "bad_arguments", "rate_limit",
    ]  # fmt: skip
    assert by_run.loc["r1", "mode_label"] == "timeout: request to <*> timed out after <*>"
    assert by_run.loc["r1", "template"] == "request to <*> timed out after <*>"
    assert by_run.loc["r3", "stage"] == "parameter_extraction"
    assert known["is_first_failure"].all()
    assert not known["recovered"].any() and not known["silent"].any()
    assert known["mode_id"].str.fullmatch(r"[0-9a-f]{12}").all()


def test_mode_ids_do_not_depend_on_the_other_runs_or_on_row_order(known: pd.DataFrame) -> None:
    rows = [r for i, (t, *rest) in enumerate(KNOWN_RUNS) for r in _tool_run(t, 60.0 * i, *rest)]
    spans = frame(*rows)
    shuffled = fk.failure_modes(spans.sample(frac=1.0, random_state=3))
    pd.testing.assert_frame_equal(shuffled, known)
    part = fk.failure_modes(spans.loc[spans["trace_id"] != "r5"])
    pd.testing.assert_series_equal(part["mode_id"], known["mode_id"].iloc[:4])


def test_recovered_errors_are_events_and_propagated_copies_are_not(tmp_path: Path) -> None:
    rows = [
        span("a", "root", None, "agent", 0, duration_s=9, status="error",
             error_type="TimeoutError", error_message="request to https://x.io/1 timed out"),
        span("a", "llm", "root", "llm", 0.1),
        span("a", "t1", "root", "tool", 1, status="error", tool_name="get_weather",
             error_type="TimeoutError", error_message="request to https://x.io/1 timed out"),
        span("a", "t2", "root", "tool", 2, tool_name="get_weather"),
        span("a", "t3", "root", "tool", 3, status="error", tool_name="get_news",
             error_type="TimeoutError", error_message="request to https://x.io/2 timed out"),
    ]  # fmt: skip
    out = fk.failure_modes(frame(*rows))
    assert out["span_id"].tolist() == ["t1", "t3"]
    assert out["recovered"].tolist() == [True, False]
    assert out["is_first_failure"].tolist() == [False, True]
    assert out["mode_id"].nunique() == 1


def test_silent_failures_form_one_mode_per_stage(tmp_path: Path) -> None:
    rows = [
        span("s", "root", None, "agent", 0, duration_s=9),
        span("s", "plan", "root", "llm", 0.1),
        span("s", "call", "root", "llm", 1),
        span("s", "tool", "root", "tool", 2, tool_name="get_weather"),
        span("s", "answer", "root", "llm", 3),
    ]
    s = store(tmp_path, rows, outcomes={"s": "failure"})
    out = fk.failure_modes(s)
    assert out["span_id"].tolist() == ["answer"]
    row = out.iloc[0]
    assert (row["category"], row["stage"], row["silent"]) == (
        "silent", "response_synthesis", True,
    )  # fmt: skip
    assert row["mode_label"] == "silent failure in response_synthesis (no error raised)"
    assert pd.isna(row["template"])


def test_judge_comments_are_events_clustered_by_text(tmp_path: Path) -> None:
    rows = [span("j", "root", None, "agent", 0, duration_s=9)] + [
        span("j", f"l{i}", "root", "llm", 1 + i) for i in range(4)
    ]
    said = [
        ("l0", "The answer invents a booking reference nobody returned"),
        ("l1", "Answer invents a booking reference (hallucinated)"),
        ("l2", "Called the weather tool for the wrong city"),
        ("l3", "Wrong city passed to the weather tool"),
    ]
    labels = [
        {"trace_id": "j", "span_id": sid, "name": "judge", "value": "bad", "comment": c}
        for sid, c in said
    ]
    s = store(tmp_path, rows, outcomes={"j": "failure"}, labels=labels)
    out = fk.failure_modes(s, label_names=("judge",)).set_index("span_id")
    assert out.loc[["l0", "l1", "l2", "l3"], "category"].eq("judged").all()
    assert out.loc["l0", "mode_id"] == out.loc["l1", "mode_id"] != out.loc["l2", "mode_id"]
    assert out.loc["l2", "mode_id"] == out.loc["l3", "mode_id"]
    assert out.loc["l0", "mode_label"].startswith("judged: ")
    assert fk.failure_modes(s)["category"].tolist() == ["silent"]  # no label_names: no text


def test_gateway_timeout_is_a_server_error_not_a_timeout() -> None:
    """Regression: ``504 Gateway Timeout`` matched the stage table's timeout rule before its
    server_error rule. A 504 is a response from the server (synth's truth calls it
    ``server_error``), a client-side TimeoutError got none: they are different failures."""
    server = "Server error '{}' for url 'https://a.io/w'"
    rows = [
        *_tool_run("g", 0, "get_weather", "HTTPStatusError", server.format("504 Gateway Timeout")),
        *_tool_run(
            "s", 60, "get_news", "HTTPStatusError", server.format("503 Service Unavailable")
        ),
        *_tool_run("t", 120, "get_weather", "TimeoutError", "request to https://a.io/w timed out"),
    ]
    out = fk.failure_modes(frame(*rows)).set_index("trace_id")
    assert out["category"].to_dict() == {"g": "server_error", "s": "server_error", "t": "timeout"}
    assert out.loc["g", "mode_id"] != out.loc["t", "mode_id"]


def test_large_categories_are_clustered_on_a_seeded_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above MAX_EXACT distinct texts, a sample is clustered and the rest join the nearest."""
    themes = ("booking reference invented by the answer", "weather tool called for wrong city")
    said = [f"{themes[i % 2]} note{w}{w}" for i, w in enumerate("abcdefghijklmnopqrstuvwx")]
    rows = [span("j", "root", None, "agent", 0, duration_s=99)] + [
        span("j", f"l{i:02d}", "root", "llm", 1 + i) for i in range(len(said))
    ]
    labels = [
        {"trace_id": "j", "span_id": f"l{i:02d}", "name": "judge", "comment": c + f" x{i}y"}
        for i, c in enumerate(said)
    ]
    s = store(tmp_path, rows, outcomes={"j": "failure"}, labels=labels)
    exact = fk.failure_modes(s, label_names=("judge",))
    monkeypatch.setattr(failures, "MAX_EXACT", 6)
    sampled = [fk.failure_modes(s, label_names=("judge",), seed=seed) for seed in (0, 0, 1)]
    pd.testing.assert_frame_equal(sampled[0], sampled[1])
    assert len(set(mask(exact["template"]))) == len(said) > failures.MAX_EXACT
    for out in (exact, *sampled):
        assert out["mode_id"].nunique() == 2
        assert (out["mode_id"].iloc[::2].nunique(), out["mode_id"].iloc[1::2].nunique()) == (1, 1)


def test_messages_without_words_still_get_a_mode() -> None:
    rows = [
        r for i, msg in enumerate(["12345", "6789", "0x1f"])
        for r in _tool_run(f"n{i}", 10.0 * i, "t", None, msg)
    ]  # fmt: skip
    out = fk.failure_modes(frame(*rows))
    assert out["template"].tolist() == ["<*>"] * 3
    assert out["category"].tolist() == ["error"] * 3
    assert out["mode_id"].nunique() == 1
    assert out["mode_label"].iloc[0] == "error: <*>"


def test_empty_in_empty_out_with_columns(tmp_path: Path) -> None:
    ok = frame(span("o", "root", None, "agent", 0), span("o", "llm", "root", "llm", 1))
    assert list(fk.failure_modes(ok).columns) == MODE_COLUMNS
    assert fk.failure_modes(ok).empty
    summary = fk.failure_mode_summary(ok)
    assert summary.empty and list(summary.columns) == SUMMARY_COLUMNS
    none = fk.steps(ok).iloc[:0]
    assert fk.failure_modes(none).empty


def test_bad_labels_frame_says_what_is_missing(known: pd.DataFrame) -> None:
    with pytest.raises(FailkitError, match="no span_id, comment column"):
        fk.failure_modes(known, labels=pd.DataFrame({"trace_id": [], "name": []}))


def test_trend_compares_the_later_half_with_the_earlier(tmp_path: Path) -> None:
    early = [
        r for i in range(4)
        for r in _tool_run(f"e{i}", 10.0 * i, "get_news", "TimeoutError", "x timed out")
    ]  # fmt: skip
    late = [
        r for i in range(4)
        for r in _tool_run(f"l{i}", 100 + 10.0 * i, "get_news", "403", "403 Forbidden")
    ]  # fmt: skip
    out = fk.failure_mode_summary(frame(*early, *late)).set_index("category")
    assert out.loc["permission", "trend"] == pytest.approx((4.5 / 4) / (0.5 / 4))
    assert out.loc["timeout", "trend"] == pytest.approx((0.5 / 4) / (4.5 / 4))


# -- the synthetic agent --------------------------------------------------------------------


@pytest.fixture(scope="module", params=SEEDS)
def synth_case(
    request: pytest.FixtureRequest,
) -> tuple[fk.TraceStore, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(store, steps, failure modes from the traces alone, true modes as labels) of 1k
    synthetic runs of one seed; the store also holds the synthetic judge's verdicts."""
    result = synth.sample(SYNTH_RUNS, seed=request.param)
    with tempfile.TemporaryDirectory() as tmp:
        files = result.write(tmp, formats=("jsonl",))
        s = fk.connect()
        s.ingest(files["jsonl"], progress=False)
    st = fk.steps(s)
    return s, st, fk.failure_modes(st), synth_mode_labels(result)


def test_synth_modes_match_the_true_modes(
    synth_case: tuple[fk.TraceStore, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    """ARI >= 0.95 on failures that raised an error; from the traces alone, silent ones are
    told apart by stage only."""
    _, _, modes, truth = synth_case
    on_steps = truth.loc[truth["span_id"].notna()]
    detectable = compare_to_labels(modes.loc[~modes["silent"]], on_steps, label_name="failure_mode")
    every = compare_to_labels(modes, truth, label_name="failure_mode")
    assert list(detectable.scores.columns) == AGREEMENT_COLUMNS
    assert list(detectable.contingency.columns) == CONTINGENCY_COLUMNS
    d, a = detectable.scores.iloc[0], every.scores.iloc[0]
    assert d["ari"] >= 0.97 and d["nmi"] >= 0.97
    assert d["n_compared"] == len(on_steps)  # every true error event is an event
    assert a["ari"] >= 0.75  # five silent modes in three stage modes, some located wrongly
    assert a["n_compared"] == len(truth)
    assert modes["mode_id"].nunique() <= 15


def test_synth_judge_verdicts_tell_silent_modes_apart(
    synth_case: tuple[fk.TraceStore, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    """With the synthetic judge's verdicts (varied comments, on the run or on the blamed
    span, missing for some runs), ARI >= 0.9 over every failure event, silent ones included;
    the modes of errors do not change."""
    s, _, plain, truth = synth_case
    st = fk.steps(s, label_names=("judge",))
    modes = fk.failure_modes(st, label_names=("judge",), labels=s.labels_df())
    every = compare_to_labels(modes, truth, label_name="failure_mode").scores.iloc[0]
    assert every["ari"] >= 0.9 and every["n_compared"] == len(truth)
    verdicts = s.labels_df().query("name == 'judge'")
    on_span = verdicts["span_id"].notna()
    assert st["heuristic"].eq("label:judge").sum() == on_span.sum()
    assert modes["category"].eq("judged").sum() >= 0.95 * len(verdicts)
    errors = plain.loc[~plain["silent"], ["span_id", "mode_id"]]
    pd.testing.assert_frame_equal(
        modes.loc[~modes["silent"], ["span_id", "mode_id"]].reset_index(drop=True),
        errors.reset_index(drop=True),
    )


def test_synth_summary_adds_up(
    synth_case: tuple[fk.TraceStore, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    _, st, modes, _ = synth_case
    out = fk.failure_mode_summary(st, modes=modes)
    assert list(out.columns) == SUMMARY_COLUMNS
    n_failed = int(st["is_first_failure"].sum())
    assert out["n_failed_runs"].sum() == n_failed
    assert out["share_of_failed_runs"].sum() == pytest.approx(1.0)
    assert out["n_events"].sum() == len(modes)
    assert out["n_failed_runs"].is_monotonic_decreasing
    costed = ~st["kind"].isin(["agent", "chain"])
    assert 0 < out["wasted_cost_usd"].sum() <= st.loc[costed, "cost_usd"].sum() + 1e-9
    assert out[["first_failure_share", "recovered_share"]].stack().between(0, 1).all()
    for row in out.itertuples():
        events = modes.loc[modes["mode_id"] == row.mode_id]
        assert set(row.example_trace_ids) <= set(events["trace_id"])
        assert set(row.top_tools) <= set(events["tool_name"].dropna())
        assert row.first_seen <= row.last_seen
    assert (out["trend"] > 0).all()


def test_synth_modes_are_stable_under_resampling(
    synth_case: tuple[fk.TraceStore, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    _, st, _, _ = synth_case
    out = failure_mode_stability(st, n_resamples=3, seed=1)
    assert list(out.columns) == STABILITY_COLUMNS
    assert (out["ari"] >= 0.95).all()
    assert (out["same_id_share"] >= 0.9).all()  # a canonical template may flip


# -- agreement with labels --------------------------------------------------------------------


def test_compare_to_labels_joins_steps_and_runs() -> None:
    modes = pd.DataFrame(
        {
            "trace_id": ["a", "a", "b", "c"],
            "span_id": ["1", "2", "3", "4"],
            "mode_id": ["m1", "m2", "m1", "m2"],
            "mode_label": ["one", "two", "one", "two"],
            "is_first_failure": [True, False, True, True],
        }
    )
    labels = pd.DataFrame(
        {
            "trace_id": ["a", "b", "c", "d", "a"],
            "span_id": ["2", "3", None, None, "9"],
            "name": ["cat"] * 5,
            "value": ["Y", "X", "Y", "X", "X"],
        }
    )
    out = compare_to_labels(modes, labels, label_name="cat")
    s = out.scores.iloc[0]
    assert (s["n_labels"], s["n_compared"], s["n_categories"], s["n_modes"]) == (5, 3, 2, 2)
    assert s["ari"] == pytest.approx(1.0) and s["nmi"] == pytest.approx(1.0)
    assert out.contingency.to_dict("records") == [
        {"category": "Y", "mode_id": "m2", "mode_label": "two", "n": 2},
        {"category": "X", "mode_id": "m1", "mode_label": "one", "n": 1},
    ]
    none = compare_to_labels(modes, labels, label_name="other").scores.iloc[0]
    assert none["n_compared"] == 0 and np.isnan(none["ari"])


# -- charts ----------------------------------------------------------------------------------


def test_mode_charts_are_specs(known: pd.DataFrame) -> None:
    summary = fk.failure_mode_summary(known, modes=known)
    assert chart_mode_pareto(summary, by="wasted_cost_usd").to_dict()["layer"]
    for by in ("n_failed_runs", "n_events"):
        spec = chart_mode_pareto(summary, by=by).to_dict()
        assert len(spec["layer"]) == 2
        (values,) = spec["datasets"].values()
        assert [v["value"] for v in values] == sorted((v["value"] for v in values), reverse=True)
        assert values[-1]["cumulative_share"] == pytest.approx(1.0)
    with pytest.raises(FailkitError, match="by must be one of"):
        chart_mode_pareto(summary, by="colour")
    for by in ("stage", "tool_name"):
        heat = chart_mode_heatmap(known, by=by)
        assert isinstance(heat, alt.Chart)
        spec = heat.to_dict()
        assert spec["encoding"]["x"]["field"] == by
        (values,) = spec["datasets"].values()
        assert sum(v["n_events"] for v in values) == len(known)
    trend = chart_mode_trend(known).to_dict()
    (values,) = trend["datasets"].values()
    assert sum(v["n_events"] for v in values) == len(known)
    assert trend["mark"]["type"] == "line"
    for chart in (chart_mode_heatmap(known.iloc[:0]), chart_mode_trend(known.iloc[:0])):
        assert chart.to_dict()["mark"]
