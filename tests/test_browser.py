"""Notebooks 02 and 06 in JupyterLab, in a real browser (headless Chromium driven by selenium).

papermill (tests/test_series.py) proves the notebooks run; only a browser shows whether their
ipywidgets render as controls and answer: the clip browser of notebook 02 and the threshold sliders
of notebook 06. Each test opens a notebook, runs all cells from the Run menu, checks that no cell
failed and that the widget is made of real controls (not the text "VBox(children=..."), then
changes the widget and waits for its figure to change.

JupyterLab serves TEMPORARY copies of the notebooks whose parameters cell points at the
session's demo-series folder (tests/conftest.py: notebooks 01-05 ran there), with autosave off,
so a run never writes into the tracked notebooks. Needs Debian's ``chromium`` and
``chromium-driver`` and the ``selenium`` package; skipped with the missing ones named otherwise.
"""

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
_MISSING = [what for what, found in [
    ("chromium (apt-get install chromium)", CHROMIUM),
    ("chromedriver (apt-get install chromium-driver)", CHROMEDRIVER),
    ("selenium (pip, the project's dev extra)", importlib.util.find_spec("selenium")),
] if not found]
if _MISSING:
    pytest.skip("browser test: not installed: " + ", ".join(_MISSING), allow_module_level=True)

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
NB02 = "02_explore_labels.ipynb"
NB06 = "06_evaluate.ipynb"
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000",
                "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
# Generous: the machine may have 2 busy cores. Notebook 06 scores every test clip.
SERVER_START_S = 120
PAGE_LOAD_S = 180
KERNEL_READY_S = 180
RUN_ALL_S = {NB02: 300, NB06: 600}
WIDGET_UPDATE_S = 90

# The notebook in the current tab, read in one go (one script: a consistent snapshot) from JupyterLab's
# own model (exposed with --LabApp.expose_app_in_browser) and its page: kernel status, execution
# counts, outputs as nbformat JSON, and the input prompts ("[3]:", "[*]:" while queued or running).
NOTEBOOK_STATE_JS = """
const app = window.jupyterapp;
const nb = app && app.shell.currentWidget;
if (!nb || !nb.content || !nb.content.model || !nb.sessionContext) return null;
const kernel = nb.sessionContext.session && nb.sessionContext.session.kernel;
const cells = nb.content.model.cells, out = [];
for (let i = 0; i < cells.length; i++) {
  const c = cells.get(i);
  if (c.type === 'code') out.push({count: c.executionCount, outputs: c.outputs.toJSON()});
}
const prompts = Array.from(nb.content.node.querySelectorAll('.jp-CodeCell .jp-InputPrompt'),
                           e => e.textContent.trim());
return {path: nb.context.path, status: kernel ? kernel.status : null, cells: out, prompts: prompts};
"""


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never via a proxy


@dataclass
class Lab:
    """A running JupyterLab server serving ``folder``."""

    url: str
    token: str
    folder: Path
    log: Path

    def api(self, path: str, method: str = "GET", timeout: float = 10):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with _DIRECT.open(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE", timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_notebook(name: str, folder: Path, overrides: list[str]) -> None:
    """Copy notebooks/<name> into ``folder`` with its parameters cell set to ``overrides``."""
    nb = json.loads((REPO / "notebooks" / name).read_text())
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{name}: expected one cell tagged 'parameters', found {len(params)}"
    source = "".join(params[0]["source"])
    assert "overrides = []" in source, f"{name}: parameters cell has no 'overrides = []' line:\n{source}"
    params[0]["source"] = source.replace("overrides = []", f"overrides = {overrides!r}")
    (folder / name).write_text(json.dumps(nb, indent=1))


def _write_settings(settings: Path) -> None:
    """JupyterLab user settings: no autosave (nothing written behind the test's back), every cell
    kept in the page (no windowing: the test reads all prompts), no news or update checks."""
    plugins = {
        "docmanager-extension/plugin": {"autosave": False},
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for plugin, values in plugins.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _stop(proc: subprocess.Popen, lab: Lab) -> None:
    """Shut the server down with its kernels; if it does not go, terminate it, then kill its
    process group (its own: started with start_new_session)."""
    if proc.poll() is None:
        try:
            lab.api("/api/shutdown", method="POST")
        except OSError:
            pass
    for escalate in (None, proc.terminate, lambda: os.killpg(proc.pid, signal.SIGKILL)):
        if escalate:
            escalate()
        try:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def lab(demo_prepared, tmp_path_factory):
    """JupyterLab on 127.0.0.1 serving copies of notebooks 02 and 06 that read the session's demo
    data and a COPY of its runs folder (notebook 06 rewrites results.json and the checkpoint)."""
    root = tmp_path_factory.mktemp("browser_lab")
    runs = root / "runs"
    shutil.copytree(demo_prepared.root / "runs", runs)
    overrides = [f"data_root={demo_prepared.root / 'data'}", f"runs_root={runs}"]
    folder = root / "notebooks"
    folder.mkdir()
    for name in (NB02, NB06):
        _copy_notebook(name, folder, overrides)
    _write_settings(root / "settings")

    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # .ci/run exports Agg; a reader's kernel draws figures inline
    for var, sub in [("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                     ("JUPYTER_CONFIG_DIR", "jupyter_config"), ("JUPYTER_DATA_DIR", "jupyter_data"),
                     ("JUPYTER_RUNTIME_DIR", "jupyter_runtime"), ("IPYTHONDIR", "ipython")]:
        env[var] = str(root / sub)
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={folder}", "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")  # JupyterLab refuses to start as root without it
    log = root / "jupyterlab.log"
    server = Lab(f"http://127.0.0.1:{port}", token, folder, log)
    with log.open("wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert proc.poll() is None, f"JupyterLab exited with {proc.returncode}:\n{server.log_tail()}"
            try:
                server.api("/api/status", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, (
                    f"JupyterLab did not answer within {SERVER_START_S} s:\n{server.log_tail()}")
                time.sleep(0.5)
        print(f"JupyterLab at {server.url} (log {log})")
        yield server
    finally:
        _stop(proc, server)


@pytest.fixture
def browser(lab, tmp_path):
    """Headless Chromium (Debian's, with its chromedriver) in a fresh profile; quit at the end,
    and the kernels it started shut down."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    options.add_argument(f"--user-data-dir={profile}")
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            try:
                lab.shutdown_kernels()
            except OSError as e:
                print(f"could not shut the kernels down: {e}")


@contextmanager
def evidence_on_failure(driver, lab: Lab, path: Path):
    """On any failure inside, save a screenshot to ``path`` and print where it is (and the lab log)."""
    try:
        yield
    except BaseException:
        try:
            driver.save_screenshot(str(path))
            print(f"browser test failed: screenshot {path}")
        except WebDriverException as e:
            print(f"browser test failed; no screenshot ({e.msg})")
        print(f"JupyterLab log {lab.log}, last lines:\n{lab.log_tail()}")
        raise


def wait_for(driver, condition, timeout: float, what: str, last_seen=lambda: ""):
    """WebDriverWait with an assertion message that says what did not happen and what was seen."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5,  # a redraw replaces elements
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                             ).until(condition)
    except TimeoutException:
        raise AssertionError(f"{what}: not within {timeout} s. Last seen: {last_seen()}") from None


def notebook_state(driver) -> dict | None:
    return driver.execute_script(NOTEBOOK_STATE_JS)


def open_notebook(driver, lab: Lab, name: str) -> None:
    """Open ``name`` in a fresh workspace and wait for its kernel to be idle."""
    driver.get(f"{lab.url}/lab/tree/{name}?token={lab.token}&reset")
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item"), PAGE_LOAD_S,
             "JupyterLab's menu bar to appear")

    def ready(d):
        state = notebook_state(d)
        return state and state["path"] == name and state["status"] == "idle"

    wait_for(driver, ready, KERNEL_READY_S, f"{name} open with an idle kernel",
             lambda: {k: v for k, v in (notebook_state(driver) or {}).items() if k in ("path", "status")})


def click_menu(driver, menu: str, item: str) -> None:
    bar = [e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if e.text == menu]
    assert bar, f"no '{menu}' menu in the menu bar"
    bar[0].click()

    def entry(d):
        found = [e for e in d.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel") if e.text == item]
        return found[0] if found else None

    wait_for(driver, entry, 30, f"menu entry {menu} > {item}").click()


def run_all_cells(driver, name: str) -> dict:
    """Run > Run All Cells, then wait until no cell is queued or running and the kernel is idle.
    Returns the notebook's state (counts, outputs)."""
    click_menu(driver, "Run", "Run All Cells")
    started = time.monotonic()

    def finished(d):
        state = notebook_state(d)
        if not state:
            return None
        assert state["status"] != "dead", f"{name}: the kernel died"
        busy = any("*" in p for p in state["prompts"])
        ran = any(c["count"] for c in state["cells"])
        return state if state["status"] == "idle" and ran and not busy else None

    state = wait_for(driver, finished, RUN_ALL_S[name], f"{name}: Run All Cells to finish",
                     lambda: f"prompts {(notebook_state(driver) or {}).get('prompts')}")
    print(f"{name}: Run All Cells took {time.monotonic() - started:.0f} s")
    return state


def assert_ran_cleanly(name: str, state: dict) -> None:
    """Every code cell ran and none holds an error output (read from the notebook's model)."""
    errors = [f"cell {i + 1}: {o.get('ename')}: {o.get('evalue')}"
              for i, c in enumerate(state["cells"]) for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{name}: error outputs: {errors}"
    not_run = [i + 1 for i, c in enumerate(state["cells"]) if not c["count"]]
    assert not not_run, f"{name}: code cells {not_run} did not run (prompts {state['prompts']})"


# Text on the page that means something went wrong, and what.
BAD_TEXT = {"Traceback": "a traceback is shown",
            "Error displaying widget": "a widget failed to render",
            "VBox(children=": "a widget is shown as text, not as controls"}


def bad_text_on_page(driver) -> list[str]:
    outputs = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
    texts = [e.get_attribute("textContent") for e in outputs]
    return [f"{meaning}: {t[:300]!r}" for bad, meaning in BAD_TEXT.items() for t in texts if bad in t]


def widget_cell(driver, css: str, name: str):
    """Wait for the code cell whose output renders an element matching ``css`` (widgets render after
    their cell ran) and return it; then check that no output shows an error or a widget as text."""

    def cells(d):
        return [c for c in d.find_elements(By.CSS_SELECTOR, ".jp-CodeCell")
                if c.find_elements(By.CSS_SELECTOR, f".jp-OutputArea-output {css}")]

    wait_for(driver, cells, WIDGET_UPDATE_S, f"{name}: a widget with a '{css}' to render",
             lambda: bad_text_on_page(driver) or "no error text on the page")
    found = cells(driver)
    assert len(found) == 1, f"{name}: expected one cell with a rendered '{css}', found {len(found)}"
    bad = bad_text_on_page(driver)
    assert not bad, f"{name}: {bad}"
    return found[0]


def figure_src(cell) -> str:
    """The src (a data: URL) of the image in the widget's Output, '' while there is none."""
    imgs = cell.find_elements(By.CSS_SELECTOR, ".widget-output img")
    return imgs[0].get_attribute("src") if len(imgs) == 1 else ""


def wait_figure(driver, cell, what: str, before: str = "") -> str:
    """Wait until the widget shows a PNG figure other than ``before``; return its src."""

    def shown(_):
        src = figure_src(cell)
        return src if src.startswith("data:image/png") and src != before else None

    return wait_for(driver, shown, WIDGET_UPDATE_S, f"the widget's figure {what}",
                    lambda: f"{len(cell.find_elements(By.CSS_SELECTOR, '.widget-output img'))} image(s)"
                            + (f", same as before: {figure_src(cell) == before}" if before else ""))


def choose_other_clip(driver, cell, name: str) -> str:
    """Pick the dropdown's second clip; return its label."""
    select = Select(cell.find_element(By.CSS_SELECTOR, ".widget-dropdown select"))
    assert len(select.options) >= 2, f"{name}: the clip dropdown offers {len(select.options)} clip(s)"
    select.select_by_index(1)
    return select.first_selected_option.text


def test_notebook_02_clip_browser(lab, browser, tmp_path):
    with evidence_on_failure(browser, lab, tmp_path / "notebook_02_failure.png"):
        open_notebook(browser, lab, NB02)
        assert_ran_cleanly(NB02, run_all_cells(browser, NB02))

        cell = widget_cell(browser, ".widget-dropdown select", NB02)
        before = wait_figure(browser, cell, "to appear")
        clip = choose_other_clip(browser, cell, NB02)
        wait_figure(browser, cell, f"to change after choosing clip {clip!r}", before)
        assert cell.find_elements(By.CSS_SELECTOR, ".widget-output audio"), f"{NB02}: no audio player"


def slider_value(slider) -> float:
    return float(slider.find_element(By.CSS_SELECTOR, ".widget-readout").get_attribute("textContent"))


def test_notebook_06_threshold_slider(lab, browser, tmp_path):
    with evidence_on_failure(browser, lab, tmp_path / "notebook_06_failure.png"):
        open_notebook(browser, lab, NB06)
        assert_ran_cleanly(NB06, run_all_cells(browser, NB06))

        cell = widget_cell(browser, ".widget-slider", NB06)
        sliders = cell.find_elements(By.CSS_SELECTOR, ".widget-slider")
        assert len(sliders) == 5, f"{NB06}: expected one threshold slider per class (5), found {len(sliders)}"
        assert cell.find_elements(By.CSS_SELECTOR, ".widget-dropdown select"), f"{NB06}: no clip dropdown"
        assert cell.find_elements(By.CSS_SELECTOR, ".widget-toggle-buttons"), f"{NB06}: no mode buttons"
        before = wait_figure(browser, cell, "to appear")
        clip = choose_other_clip(browser, cell, NB06)
        before = wait_figure(browser, cell, f"to change after choosing clip {clip!r}", before)

        slider = sliders[0]
        old = slider_value(slider)
        handle = slider.find_element(By.CSS_SELECTOR, ".noUi-handle")
        width = slider.find_element(By.CSS_SELECTOR, ".noUi-target").size["width"]
        offset = int(width * 0.3) * (-1 if old > 0.5 else 1)  # about 0.3 of the range, away from the end
        ActionChains(browser).click_and_hold(handle).move_by_offset(offset, 0).release().perform()
        wait_for(browser, lambda _: abs(slider_value(slider) - old) > 0.05, WIDGET_UPDATE_S,
                 f"the threshold slider to move from {old:.2f}", lambda: f"value {slider_value(slider)}")
        new = slider_value(slider)
        wait_figure(browser, cell, f"to change after moving a threshold from {old:.2f} to {new:.2f}", before)
