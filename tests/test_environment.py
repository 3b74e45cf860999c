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
    extras = project["optional-dependencies"]
    reqs = project["dependencies"] + [r for group in extras.values() for r in group if "[" not in r]
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


def test_the_core_install_holds_what_detect_imports():
    """``pip install .`` (no extras) must detect: what the package imports at the top of the modules on
    detect's path is in the core list (tests/test_install.py runs detect with the extras hidden)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_normalise(r)[0] for r in project["dependencies"]}
    assert {"torch", "torchvision", "torchaudio", "numpy", "scipy", "soxr", "soundfile", "pandas", "pyyaml",
            "tqdm"} == core
    assert project["scripts"]["sed-utils"] == "sed_utils.cli.runner:main"


def test_the_constraints_file_holds_every_pin_of_pyproject():
    """constraints.txt (make setup installs with it) pins the transitive packages too; it must agree with
    each direct pin and hold nothing unpinned."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line and "@" not in line, f"constraints.txt: {line!r} is not a plain pin"
            name, version = _normalise(line)
            pins[name] = version
    for name, version in pyproject_requirements().items():
        assert pins.get(name) == version, f"constraints.txt {name} {pins.get(name)}, pyproject {version}"
    assert "sed-utils" not in pins
