"""Charts are specs: checked through ``to_dict()``, never displayed."""

from __future__ import annotations

import pytest
from _chain_frames import frame, span

import failkit as fk
from failkit.charts import STAGE_COLORS, chart_chain
from failkit.stages import STAGES


def _steps() -> object:
    return fk.steps(
        frame(
            span("r", "root", None, "agent", 0, duration_s=6),
            span("r", "call", "root", "llm", 0.5),
            span("r", "tool", "root", "tool", 2, tool_name="search", status="error",
                 error_type="TimeoutError", error_message="timed out"),
            span("r", "after", "root", "llm", 4),
            span("q", "other", None, "llm", 0),
        )
    )  # fmt: skip


def test_chain_timeline_spec() -> None:
    spec = chart_chain(_steps(), "r").to_dict()
    assert spec["mark"]["type"] == "bar"
    enc = spec["encoding"]
    assert (enc["x"]["field"], enc["x2"]["field"], enc["y"]["field"]) == (
        "start_s",
        "end_s",
        "label",
    )
    assert enc["color"]["field"] == "stage"
    assert enc["color"]["scale"]["domain"] == list(STAGES)
    assert enc["color"]["scale"]["range"] == [STAGE_COLORS[s] for s in STAGES]
    assert enc["stroke"]["condition"]["test"] == "datum.failed"
    rows = next(iter(spec["datasets"].values()))
    assert [r["label"] for r in rows] == [
        "001 agent root",
        "002 llm call",
        "003 tool search",
        "004 llm after",
    ]
    assert [r["first_failure"] for r in rows] == [False, False, True, False]
    assert [r["after_failure"] for r in rows] == [False, False, False, True]
    assert rows[2]["start_s"] == 2.0 and rows[2]["end_s"] == 3.0
    assert rows[2]["error"] == "TimeoutError timed out"


def test_one_run_needs_no_trace_id_and_several_do() -> None:
    st = _steps()
    one = st.loc[st["trace_id"] == "q"]
    rows = next(iter(chart_chain(one).to_dict()["datasets"].values()))
    assert [r["label"] for r in rows] == ["001 llm other"]
    with pytest.raises(fk.FailkitError, match="pass trace_id"):
        chart_chain(st)
    with pytest.raises(fk.FailkitError, match="no run with trace_id 'nope'"):
        chart_chain(st, "nope")
