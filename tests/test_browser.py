"""In a real browser: JupyterLab runs 03_what_if, a slider moves, the explorer's chart changes.

Headless Debian Chromium (``/usr/bin/chromium``) driven by Playwright for Python; Playwright's
own browser downloads are never used. Skips, saying why, when Chromium or Playwright is absent.
Screenshots (and the timings measured in the page) go to ``tests/artifacts/``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "03_what_if.ipynb"
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# JupyterLab settings: no news pop-up over the page.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"}
}

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium) "
        "to run the browser tests",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab on a free localhost port with a generated token; yields the notebook's URL."""
    tmp = tmp_path_factory.mktemp("lab")
    root, settings = tmp / "root", tmp / "settings"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    dirs = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_RUNTIME_DIR": "runtime", "IPYTHONDIR": "ipy"}
    env = {**os.environ, **{k: str(tmp / v) for k, v in dirs.items()}}
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
        "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = (tmp / "lab.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                req = urllib.request.Request(
                    f"{base}/api/status", headers={"Authorization": f"token {token}"}
                )
                urllib.request.urlopen(req, timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(tmp / 'lab.log').read_text()}")
                time.sleep(0.2)
        yield f"{base}/lab/tree/{NOTEBOOK.name}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless system Chromium with a fresh profile."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1100},
        )
        yield context
        context.close()


# The explorer's output area, and the text of its chart (Vega draws SVG text marks).
EXPLORER = ".jp-OutputArea-output:has(.widget-slider):has-text('What-if explorer')"
CHART_TEXT = """(el) => Array.from(el.querySelectorAll(".vega-embed svg text"),
                           (t) => t.textContent).join("|")"""


def test_explorer_slider_redraws_the_chart_in_jupyterlab(lab: str, browser: object) -> None:
    t0 = time.monotonic()
    page = browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(lab)
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')")
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel && !w.sessionContext.isRestarting; }",
        timeout=60_000,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector("text=last update:", timeout=120_000)  # the last cell ran
    explorer = page.locator(EXPLORER)
    explorer.locator(".vega-embed svg").wait_for(timeout=60_000)
    handle = explorer.element_handle()
    page.wait_for_function(f"(el) => ({CHART_TEXT})(el).includes('%')", arg=handle)
    ran_s = time.monotonic() - t0
    explorer.screenshot(path=str(ARTIFACTS / "explorer_before.png"))
    before = explorer.evaluate(CHART_TEXT)

    slider = explorer.locator(".widget-slider").first  # first stage: retries, max attempts
    readout = slider.locator(".widget-readout")
    value = readout.inner_text()
    t1 = time.monotonic()
    slider.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        f"([el, before]) => {{ const now = ({CHART_TEXT})(el); return now && now !== before; }}",
        arg=[handle, before],
        timeout=30_000,
    )
    redraw_s = time.monotonic() - t1
    after = explorer.evaluate(CHART_TEXT)
    kernel = explorer.locator(".widget-label", has_text="updated in").first.inner_text()
    explorer.screenshot(path=str(ARTIFACTS / "explorer_after.png"))
    assert readout.inner_text() != value
    assert after != before
    assert not errors, errors
    (ARTIFACTS / "browser_timings.json").write_text(
        json.dumps(
            {
                "open_and_run_all_s": round(ran_s, 2),
                "slider_to_redraw_s": round(redraw_s, 3),
                "kernel_update": kernel,  # the explorer's own timing of the last update
            }
        )
    )


def test_report_renders_offline_and_runs_no_trace_text(tmp_path: Path, browser: object) -> None:
    """The HTML report draws its chart from the inlined Vega; hostile names stay text."""
    from test_report import IMG, SCRIPT, _notebook, _store

    from failkit.report import render_report

    out = render_report(
        _store(tmp_path / "t.duckdb"), tmp_path / "report.html",
        notebook=_notebook(tmp_path / "r.ipynb"), progress=False,
    )  # fmt: skip
    page = browser.new_page()  # type: ignore[attr-defined]
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    page.wait_for_selector(".failkit-chart svg", timeout=30_000)
    labels = page.evaluate(
        "() => Array.from(document.querySelectorAll('.failkit-chart svg text'), t => t.textContent)"
    )
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert SCRIPT in labels and IMG in labels  # drawn as axis labels, i.e. as text
    assert page.locator("img").count() == 0
    assert "&lt;" not in page.inner_text("body") and SCRIPT in page.inner_text("body")
    assert not dialogs
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests
