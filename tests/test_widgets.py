"""The explorer without a browser: set controls, check the design and the chart specs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import altair as alt
import ipywidgets as W
import pandas as pd
import pytest

import failkit as fk
from failkit import synth, widgets
from failkit.widgets import VEGALITE_MIME, Explorer

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(autouse=True)
def _restore_renderer() -> Iterator[None]:
    """The explorer enables failkit's Altair renderer: leave the global as it was."""
    active = alt.renderers.active
    yield
    alt.renderers.enable(active)


def design(first: str = "select") -> fk.Design:
    return fk.Design(
        name="today",
        stages=[
            fk.Stage(name=first, p_success=0.95, n_tools=16, p_detectable=0.3, cost_usd=0.004),
            fk.Stage(name="act", p_success=0.95, idempotent=False, p_side_effect_on_failure=0.3,
                     p_transient=0.8, latency_s=fk.Dist.lognormal(median=0.5, p95=2.0)),
            fk.Stage(name="answer", p_success=0.95, p_detectable=0.1, parse_failure_share=0.4,
                     latency_s=1.0, cost_usd=0.005),
        ],
    )  # fmt: skip


@pytest.fixture
def ex() -> Explorer:
    return fk.explore(design())


def datasets(spec: dict) -> dict[str, list[dict]]:
    return spec["datasets"]


def test_controls_per_stage_and_lever(ex: Explorer) -> None:
    names = list(ex.controls)
    assert names[:7] == [f"select__{lv.name}" for lv in fk.whatif.LEVERS]
    assert "act__n_tools" not in names and len(names) == 7 + 6 + 6
    assert isinstance(ex.controls["act__max_attempts"], W.IntSlider)
    assert isinstance(ex.controls["answer__structured_outputs"], W.Checkbox)
    assert isinstance(ex.controls["answer__error_multiplier"], W.FloatSlider)
    assert ex.controls["select__n_tools"].value == 16 and ex.controls["select__n_tools"].max == 64
    assert ex.current_design.stages == ex.base_design.stages
    assert ex.controls["act__catch_rate"].disabled  # no checkpoint yet


def test_moving_a_slider_changes_design_and_chart_specs(ex: Explorer) -> None:
    before_live, before = ex.spec, ex.chart_specs()
    ex.controls["act__max_attempts"].value = 3
    assert ex.current_design.stage("act").max_attempts == 3
    after_live, after = ex.spec, ex.chart_specs()
    for name in ("waterfall", "tradeoff", "pass_k", "slo"):
        assert datasets(after_live)[name] != datasets(before_live)[name], name
        assert after[name]["datasets"] != before[name]["datasets"], name
    current = [r for r in datasets(after_live)["tradeoff"] if r["design"] == "current"]
    assert current[0]["duplicate_action_rate"] > 0  # retries of a non-idempotent step
    assert ex.last_update_s > 0


def test_live_spec_draws_what_the_chart_functions_draw(ex: Explorer) -> None:
    """The fast path (datasets swapped into a prebuilt spec) matches the pure chart functions."""
    ex.update(act__checkpoint=True, act__catch_rate=0.5, answer__routing_threshold=0.7)
    live = ex.spec
    assert [len(row["hconcat"]) for row in live["vconcat"]] == [2, 2]
    for name, spec in ex.chart_specs().items():
        own = [v for v in spec["datasets"].values() if v == datasets(live)[name]]
        assert own, name
        panel = [
            p for row in live["vconcat"] for p in row["hconcat"] if p["title"] == spec["title"]
        ]
        assert panel and panel[0]["layer" if "layer" in spec else "encoding"] is not None


def test_update_sets_many_controls_and_redraws_once(
    ex: Explorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    refresh = ex._refresh
    monkeypatch.setattr(ex, "_refresh", lambda: (calls.append(1), refresh())[1])
    ex.update(act__checkpoint=True, act__catch_rate=0.6, select__n_tools=4)
    assert calls == [1]
    st = ex.current_design.stage("act")
    assert st.checkpoint is not None and st.checkpoint.catch_rate == 0.6
    assert ex.current_design.stage("select").n_tools == 4
    assert not ex.controls["act__catch_rate"].disabled
    with pytest.raises(fk.FailkitError, match=r"unknown control\(s\) act__speed; controls: "):
        ex.update(act__speed=2)


def test_keep_and_reset(ex: Explorer) -> None:
    ex.update(answer__structured_outputs=True)
    assert ex.keep() == "alt 1"
    ex.update(answer__error_multiplier=0.5)
    assert ex.keep("cheaper model") == "cheaper model"
    with pytest.raises(fk.FailkitError, match="already called 'alt 1'"):
        ex.keep("alt 1")
    domain = ex.spec["vconcat"][0]["hconcat"][1]["layer"][0]["encoding"]["color"]["scale"]["domain"]
    assert domain == ["base", "current", "alt 1", "cheaper model"]
    assert ex.frames["metrics"]["design"].tolist() == domain
    ex.reset()
    assert ex.current_design.stages == ex.base_design.stages
    assert ex.keep("alt 3") == "alt 3" and ex.keep() == "alt 4"  # the first free number
    assert ex.settings() == fk.whatif.flatten(fk.whatif.settings_of(ex.base_design))
    assert list(ex.alternatives) == ["alt 1", "cheaper model", "alt 3", "alt 4"]


def test_displays_as_widget_with_a_static_spec(ex: Explorer) -> None:
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle[VEGALITE_MIME] == ex.spec and bundle["text/plain"].startswith("Explorer(")
    assert isinstance(ex.widget, W.VBox)


def _html_values(widget: W.Widget) -> list[str]:
    out = [widget.value] if isinstance(widget, W.HTML) else []
    for child in getattr(widget, "children", ()):
        out += _html_values(child)
    return out


def test_untrusted_stage_names_are_escaped_in_html_widgets() -> None:
    ex = fk.explore(design(first=HOSTILE).with_name(f"<script>{HOSTILE}</script>"))
    ex.update(**{f"{HOSTILE}__max_attempts": 2})
    html = "".join(_html_values(ex.widget))
    assert HOSTILE not in html and "<script>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the changes line names the stage
    accordion = ex.widget.children[1].children[0]
    assert isinstance(accordion, W.Accordion)
    assert accordion.titles[0] == HOSTILE  # Accordion titles are plain text, not HTML


def test_explore_takes_a_design_or_a_store(tmp_path: Path) -> None:
    files = synth.sample(100, seed=1).write(tmp_path, formats=["jsonl"])
    store = fk.connect()
    store.ingest(files["jsonl"])
    ex = fk.explore(store)
    assert ex.base_design.stages == fk.Design.from_store(store).stages
    assert f"{ex.base_design.stage_names[0]}__max_attempts" in ex.controls
    with pytest.raises(fk.FailkitError, match="takes a Design or a TraceStore, got int"):
        fk.explore(3)  # type: ignore[arg-type]


def test_offline_renderer_emits_widget_and_spec_or_spec_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chart = alt.Chart(alt.Data(values=[{"a": 1}])).mark_point().encode(x="a:Q")
    fk.enable_offline_charts()
    assert alt.renderers.active == "failkit"
    live = widgets._bundle(chart._repr_mimebundle_())
    assert "application/vnd.jupyter.widget-view+json" in live
    assert live[VEGALITE_MIME]["mark"] == {"type": "point"}
    monkeypatch.setenv(widgets.STATIC_CHARTS_ENV, "1")
    static = widgets._bundle(chart._repr_mimebundle_())
    assert set(static) == {"text/plain", VEGALITE_MIME}


def test_numbers_are_simulates_slo_within_its_interactive_tolerance() -> None:
    """Interactive updates: slo_attainment within 1e-5 of fk.simulate, the rest identical."""
    for interactive, tolerance in [(True, 1e-5), (False, 0.0)]:
        ex = fk.explore(design(), interactive=interactive)
        ex.update(act__max_attempts=3, select__error_multiplier=0.5)
        sim = ex.frames["sim"].query("design == 'current'").set_index("metric")
        exact = fk.simulate(ex.current_design, ci_draws=0, slo=ex.slo).set_index("metric")
        slo = ["slo_attainment", "slo_met"]
        assert (sim.loc[slo, "value"] - exact.loc[slo, "value"]).abs().max() <= tolerance
        pd.testing.assert_frame_equal(sim.drop(index=slo), exact.drop(index=slo))


def test_unchanged_design_reuses_its_frames(ex: Explorer) -> None:
    """A control that leaves the design as it is (catch rate, no checkpoint) skips simulate."""
    ex.update(act__max_attempts=2)
    sim = ex._sims["current"]
    ex.update(act__catch_rate=0.3)
    assert ex._sims["current"] is sim and ex.controls["act__catch_rate"].disabled
    pd.testing.assert_frame_equal(
        ex.frames["waterfall"], fk.whatif.waterfall([ex.base_design, ex.current_design])
    )
    ex.update(act__checkpoint=True)
    assert ex._sims["current"] is not sim
    assert ex.current_design.stage("act").checkpoint.catch_rate == 0.3  # type: ignore[union-attr]
