"""Shared plumbing of the benchmarks: data root, config, timing, machine info, results and tables.

Why a separate module: every benchmark must report the same things the same way (medians, the
machine, how busy it was), and the markdown tables are rebuilt from ALL result files so running one
benchmark again (``--only train``) refreshes its table without losing the others.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere: make ``sed_utils`` importable
    sys.path.insert(0, str(REPO_ROOT))

from sed_utils.config import Config, load_config  # noqa: E402
from sed_utils.core import atomic  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TABLES_NAME = "README_tables.md"
ORDER = ("data", "features", "train", "eval")
BUSY_WARNING = 0.10  # share of the CPU taken by other processes above which results are flagged


class BenchmarkError(RuntimeError):
    """A benchmark cannot run (missing data, bad argument); the message says what to do."""


# ------------------------------------------------------------------------------------------------
# Config and data
# ------------------------------------------------------------------------------------------------
def bench_config(data_root: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> Config:
    """The ``full`` profile pointed at ``data_root`` (default: $SED_DATA_ROOT, else the profile's root).

    Raises :class:`BenchmarkError` when ESC-50 is not extracted there: the benchmarks measure the
    real data, and a user gets it from notebook 01 (``profile = "full"``).
    """
    cfg = load_config("full", list(overrides))
    if data_root:
        # $SED_DATA_ROOT beats overrides inside load_config; an explicit --data-root must win here.
        cfg = dataclasses.replace(cfg, data_root=Path(data_root).expanduser().resolve())
    csv = cfg.data_root / "ESC-50-master" / "meta" / "esc50.csv"
    if not csv.is_file():
        raise BenchmarkError(
            f"{csv}: ESC-50 not found under data root {cfg.data_root}. The benchmarks need the real "
            "ESC-50: run notebooks/01_download_data.ipynb with profile = \"full\" (or "
            "`python -m sed_utils download --profile full`), or pass --data-root DIR where "
            "DIR/ESC-50-master/{audio,meta} exists."
        )
    return cfg


# ------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call of ``fn``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> float:
    """Relative spread (max - min) / median: how much to trust a median on a noisy machine."""
    m = median(values)
    return float((max(values) - min(values)) / m) if m > 0 and len(values) > 1 else 0.0


def mean_sd(values: Sequence[float], percent: bool = False) -> str:
    """``mean ± standard deviation`` over seeds as the quality tables print it ("0.345 ± 0.011",
    or "44 % ± 6" for a share with ``percent``); the mean alone for one value."""
    scale, fmt = (100.0, "{:.0f}") if percent else (1.0, "{:.3f}")
    text = fmt.format(scale * statistics.mean(values)) + (" %" if percent else "")
    if len(values) > 1:
        text += " ± " + fmt.format(scale * statistics.stdev(values))
    return text


def save_seed_results(name: str, summary: dict[str, Any], table: str) -> None:
    """Write ``results/<name>.json`` (``summary``: runs, seeds, command, ...) and ``results/<name>.md``
    (``table``), each atomically: the quality benchmarks call it after every seed, so an interrupted
    run keeps the seeds it measured."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    atomic.write_text(RESULTS_DIR / f"{name}.json", json.dumps(summary, indent=2) + "\n")
    atomic.write_text(RESULTS_DIR / f"{name}.md", table)


def log(msg: str) -> None:
    """Progress line, flushed at once (benchmarks run for minutes; the user should see them move)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> float | None:
    """1-minute load average (None where the OS has none): above the core count, numbers are inflated."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


class CpuMonitor:
    """Share of the machine's CPU time used by OTHER processes while a benchmark ran (Linux only).

    Why: on a 2-core machine anything else running (a browser, a test suite) steals a core, and
    2-thread torch ops then wait for the slower thread. The timings are only comparable with the
    share of CPU others took during them, so it is measured and reported: busy time from
    ``/proc/stat`` minus the CPU time of this process and its children, over all cores' time.
    """

    def __init__(self) -> None:
        self._start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[int, int, int] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
            total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
            busy = total - fields[3] - fields[4]
            return total, busy, _own_ticks()
        except (OSError, ValueError, IndexError):
            return None

    def others_share(self) -> float | None:
        """Fraction (0-1) of all cores' time that other processes used since construction."""
        end = self._snapshot()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return None
        d_total, d_busy, d_own = (e - s for e, s in zip(end, self._start, strict=True))
        return round(min(max((d_busy - d_own) / d_total, 0.0), 1.0), 3)


def _own_ticks() -> int:
    """CPU ticks of this process, its live descendants, and its reaped children."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()  # fields after "pid (comm)"
        pid = int(d.name)
        parents[pid] = int(rest[1])
        ticks[pid] = int(rest[11]) + int(rest[12])  # utime + stime
        if pid == os.getpid():
            ticks[pid] += int(rest[13]) + int(rest[14])  # cutime + cstime: children already reaped
    mine, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in mine]
        mine.update(kids)
        frontier.extend(kids)
    return sum(ticks.get(p, 0) for p in mine)


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: cores, CPU model, torch version and thread settings."""
    import numpy as np
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "cuda_available": torch.cuda.is_available(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------
def column(key: str, header: str, fmt: str = "{}") -> dict[str, str]:
    """One table column: the row key, its header, and a format for the value."""
    return {"key": key, "header": header, "fmt": fmt}


def write_result(out_dir: Path, name: str, result: dict[str, Any]) -> Path:
    """Write ``out_dir/<name>.json`` atomically (tmp name then os.replace)."""
    path = out_dir / f"{name}.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(result, indent=2, default=str) + "\n")
    return path


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def result_markdown(result: dict[str, Any]) -> str:
    """One benchmark's section: title, what it measured, a table, then its notes."""
    cols = result["columns"]
    lines = [f"## {result['title']}", "", result["description"], ""]
    lines.append("| " + " | ".join(c["header"] for c in cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for row in result["rows"]:
        lines.append("| " + " | ".join(_cell(row.get(c["key"]), c["fmt"]) for c in cols) + " |")
    lines.append("")
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    load = result.get("load", {})
    others = load.get("others_cpu_share")
    busy = f"other processes used {others:.0%} of the CPU meanwhile; " if others is not None else ""
    lines.append(
        f"- Run: {result['seconds']:.0f} s on {result['machine']['date']}; {busy}1-min load average "
        f"{load.get('before')} before, {load.get('after')} after ({result['machine']['cores']} cores)."
    )
    if others is not None and others > BUSY_WARNING:
        lines.append(
            f"- **Warning:** other processes took {others:.0%} of the CPU during this benchmark; times are "
            "inflated and the 2-thread rows suffer most. Re-run it on a quiet machine."
        )
    lines.append("")
    return "\n".join(lines)


def machine_markdown(machine: dict[str, Any]) -> str:
    return (
        f"Machine: {machine['cpu'] or 'unknown CPU'}, {machine['cores']} cores, "
        f"Python {machine['python']}, torch {machine['torch']} (default {machine['torch_threads_default']} "
        f"threads, OMP_NUM_THREADS={machine['omp_num_threads_env']}), CUDA used: no."
    )


def write_tables(out_dir: Path) -> Path:
    """Rebuild ``README_tables.md`` from every ``<name>.json`` in ``out_dir`` (fixed order)."""
    results = []
    for name in ORDER:
        path = out_dir / f"{name}.json"
        if path.is_file():
            try:
                results.append(json.loads(path.read_text()))
            except json.JSONDecodeError as e:
                raise BenchmarkError(f"{path}: not valid JSON ({e}); delete it and re-run") from e
    parts = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/run.py` (see `benchmarks/README.md`); medians over repeats. "
        "Do not edit by hand: re-run the benchmark.",
        "",
    ]
    if results:
        parts += [machine_markdown(results[-1]["machine"]), ""]
        commands = sorted({r.get("command", "") for r in results if r.get("command")})
        parts += [f"Command: `{c}`" for c in commands] + [""]
    parts += [result_markdown(r) for r in results]
    path = out_dir / TABLES_NAME
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, "\n".join(parts))
    return path
