"""The package installed as a user installs it: ``pip install .`` (not editable) into a fresh venv, then the
``sed-utils`` command run from a folder that is not a clone, with the extras (metrics, notebooks) hidden.

The fresh venv borrows this venv's installed dependencies through a ``.pth`` line (no download; pip's
``--python`` installs into it), so what is tested is the package itself: its files, its console script,
its imports, and how it finds its folders outside a clone (``sed_utils.config.find_project_root``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
#: Distributions of the extras, hidden from the installed package: the core install must detect without them.
EXTRAS = ("sed_eval", "sed_scores_eval", "dcase_util", "sklearn", "librosa", "matplotlib", "papermill",
          "nbformat", "nbclient", "jupyterlab", "ipywidgets", "ipykernel", "IPython")

HIDE = '''import importlib.abc, importlib.machinery, sys
HIDDEN = {names!r}
class _Absent(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {{spec.name!r}} (an extra, hidden)", name=spec.name)
    def exec_module(self, module):
        pass
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, _Absent()) if name.split(".")[0] in HIDDEN else None
sys.meta_path.insert(0, _Hide())
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the package pip-installed from a copy of its sources; returns the venv."""
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copy(REPO / "README.md", src)
    shutil.copytree(REPO / "sed_utils", src / "sed_utils", ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([str(python), "-c", ask], capture_output=True, text=True, check=True).stdout.strip()
    site = Path(site)
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (site / "sitecustomize.py").write_text(HIDE.format(names=set(EXTRAS)))
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-build-isolation", "--no-index", "--quiet", str(src)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv


def _run(venv: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SED_PROJECT", "SED_CONFIG")}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.mark.slow
def test_the_installed_command_detects_outside_a_clone_without_the_extras(installed, tmp_path):
    from test_detect import _checkpoint, _post

    work = tmp_path / "somewhere"
    work.mkdir()
    where = _run(installed, [str(installed / "bin" / "python"), "-c",
                             "import sed_utils, sys; print(sed_utils.__file__); import sklearn"], work)
    assert str(installed) in where.stdout and "/site-packages/sed_utils/" in where.stdout, where.stdout
    assert "an extra, hidden" in where.stderr  # the extras really are out of reach
    sf.write(work / "kitchen.wav", 0.1 * np.random.default_rng(0).standard_normal(32000).astype(np.float32),
             16000)
    _checkpoint(work / "runs" / "demo" / "frame" / "best.pt", "frame", _post())  # a model of this folder
    command = str(installed / "bin" / "sed-utils")
    done = _run(installed, [command, "detect", "kitchen.wav", "--threshold", "0", "--format", "raven",
                            "--out", "kitchen.Table.1.selections.txt"], work)
    assert done.returncode == 0, done.stderr
    assert f"using the model of {work / 'runs' / 'demo'}" in done.stderr  # runs/ of the working folder
    assert (work / "kitchen.Table.1.selections.txt").read_text().count("\n") == 6  # header + 5 classes
    usage = _run(installed, [command, "--help"], work)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: sed-utils")
    series = _run(installed, [command, "run", "--profile", "demo"], work)
    assert series.returncode == 2 and "clone of sed-tutorial" in series.stderr  # the series needs a clone
    assert "Traceback" not in series.stderr
