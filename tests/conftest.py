"""Fixtures shared by test files: one demo-series run per pytest session.

The demo series takes minutes (notebook 05 trains a model), so it runs once per session in a fresh
temporary folder and serves both tests/test_series.py (the whole series) and tests/test_browser.py
(which needs notebooks 01-05 done before it opens 02 and 06 in JupyterLab).
"""

from dataclasses import dataclass
from pathlib import Path

import pytest

from sed_utils.cli.runner import NotebookRun, run_series

#: Notebooks 02 and 06 need 01 (data) to 05 (trained model, caches) done before them.
PREPARED_UP_TO = "05"


@dataclass
class DemoSeries:
    """A demo-series run in ``root`` (``root/data``, ``root/runs``): its config overrides and
    the notebooks executed so far, in order."""

    root: Path
    overrides: list[str]
    runs: list[NotebookRun]


@pytest.fixture(scope="session")
def demo_prepared(tmp_path_factory) -> DemoSeries:
    """Notebooks 01-05 on the demo profile in a fresh folder: datasets generated, model trained."""
    root = tmp_path_factory.mktemp("demo_series")
    overrides = [f"data_root={root / 'data'}", f"runs_root={root / 'runs'}"]
    runs = run_series("demo", overrides, stop=PREPARED_UP_TO, log=print)
    return DemoSeries(root, overrides, runs)


@pytest.fixture(scope="session")
def demo_series(demo_prepared) -> DemoSeries:
    """The whole demo series: the notebooks after 05 run on ``demo_prepared``'s folder."""
    start = f"{int(PREPARED_UP_TO) + 1:02d}"
    runs = run_series("demo", demo_prepared.overrides, start=start, log=print)
    return DemoSeries(demo_prepared.root, demo_prepared.overrides, demo_prepared.runs + runs)
