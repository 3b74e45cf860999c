"""environment.yml (conda users) and pyproject.toml (pip users) must list the same pinned packages."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _normalise(requirement: str) -> tuple[str, str]:
    name, _, version = requirement.partition("==")
    return re.sub(r"[-_.]+", "-", name.strip().lower()), version.strip()


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_normalise(r) for r in reqs)


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(_normalise(r) for r in pip_section if not r.startswith("-e"))


def test_every_requirement_is_pinned():
    for name, version in pyproject_requirements().items():
        assert re.fullmatch(r"\d+(\.\d+)+", version), f"pyproject.toml: {name} is not pinned with =="


def test_environment_yml_matches_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_the_design_packages_are_all_there():
    needed = {"jupyterlab", "torch", "torchaudio", "torchvision", "librosa", "matplotlib", "ipywidgets",
              "pandas", "scikit-learn", "papermill", "sed-eval", "soundfile", "tqdm", "pyyaml", "ipykernel"}
    assert needed <= set(pyproject_requirements())
