"""failkit.synth: determinism, requested rates, ground truth vs spans, file formats."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from failkit.errors import FailkitError
from failkit.schema import LabelRecord, SpanRecord, TraceRecord
from failkit.synth import (
    FILE_NAMES,
    MODES,
    AgentDesign,
    SynthResult,
    World,
    generate,
    sample,
    tool_factor,
    toolset,
    write_sample,
)
from failkit.synth.catalog import MODE_INDEX
from failkit.synth.engine import NO_MODE, ROLE_CALL, ROLE_FINAL, ROLE_PLAN, ROLE_TOOL, mode_rates
from failkit.synth.judge import JUDGE_COLUMNS, JUDGE_NAME, VAGUE_COMMENTS
from failkit.synth.render import misspell

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SIGMAS = 4.0
"""Tolerance of the statistical checks, in standard errors."""

WORLD = World(n_tasks=300, trials=5, seed=3)
DESIGN = AgentDesign(name="checked", checkpoint_tools=("book_flight", "charge_card"))


@pytest.fixture(scope="module")
def result() -> SynthResult:
    return generate(WORLD, DESIGN)


@pytest.fixture(scope="module")
def files(result: SynthResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return result.write(tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="module")
def big() -> SynthResult:
    """A larger world for rate checks (simulated, never written)."""
    return generate(World(n_tasks=4000, trials=5, seed=11), AgentDesign(name="big"))


@pytest.fixture(scope="module")
def otlp(files: dict[str, Path]) -> list[tuple[int, dict]]:
    """(line number, span) of every span in the OTLP JSON lines file, in file order."""
    out = []
    for i, line in enumerate(files["otlp"].read_text().splitlines()):
        doc = json.loads(line)
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                out += [(i, s) for s in ss["spans"]]
    return out


@pytest.fixture(scope="module")
def records(files: dict[str, Path]) -> list[dict]:
    """Every record of the failkit JSONL file, in file order."""
    return [json.loads(line) for line in files["jsonl"].read_text().splitlines()]


@pytest.fixture(scope="module")
def native(records: list[dict]) -> dict[str, dict]:
    """failkit JSONL span records by span id."""
    return {r["span_id"]: r for r in records if r["type"] == "span"}


def _attrs(span: dict) -> dict:
    """OTLP attributes as {key: (value type, value)}."""
    return {a["key"]: next(iter(a["value"].items())) for a in span["attributes"]}


def _within(observed: float, expected: float, variance: float, what: str) -> None:
    tolerance = SIGMAS * np.sqrt(variance) + 1e-9
    assert abs(observed - expected) <= tolerance, (
        f"{what}: observed {observed}, expected {expected} ± {tolerance}"
    )


# --- determinism and worlds ---------------------------------------------------------------


def test_fixed_seed_gives_identical_bytes(files: dict[str, Path], tmp_path: Path) -> None:
    again = generate(WORLD, DESIGN).write(tmp_path)
    for key in FILE_NAMES:
        assert again[key].read_bytes() == files[key].read_bytes(), key


def test_other_seed_gives_other_bytes(files: dict[str, Path], tmp_path: Path) -> None:
    world_seed = generate(WORLD.model_copy(update={"seed": 4}), DESIGN)
    design_seed = generate(WORLD, DESIGN.model_copy(update={"seed": 1}))
    for i, other in enumerate((world_seed, design_seed)):
        paths = other.write(tmp_path / str(i), formats=("otlp", "jsonl"))
        for key in ("otlp", "jsonl"):
            assert paths[key].read_bytes() != files[key].read_bytes()


def test_same_world_under_two_designs(result: SynthResult) -> None:
    other = generate(WORLD, AgentDesign(name="other", structured_outputs=True, n_tools=8))
    a, b = result.truth, other.truth
    for col in ("task_id", "trial", "difficulty", "n_rounds"):
        assert a[col].tolist() == b[col].tolist(), col
    assert (result.population.run_start_us == other.population.run_start_us).all()
    assert set(a["trace_id"]).isdisjoint(b["trace_id"])
    assert set(a["design"]) == {"checked"} and set(b["design"]) == {"other"}


def test_trials_per_task(result: SynthResult) -> None:
    per_task = result.truth.groupby("task_id")["trial"].agg(sorted)
    assert len(per_task) == WORLD.n_tasks
    assert all(t == list(range(1, WORLD.trials + 1)) for t in per_task)


# --- requested rates ----------------------------------------------------------------------


def test_mode_rates_scale_with_difficulty_quality_and_tools() -> None:
    world = World(n_tasks=50, seed=1)
    pop_d = np.linspace(0.0, 0.6, 50)
    base = mode_rates(world, AgentDesign(n_tools=8), pop_d)
    mean = world.difficulty_a / (world.difficulty_a + world.difficulty_b)
    expected = pop_d[:, None] / mean * np.array([m.rate for m in MODES])[None, :]
    assert np.allclose(base, expected)
    more_tools = mode_rates(world, AgentDesign(n_tools=32), pop_d)
    worse = mode_rates(world, AgentDesign(n_tools=8, model_quality={"tool_execution": 2}), pop_d)
    for i, m in enumerate(MODES):
        want = tool_factor(32) if m.stage == "tool_selection" else 1.0
        assert np.allclose(more_tools[:, i], base[:, i] * want), m.name
        want = 2.0 if m.stage == "tool_execution" else 1.0
        assert np.allclose(worse[:, i], base[:, i] * want), m.name
    assert tool_factor(8) == 1 and tool_factor(16) == 2 and tool_factor(32) == 3
    structured = mode_rates(world, AgentDesign(structured_outputs=True), pop_d)
    for name in ("unparseable_output", "invalid_argument_type"):
        assert (structured[:, MODE_INDEX[name]] == 0).all()


def test_rates_cap_a_steps_failure_probability() -> None:
    world = World(n_tasks=10)
    p = mode_rates(world, AgentDesign(model_quality={"tool_execution": 100}), np.ones(10))
    exec_modes = [i for i, m in enumerate(MODES) if m.stage == "tool_execution"]
    assert np.allclose(p[:, exec_modes].sum(axis=1), 0.9)


@pytest.mark.parametrize("role", [ROLE_PLAN, ROLE_CALL, ROLE_TOOL, ROLE_FINAL])
def test_fresh_attempts_fail_at_the_requested_rates(big: SynthResult, role: int) -> None:
    spans, rates = big.simulation.spans, big.simulation.rates
    fresh = np.flatnonzero((spans["role"] == role) & spans["fresh"])
    mode = spans["args_mode"] if role == ROLE_CALL else spans["mode"]
    p = rates[spans["run"][fresh]]
    stage_modes = {
        ROLE_PLAN: ("planning",),
        ROLE_CALL: ("tool_selection", "parameter_extraction"),
        ROLE_TOOL: ("tool_execution",),
        ROLE_FINAL: ("response_synthesis",),
    }[role]
    checked = 0
    for i, m in enumerate(MODES):
        if m.stage not in stage_modes:
            assert not (mode[fresh] == i).any()
            continue
        observed = int((mode[fresh] == i).sum())
        _within(observed, p[:, i].sum(), (p[:, i] * (1 - p[:, i])).sum(), m.name)
        checked += observed
    assert checked > 50


def test_retries_recover_at_the_requested_rates(big: SynthResult) -> None:
    spans = big.simulation.spans
    tools = pd.DataFrame({k: spans[k] for k in ("call", "mode", "retry", "role")})
    tools = tools[tools["role"] == ROLE_TOOL].reset_index(drop=True)
    tools["previous"] = tools.groupby("call")["mode"].shift()
    retried = tools[tools["retry"]]
    assert len(retried) > 100
    for mode, group in retried.groupby("previous"):
        m = MODES[int(mode)]
        assert m.transient, f"{m.name} is permanent but was retried"
        fixed = (group["mode"] == NO_MODE).to_numpy()
        n = fixed.size
        _within(fixed.sum(), n * m.recovery, n * m.recovery * (1 - m.recovery), m.name)
        assert set(group["mode"]) <= {NO_MODE, int(mode)}


def test_attempts_are_capped_per_stage(big: SynthResult) -> None:
    truth = big.span_truth
    limits = {"tool_execution": big.design.attempts("tool_execution")}
    tool_spans = truth[truth["role"] == "tool"]
    assert tool_spans["attempt"].max() <= limits["tool_execution"] + big.design.attempts(
        "parameter_extraction"
    ) + big.design.attempts("tool_selection")
    per_call = pd.Series(big.simulation.spans["call"][big.simulation.spans["role"] == ROLE_TOOL])
    assert per_call.value_counts().max() <= limits["tool_execution"]


def test_silent_failures_raise_no_error(result: SynthResult, native: dict[str, dict]) -> None:
    spans = native
    events = result.failure_events
    silent = events[events["silent"]]
    assert len(silent) > 20
    for span_id in silent["span_id"]:
        span = spans[span_id]
        assert span["status"] == "unset"
        assert span["kind"] in ("llm", "human")
    detected = events[~events["silent"] & (events["span_id"] != events["cause_span_id"])]
    assert len(detected) > 0
    for span_id, cause in zip(detected["span_id"], detected["cause_span_id"], strict=True):
        assert spans[cause]["kind"] == "llm"
        assert spans[span_id]["kind"] in ("tool", "human")
        if spans[span_id]["kind"] == "tool":
            assert spans[span_id]["status"] == "error"


def test_failed_silent_runs_end_without_error(result: SynthResult, native: dict[str, dict]) -> None:
    roots = {r["trace_id"]: r for r in native.values() if r["parent_id"] is None}
    truth = result.truth
    quiet = truth[(truth["outcome"] == "failure") & truth["silent"]]
    assert len(quiet) > 10
    for trace_id in quiet["trace_id"]:
        root = roots[trace_id]
        # a silent first failure can still be followed by a fatal error; most runs end quietly
        assert root["status"] in ("unset", "error")
    share_unset = np.mean([roots[t]["status"] == "unset" for t in quiet["trace_id"]])
    assert share_unset > 0.8


def test_duplicated_side_effects_need_a_non_idempotent_timeout_and_retry() -> None:
    world = World(
        n_tasks=400, trials=3, seed=5, mode_rates={"timeout": 0.2}, p_side_effect_on_timeout=1.0
    )
    res = generate(world, AgentDesign(max_attempts={"tool_execution": 3}))
    spans = res.simulation.spans
    tools = toolset(res.design.n_tools)
    tool = pd.DataFrame({k: spans[k] for k in ("run", "call", "tool", "mode", "acted", "role")})
    tool = tool[tool["role"] == ROLE_TOOL]
    acted = tool[tool["acted"]]
    assert not any(tools[t].idempotent for t in acted["tool"].unique())
    by_call = tool.groupby("call").agg(
        acted=("acted", "sum"),
        timeouts=("mode", lambda m: (m == MODE_INDEX["timeout"]).sum()),
        attempts=("mode", "size"),
        run=("run", "first"),
    )
    duplicated_calls = by_call[by_call["acted"] >= 2]
    assert len(duplicated_calls) > 10
    assert (duplicated_calls["timeouts"] >= 1).all()
    assert (duplicated_calls["attempts"] >= 2).all()
    flagged = set(np.flatnonzero(res.truth["duplicated_side_effect"].to_numpy()))
    assert flagged == set(duplicated_calls["run"])
    none = generate(world.model_copy(update={"p_side_effect_on_timeout": 0.0}))
    assert not none.truth["duplicated_side_effect"].any()
    single = generate(world, AgentDesign(max_attempts=1))
    assert not single.truth["duplicated_side_effect"].any()


def test_structured_outputs_remove_their_modes() -> None:
    res = generate(World(n_tasks=500, seed=2), AgentDesign(structured_outputs=True))
    modes = set(res.failure_events["failure_mode"])
    assert "unparseable_output" not in modes and "invalid_argument_type" not in modes
    assert "wrong_answer" in modes


def test_human_checkpoints_catch_and_cost(result: SynthResult) -> None:
    truth, spans = result.span_truth, result.simulation.spans
    humans = truth[truth["role"] == "human"]
    assert set(humans["tool"]) <= set(DESIGN.checkpoint_tools)
    events = result.failure_events
    by_human = events[events["recovered_by"] == "human"]
    assert len(by_human) > 0
    assert result.truth["n_human_catches"].sum() == int((spans["decision"] == 2).sum())
    human_cost = np.nansum(spans["cost"][spans["decision"] > 0])
    llm_cost = np.nansum(spans["cost"][spans["decision"] == 0])
    assert result.truth["cost_usd"].sum() == pytest.approx(human_cost + llm_cost)
    assert human_cost > 0


def test_perfect_reviewers_let_no_bad_call_through() -> None:
    design = AgentDesign(
        checkpoint_tools=tuple(t.name for t in toolset(16)), catch_rate=1.0, max_human_redos=50
    )
    res = generate(World(n_tasks=400, seed=9), design)
    events = res.failure_events
    through = events[
        ~events["recovered"]
        & events["failure_mode"].isin(
            ["wrong_tool", "wrong_argument_value", "missing_argument", "invalid_argument_type"]
        )
    ]
    assert through.empty


def test_confidence_calibration() -> None:
    def gap(calibration: float) -> tuple[float, float]:
        res = generate(World(n_tasks=600, seed=4), AgentDesign(confidence_calibration=calibration))
        spans = res.simulation.spans
        llm = np.isin(spans["role"], [ROLE_PLAN, ROLE_CALL, ROLE_FINAL])
        llm &= spans["mode"] != MODE_INDEX["context_length_exceeded"]  # no answer, no confidence
        right = llm & (spans["mode"] == NO_MODE)
        wrong = llm & (spans["mode"] != NO_MODE)
        c = spans["confidence"]
        se = np.sqrt(c[right].var() / right.sum() + c[wrong].var() / wrong.sum())
        return c[right].mean() - c[wrong].mean(), se

    informative, _ = gap(1.0)
    noise, se = gap(0.0)
    assert informative > 0.4
    assert abs(noise) < SIGMAS * se
    silent = generate(World(n_tasks=20), AgentDesign(log_confidence=False))
    assert np.isnan(silent.simulation.spans["confidence"]).all()


# --- ground truth vs spans ----------------------------------------------------------------


def test_truth_is_consistent(result: SynthResult) -> None:
    truth, events = result.truth, result.failure_events
    failed = truth["outcome"] == "failure"
    assert 0.05 < failed.mean() < 0.6
    assert truth.loc[failed, "failure_mode"].notna().all()
    assert truth.loc[~failed, ["first_failure_span_id", "failure_mode"]].isna().all().all()
    unrecovered = set(events.loc[~events["recovered"], "trace_id"])
    assert unrecovered == set(truth.loc[failed, "trace_id"])
    firsts = truth.loc[failed, ["trace_id", "first_failure_span_id", "failure_mode"]]
    ev = events.merge(
        firsts, left_on=["trace_id", "span_id"], right_on=["trace_id", "first_failure_span_id"]
    )
    assert (ev["failure_mode_x"] == ev["failure_mode_y"]).all()
    assert set(ev["trace_id"]) == set(firsts["trace_id"])
    assert (truth["n_spans"].sum()) == result.n_spans
    assert (truth["duration_s"] > 0).all()


def test_first_failure_spans_belong_to_their_run(result: SynthResult) -> None:
    spans = result.span_truth
    run_of = dict(zip(spans["span_id"], spans["trace_id"], strict=True))
    failed = result.truth[result.truth["outcome"] == "failure"]
    for col in ("first_failure_span_id", "first_failure_cause_span_id"):
        assert all(run_of[s] == t for s, t in zip(failed[col], failed["trace_id"], strict=True))
    validation = failed[failed["failure_mode"].isin(["missing_argument", "invalid_argument_type"])]
    role = dict(zip(spans["span_id"], spans["role"], strict=True))
    for span, cause in zip(
        validation["first_failure_span_id"], validation["first_failure_cause_span_id"], strict=True
    ):
        assert role[cause] == "tool_call" and role[span] in ("tool", "human")


def test_detectable_fatal_failures_error_the_root(
    result: SynthResult, native: dict[str, dict]
) -> None:
    roots = {r["trace_id"]: r for r in native.values() if r["parent_id"] is None}
    completed = result.simulation.completed
    truth = result.truth
    for trace_id, done in zip(truth["trace_id"], completed, strict=True):
        root = roots[trace_id]
        assert (root["status"] == "error") == (not done)
        if not done:
            assert root["events"][0]["name"] == "exception"
            assert (
                root["error_message"].split(":")[0]
                in root["events"][0]["attributes"]["exception.type"]
            )
    assert (~completed).sum() > 5


def test_labels_match_truth(
    result: SynthResult, files: dict[str, Path], records: list[dict]
) -> None:
    labels = pd.read_csv(files["labels"])
    assert list(labels.columns) == [
        "trace_id", "span_id", "name", "value", "score", "source", "comment",
    ]  # fmt: skip
    outcome = labels.loc[labels["name"] == "outcome"]
    truth = dict(zip(result.truth["trace_id"], result.truth["outcome"], strict=True))
    assert dict(zip(outcome["trace_id"], outcome["value"], strict=True)) == truth
    labels_in_file = [r for r in records if r["type"] == "label"]
    labelled = {r["trace_id"]: r["value"] for r in labels_in_file if r["name"] == "outcome"}
    assert labelled == truth
    judged = [r for r in labels_in_file if r["name"] == JUDGE_NAME]
    in_file = pd.DataFrame(judged)[JUDGE_COLUMNS].sort_values("trace_id", ignore_index=True)
    pd.testing.assert_frame_equal(
        in_file, result.judgments.sort_values("trace_id", ignore_index=True)
    )
    assert len(labels) == len(truth) + len(judged)
    csv = pd.read_csv(files["ground_truth"])
    assert csv["trace_id"].tolist() == result.truth["trace_id"].tolist()


# --- files --------------------------------------------------------------------------------


def test_otlp_file_shape(
    result: SynthResult, files: dict[str, Path], otlp: list[tuple[int, dict]]
) -> None:
    spans = otlp
    assert len(spans) == result.n_spans
    lines = files["otlp"].read_text().splitlines()
    sizes = Counter(i for i, _ in spans)
    assert all(50 <= sizes[i] <= 200 for i in range(len(lines) - 1))
    traces_per_line = defaultdict(set)
    lines_per_trace = defaultdict(set)
    position: dict[str, int] = {}
    for k, (i, s) in enumerate(spans):
        traces_per_line[i].add(s["traceId"])
        lines_per_trace[s["traceId"]].add(i)
        position[s["spanId"]] = k
        assert HEX32.match(s["traceId"]) and HEX16.match(s["spanId"])
        assert s["startTimeUnixNano"].isdigit() and s["endTimeUnixNano"].isdigit()
        assert int(s["startTimeUnixNano"]) <= int(s["endTimeUnixNano"])
        assert isinstance(s["kind"], int)
        for key, (vtype, value) in _attrs(s).items():
            assert "stage" not in key
            if vtype == "intValue":
                assert isinstance(value, str) and value.isdigit()
        if s["status"]:
            assert s["status"]["code"] == 2 and s["status"]["message"]
            (event,) = s["events"]
            event_attrs = _attrs(event)
            assert event["name"] == "exception"
            assert {"exception.type", "exception.message", "exception.stacktrace"} <= set(
                event_attrs
            )
            assert "error.type" in _attrs(s)
        else:
            assert "events" not in s and "error.type" not in _attrs(s)
    assert any(len(t) > 1 for t in traces_per_line.values())
    assert any(len(lines) > 1 for lines in lines_per_trace.values())
    ends = [int(s["endTimeUnixNano"]) for _, s in spans]
    assert ends == sorted(ends)
    for _, s in spans:
        if "parentSpanId" in s:
            assert position[s["spanId"]] < position[s["parentSpanId"]]


def test_otlp_genai_attributes(otlp: list[tuple[int, dict]]) -> None:
    by_op: dict[str, list[dict]] = defaultdict(list)
    for _, s in otlp:
        a = _attrs(s)
        op = a.get("gen_ai.operation.name", ("", "human"))[1]
        by_op[op].append(a)
        if op == "invoke_agent":
            assert "parentSpanId" not in s
            assert "failkit.task_id" in a and "gen_ai.conversation.id" in a
        else:
            assert "parentSpanId" in s and "failkit.task_id" not in a
    assert set(by_op) == {"invoke_agent", "chat", "execute_tool", "human"}
    for a in by_op["chat"]:
        assert a["gen_ai.provider.name"] == ("stringValue", "openai")
        json.loads(a["gen_ai.input.messages"][1])
        if "gen_ai.usage.input_tokens" in a:
            assert a["failkit.cost_usd"][0] == "doubleValue"
            json.loads(a["gen_ai.output.messages"][1])
    assert any("failkit.confidence" in a for a in by_op["chat"])
    for a in by_op["execute_tool"]:
        assert a["gen_ai.tool.call.id"][1].startswith("call_")
        assert isinstance(json.loads(a["gen_ai.tool.call.arguments"][1]), dict)
    for a in by_op["human"]:
        assert a["failkit.span.kind"] == ("stringValue", "human")
        assert a["failkit.cost_usd"][1] > 0


def test_jsonl_describes_the_same_spans(
    otlp: list[tuple[int, dict]], native: dict[str, dict]
) -> None:
    by_id = {s["spanId"]: s for _, s in otlp}
    assert native.keys() == by_id.keys()
    for span_id, s in by_id.items():
        r = native[span_id]
        assert r["trace_id"] == s["traceId"] and r["parent_id"] == s.get("parentSpanId")
        for field, nanos in (("start_time", "startTimeUnixNano"), ("end_time", "endTimeUnixNano")):
            assert ISO.match(r[field])
            us = pd.Timestamp(r[field]).value // 1000
            assert us * 1000 == int(s[nanos])
        assert (r["status"] == "error") == bool(s["status"])
        a = _attrs(s)
        if r["kind"] == "tool":
            assert json.loads(a["gen_ai.tool.call.arguments"][1]) == r["tool_args"]
            assert a["gen_ai.tool.name"][1] == r["tool_name"]
        if r["kind"] == "llm" and r["tokens_in"] is not None:
            assert int(a["gen_ai.usage.input_tokens"][1]) == r["tokens_in"]
            assert a["failkit.cost_usd"][1] == r["cost_usd"]
            assert a["gen_ai.output.messages"][1] == r["output"]
    kinds = Counter(r["kind"] for r in native.values())
    assert set(kinds) == {"agent", "llm", "tool", "human"}


def test_jsonl_records_follow_the_schema(result: SynthResult, records: list[dict]) -> None:
    models = {"span": SpanRecord, "trace": TraceRecord, "label": LabelRecord}
    seen: Counter[str] = Counter()
    for record in records:
        kind = record["type"]
        models[kind].model_validate({k: v for k, v in record.items() if k != "type"})
        seen[kind] += 1
    assert seen["trace"] == WORLD.n_runs
    assert seen["label"] == WORLD.n_runs + len(result.judgments)  # outcomes and verdicts


def test_error_messages_are_what_the_code_would_raise(otlp: list[tuple[int, dict]]) -> None:
    seen = set()
    for _, s in otlp:
        if not s["status"] or "parentSpanId" not in s:
            continue
        a = _attrs(s)
        message = _attrs(s["events"][0])["exception.message"][1]
        assert s["status"]["message"].endswith(message)
        kind = a["error.type"][1]
        seen.add(kind)
        if kind == "JSONDecodeError":
            content = json.loads(a["gen_ai.output.messages"][1])[0]["parts"][0]["content"]
            with pytest.raises(json.JSONDecodeError) as err:
                json.loads(content)
            assert str(err.value) == message
        if kind == "ModelBehaviorError":
            called = a["gen_ai.tool.name"][1]
            assert f"Tool '{called}' not found" in message
            assert called not in {t.name for t in toolset(DESIGN.n_tools)}
        if kind == "ValidationError":
            assert message.startswith("1 validation error for ")
    assert {"ValidationError", "TimeoutError", "429"} <= seen


def test_misspelling_is_never_a_real_tool() -> None:
    names = {t.name for t in toolset(40)}
    assert not {misspell(n) for n in names} & names


# --- API ----------------------------------------------------------------------------------


def test_write_sample_and_formats(tmp_path: Path) -> None:
    paths = write_sample(tmp_path / "all", n_runs=40, seed=1)
    assert set(paths) == set(FILE_NAMES) and all(p.exists() for p in paths.values())
    only = sample(40, seed=1).write(tmp_path / "otlp", formats=["otlp"])
    assert set(only) == {"otlp"}
    assert only["otlp"].read_bytes() == paths["otlp"].read_bytes()
    with pytest.raises(FailkitError, match="unknown synth formats"):
        sample(10).write(tmp_path, formats=["parquet"])


def test_sample_rounds_up_to_whole_tasks() -> None:
    res = sample(11, trials=5)
    assert res.world.n_tasks == 3 and len(res.truth) == 15


def test_many_spans_stay_consistent() -> None:
    res = sample(15_000, trials=10, seed=7)
    assert res.n_spans > 90_000
    truth = res.truth
    assert truth["trace_id"].is_unique
    assert len(set(res.span_truth["span_id"])) == res.n_spans
    assert ((truth["outcome"] == "success") == truth["failure_mode"].isna()).all()


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [
        (World, {"mode_rates": {"nope": 0.1}}),
        (World, {"recovery": {"timeout": 2.0}}),
        (AgentDesign, {"checkpoint_tools": ("get_forecast",), "n_tools": 8}),
        (AgentDesign, {"max_attempts": {"tool_choice": 2}}),
        (AgentDesign, {"max_attempts": 0}),
        (AgentDesign, {"model": "gpt-99"}),
        (AgentDesign, {"n_tools": 4}),
    ],
)
def test_bad_knobs_are_rejected(model: type, kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        model(**kwargs)


# --- judge ---------------------------------------------------------------------------------


def test_judge_flags_answered_silent_failures(result: SynthResult) -> None:
    """The judge flags only runs that answered although a silent failure went through, at
    the coverage asked for; its blamed span is the span of the run's first failure."""
    truth = result.truth.set_index("trace_id")
    j = result.judgments
    assert list(j.columns) == JUDGE_COLUMNS
    assert j["trace_id"].is_unique and j["comment"].str.len().gt(10).all()
    answered = result.simulation.completed & result.truth["silent"].eq(True).to_numpy()
    eligible = int(answered.sum())
    assert set(j["trace_id"]) <= set(result.truth.loc[answered, "trace_id"])
    p = WORLD.judge_coverage
    assert abs(len(j) - p * eligible) <= SIGMAS * np.sqrt(eligible * p * (1 - p))
    on_span = j.loc[j["span_id"].notna()]
    q = WORLD.judge_span_share
    assert abs(len(on_span) - q * len(j)) <= SIGMAS * np.sqrt(len(j) * q * (1 - q))
    blamed = truth.loc[on_span["trace_id"], "first_failure_cause_span_id"]
    assert on_span["span_id"].tolist() == blamed.tolist()


def test_judge_comments_describe_the_run_without_naming_the_mode(big: SynthResult) -> None:
    """No mode name in the comments, several wordings per mode, values of the run quoted."""
    j = big.judgments.merge(big.truth[["trace_id", "failure_mode"]], on="trace_id")
    text = j["comment"].str.lower()
    for m in MODES:
        assert not text.str.contains(m.name).any()
        assert not text.str.contains(m.name.replace("_", " ")).any()
    wordings = j.groupby("failure_mode")["comment"].agg(lambda c: c.str[:25].nunique())
    assert (wordings >= 10).all()
    codes = j.loc[j["failure_mode"] == "hallucination", "comment"].str.contains(r"ZX-\d{4}")
    assert codes.mean() > 0.3
    vague = text.str.contains("|".join(re.escape(v.lower()) for v in VAGUE_COMMENTS))
    v = big.world.judge_vague
    assert abs(vague.sum() - v * len(j)) <= SIGMAS * np.sqrt(len(j) * v * (1 - v))


def test_judge_settings_do_not_change_the_traces(tmp_path: Path) -> None:
    """The judge draws from its own stream: its settings change the verdicts, not the spans."""
    world = World(n_tasks=60, trials=5, seed=4)
    quiet = world.model_copy(update={"judge_coverage": 0.3, "judge_span_share": 0.0})
    a = generate(world).write(tmp_path / "a", formats=("otlp",))
    b = generate(quiet).write(tmp_path / "b", formats=("otlp",))
    assert a["otlp"].read_bytes() == b["otlp"].read_bytes()
    ja, jb = generate(world).judgments, generate(quiet).judgments
    assert len(jb) < len(ja) and jb["span_id"].isna().all()
    pd.testing.assert_frame_equal(generate(world).judgments, ja)
