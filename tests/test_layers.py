"""The package's shape: data flows one way, modules stay readable in one sitting.

Every import of ``sed_utils`` (those inside functions and under ``TYPE_CHECKING`` included) is read
with ``ast``, without importing anything. The test fails on an import circle, on an import of a
higher stage than the importing module's (:data:`STAGES`), on a module outside every stage, on a module
over 500 lines, on a function over 80 lines (unless its docstring says why it must be longer), on
torch in the metrics, on a public function or class whose docstring does not name the notebook
that uses it, and on a public function of 3 or more parameters without an ``Args:`` section. The
checker's own tests (``test_checker_*``) show that it catches each case.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "sed_utils"

#: The stages, lowest first: one subpackage each. A module may import modules of its own stage or of
#: lower ones; same-stage imports must not form a circle. The package root (it imports config only)
#: belongs to ``config``, ``__main__`` to ``cli``. docs/architecture.md draws the same picture.
STAGES = ["core", "config", "io", "data", "features", "metrics", "labels", "models", "train", "evaluate",
          "detection", "plots", "cli"]


def stage_layers(package_dir: Path) -> list[tuple[str, list[str]]]:
    """The layers of a package laid out in :data:`STAGES`: every module of each stage's subpackage.
    A module outside every stage is in no layer (and is reported by :func:`layer_problems`)."""
    root = package_dir.name
    placed = {root: "config", f"{root}.__main__": "cli"}
    layers: dict[str, list[str]] = {s: [] for s in STAGES}
    for module in module_files(package_dir):
        parts = module.split(".")
        stage = placed.get(module, parts[1] if len(parts) > 1 else "")
        if stage in layers:
            layers[stage].append(module)
    return [(s, layers[s]) for s in STAGES]


MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
#: A public function with this many parameters documents them (an ``Args:`` section).
ARGS_FROM = 3
LONG_FUNCTION_NOTE = "longer than 80 lines because"
NOTEBOOK_RE = re.compile(r"notebooks? \d\d|no notebook|every notebook|all notebooks", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------
# The checker (works on any package folder, so it can be tested on made-up packages)
# ------------------------------------------------------------------------------------------------
def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package."""
    root = package_dir.name
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([root, *parts])] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def package_imports(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its file (functions included)."""
    files = module_files(package_dir)
    root = package_dir.name
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node)
                # "from pkg import sub" imports the submodule sub when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                if (t == root or t.startswith(root + ".")) and t != module:
                    graph[module].add(t)  # a name that is no module stays as it is: reported below
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, as the list of modules on it (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def layer_problems(graph: dict[str, set[str]], layers: list[tuple[str, list[str]]]) -> list[str]:
    """Modules without a layer, and imports of a higher layer than the importer's."""
    rank = {m: i for i, (_, members) in enumerate(layers) for m in members}
    problems = [f"{m}: not in LAYERS (put it in a stage's subpackage, see STAGES and docs/architecture.md)"
                for m in sorted(graph) if m not in rank]
    for module, targets in sorted(graph.items()):
        for t in sorted(targets):
            if t not in graph:
                problems.append(f"{module} imports {t}, which is not a module of the package")
            elif module in rank and t in rank and rank[t] > rank[module]:
                problems.append(f"{module} (layer {layers[rank[module]][0]!r}) imports {t} "
                                f"(higher layer {layers[rank[t]][0]!r})")
    return problems


def size_problems(package_dir: Path) -> list[str]:
    """Modules over MAX_MODULE_LINES, functions over MAX_FUNCTION_LINES without a reason given."""
    problems = []
    for module, path in module_files(package_dir).items():
        text = path.read_text()
        n = len(text.splitlines())
        if n > MAX_MODULE_LINES:
            problems.append(f"{module}: {n} lines (> {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                doc = (ast.get_docstring(node) or "").lower()
                if length > MAX_FUNCTION_LINES and LONG_FUNCTION_NOTE not in doc:
                    problems.append(f"{module}.{node.name}: {length} lines (> {MAX_FUNCTION_LINES})")
    return problems


def docstring_problems(package_dir: Path) -> list[str]:
    """Public top-level functions and classes whose docstring names no notebook, and public functions
    of :data:`ARGS_FROM` or more parameters whose docstring has no ``Args:`` section (the contract)."""
    problems = []
    for module, path in module_files(package_dir).items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                doc = ast.get_docstring(node) or ""
                if not NOTEBOOK_RE.search(doc):
                    problems.append(f"{module}.{node.name}")
                if isinstance(node, ast.FunctionDef) and "Args:" not in doc:
                    args = node.args.args + node.args.kwonlyargs
                    params = [a for a in args if a.arg not in ("self", "cls")]
                    if len(params) >= ARGS_FROM:
                        problems.append(f"{module}.{node.name}: {len(params)} parameters, no Args section")
    return problems


# ------------------------------------------------------------------------------------------------
# The package
# ------------------------------------------------------------------------------------------------
def test_no_import_circle():
    assert find_cycles(package_imports(PACKAGE_DIR)) == []


def test_imports_go_down_the_stages():
    assert layer_problems(package_imports(PACKAGE_DIR), stage_layers(PACKAGE_DIR)) == []


def test_every_stage_is_a_subpackage_with_modules():
    for stage, members in stage_layers(PACKAGE_DIR):
        assert (PACKAGE_DIR / stage / "__init__.py").is_file(), f"stage {stage} has no subpackage"
        assert members, f"stage {stage} holds no module"


def test_no_package_file_is_ignored_by_git():
    """A module that .gitignore hides works here and is missing from every clone (a ``data/``
    pattern once swallowed ``sed_utils/data/``). Skipped outside a git checkout."""
    import subprocess

    root = PACKAGE_DIR.parent
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--",
                          "sed_utils", "tests", "notebooks", "benchmarks"],
                         cwd=root, capture_output=True, text=True, check=True).stdout.split()
    hidden = [p for p in out if p.endswith((".py", ".ipynb", ".yml", ".md"))
              and "__pycache__" not in p and ".ipynb_checkpoints" not in p]
    assert hidden == [], f"ignored by .gitignore, so absent from a clone: {hidden}"


def test_modules_and_functions_are_short():
    assert size_problems(PACKAGE_DIR) == []


def test_metrics_need_no_torch():
    graph = package_imports(PACKAGE_DIR)
    for path in sorted((PACKAGE_DIR / "metrics").glob("*.py")):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "torch" not in names, path
    # pure: the metrics import nothing of the package but each other
    assert graph["sed_utils.metrics.f1"] == set()
    assert graph["sed_utils.metrics.psds"] <= {"sed_utils.metrics.f1"}
    assert graph["sed_utils.metrics.confusion"] <= {"sed_utils.metrics.f1"}


def test_public_docstrings_name_their_notebook():
    assert docstring_problems(PACKAGE_DIR) == []


# ------------------------------------------------------------------------------------------------
# The checker catches what it claims to (tests of the test, on made-up packages)
# ------------------------------------------------------------------------------------------------
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    return pkg


def test_checker_finds_a_circle_hidden_in_a_function(tmp_path):
    pkg = _package(tmp_path, {
        "low.py": "def f():\n    from pkg.high import g\n    return g\n",
        "high.py": "from pkg import low\n",
    })
    assert find_cycles(package_imports(pkg)) == [["pkg.high", "pkg.low"]]


def test_checker_finds_an_upward_import(tmp_path):
    pkg = _package(tmp_path, {"low.py": "from .high import g\n", "high.py": "def g():\n    pass\n"})
    layers = [("base", ["pkg", "pkg.low"]), ("top", ["pkg.high"])]
    problems = layer_problems(package_imports(pkg), layers)
    assert len(problems) == 1 and "pkg.low" in problems[0] and "imports pkg.high" in problems[0]
    assert find_cycles(package_imports(pkg)) == []  # no circle: only the layer rule catches it


def test_checker_catches_an_upward_import_added_to_the_real_package(tmp_path):
    import shutil

    copy = tmp_path / "sed_utils"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert layer_problems(package_imports(copy), stage_layers(copy)) == []
    config = copy / "config" / "settings.py"
    late = "\n\ndef _late():\n    from sed_utils.evaluate.evaluation import evaluate\n"
    config.write_text(config.read_text() + late)
    problems = layer_problems(package_imports(copy), stage_layers(copy))
    assert any("sed_utils.config.settings" in p and "sed_utils.evaluate.evaluation" in p for p in problems)
    (copy / "stray.py").write_text("")  # a module outside every stage
    assert any("sed_utils.stray: not in LAYERS" in p for p in layer_problems(package_imports(copy),
                                                                          stage_layers(copy)))


def test_checker_flags_unlisted_modules_long_functions_and_silent_docstrings(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    pkg = _package(tmp_path, {
        "long.py": f'def long_one():\n    """Used in notebook 03."""\n{body}\n',
        "quiet.py": 'def quiet():\n    """Says nothing of where it is used."""\n',
        "terse.py": 'def terse(a, b, *, c):\n    """Used in notebook 04."""\n',
    })
    assert any("not in LAYERS" in p for p in layer_problems(package_imports(pkg), [("all", ["pkg"])]))
    assert size_problems(pkg) == ["pkg.long.long_one: 87 lines (> 80)"]
    assert docstring_problems(pkg) == ["pkg.quiet.quiet", "pkg.terse.terse: 3 parameters, no Args section"]


@pytest.mark.parametrize("relative, expected", [("from . import keys", "pkg.keys"),
                                                ("from .keys import digest", "pkg.keys"),
                                                ("from ..keys import digest", "pkg.keys")])
def test_checker_resolves_relative_imports(tmp_path, relative, expected):
    pkg = _package(tmp_path, {"keys.py": "", "sub/__init__.py": "", "sub/mod.py": "",
                              "user.py": relative.replace("..", ".") + "\n",
                              "sub/user.py": relative if relative.startswith("from ..") else ""})
    graph = package_imports(pkg)
    assert expected in graph["pkg.user"] | graph["pkg.sub.user"]
