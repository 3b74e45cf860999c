"""Run the notebook series headless, in order, with papermill.

``python -m sed_utils run --profile demo`` executes every ``notebooks/NN_*.ipynb`` into
``runs/<profile>/notebooks/`` (one executed copy per notebook, outputs included), passing each the
profile and the ``-p key=value`` config overrides as papermill parameters. It stops at the first
failing cell and says which notebook and which cell, and ``--from 03`` resumes from a notebook
(everything before it is assumed done: the caches make the later notebooks pick up its results).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sed_utils.cli.detect import add_detect_parser, check_device, run_detect
from sed_utils.config import REPO_ROOT, load_config
from sed_utils.core import atomic
from sed_utils.core.errors import (
    AudioError,
    CheckpointError,
    ConfigError,
    DatasetError,
    DownloadError,
    LockError,
    NotebookFailed,
    SedError,
)
from sed_utils.core.logs import configure_logging
from sed_utils.core.progress import PLAIN_PROGRESS_ENV
from sed_utils.data.registry import prepare_datasets

logger = logging.getLogger(__name__)
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
#: Set to 1 (or pass --debug) to see the traceback of an expected error too.
DEBUG_ENV = "SED_DEBUG"
#: What to do next, per kind of expected error: printed under its one-line message.
HINTS: dict[type, str] = {
    ConfigError: "check config.yml and the -p KEY=VALUE overrides (README, 'Configuration')",
    DownloadError: "README, 'Data': what is removed on a failure and how to recover",
    DatasetError: "run 'python -m sed_utils download --profile <profile>' (or notebook 01) first",
    AudioError: "the file named above cannot be used as it is: replace or re-encode it",
    CheckpointError: "train the model first (notebook 05 or 08), or point --checkpoint at one",
    LockError: "another run is writing the same folder: wait for it to finish (or stop it), then run again",
}
_NUMBERED = re.compile(r"^(\d\d)_.+\.ipynb$")
#: A line each notebook kernel runs when it starts (not a cell: the executed copy does not show it).
#: When the runner asks the kernel to stop, it exits as usual (its reply sent, the atexit handlers
#: run: logging flushed) but skips Python's teardown of every loaded module, which takes 1.2-1.4 s
#: once torch is imported (measured; 10 s of the demo series). The runner's stop stays the graceful
#: one: the kernel's own exit, not a kill (a killed kernel once left a later notebook hanging).
FAST_EXIT_LINE = ("import atexit, logging, os, sys; "
                  "atexit.register(lambda: (logging.shutdown(), sys.stdout.flush(), sys.stderr.flush(), "
                  "os._exit(0)))")


@dataclass
class NotebookRun:
    """One executed notebook of a run: name, executed copy, seconds taken
    (no notebook: the runner's result)."""

    name: str
    output: Path
    seconds: float


def list_notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks of the series, in order (``01_...`` to ``NN_...``).
    No notebook: used by the runner."""
    if not notebook_dir.is_dir():
        raise SedError(f"{notebook_dir}: no notebooks folder; `run` executes the tutorial's notebooks: work "
                       f"inside a clone of sed-tutorial, or set SED_PROJECT to the clone's folder")
    found = sorted(p for p in notebook_dir.glob("*.ipynb") if _NUMBERED.match(p.name))
    if not found:
        raise FileNotFoundError(f"{notebook_dir}: no numbered notebooks (NN_name.ipynb) found")
    return found


def select_notebooks(notebooks: list[Path], start: str | None = None, stop: str | None = None) -> list[Path]:
    """Keep the notebooks from ``start`` to ``stop`` (inclusive), given as numbers like ``"03"``
    (no notebook: the runner's --from/--to).

    Args:
        notebooks: numbered notebooks (``NN_name.ipynb``), as :func:`list_notebooks` lists them.
        start, stop: the first and last number to keep; None: from the first, to the last.

    Returns:
        The notebooks numbered from ``start`` to ``stop``, in the given order.

    Raises:
        ConfigError: no notebook is numbered in that range.
    """

    def number(p: Path) -> int:
        return int(p.name[:2])

    for name, value in (("--from", start), ("--to", stop)):
        if value and not str(value).isdigit():
            raise ConfigError(f"{name} {value!r}: give a notebook number, e.g. 03")
    lo = int(start) if start else 0
    hi = int(stop) if stop else 99
    chosen = [p for p in notebooks if lo <= number(p) <= hi]
    if not chosen:
        raise ConfigError(f"no notebook numbered between {start or '00'} and {stop or '99'}")
    return chosen


def _failing_cell(output: Path) -> tuple[int | None, str]:
    """Find the first failing cell in an executed notebook, numbered as in the ORIGINAL notebook.

    Code cells are counted from 1, skipping the cell papermill injects with the parameters, so
    "cell 3" is the third code cell a reader sees when opening the notebook in JupyterLab.
    """
    try:
        nb = json.loads(output.read_text())
    except (OSError, ValueError):
        return None, ""
    code_index = 0
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") != "code" or "injected-parameters" in tags:
            continue
        code_index += 1
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            src = cell.get("source", "")
            return code_index, "".join(src) if isinstance(src, list) else src
    return None, ""


def run_series(
    profile: str = "demo",
    overrides: list[str] | None = None,
    *,
    start: str | None = None,
    stop: str | None = None,
    output_dir: Path | None = None,
    notebook_dir: Path = NOTEBOOK_DIR,
    kernel_name: str = "python3",
    cell_timeout: int | None = 1800,
    log=None,
) -> list[NotebookRun]:
    """Execute the notebooks in order; raise :class:`NotebookFailed` at the first failing cell
    (no notebook: ``python -m sed_utils run``).

    Args:
        profile, overrides: the config profile and its ``key=value`` overrides, checked before any
            kernel starts and passed to each notebook as papermill parameters.
        start, stop: the first and last notebook number to run, e.g. ``"03"`` (None: the whole series).
        output_dir: where the executed copies go (default: the profile's ``paths.notebooks``).
        notebook_dir: where the numbered notebooks are.
        kernel_name: the Jupyter kernel that runs them: an IPython kernel (ipykernel), which takes the
            runner's start-up line (:data:`FAST_EXIT_LINE`).
        cell_timeout: seconds one cell may run (None: no limit).
        log: called with a line when each notebook starts and when it is done (default: this module's
            logger, at INFO).

    Returns:
        One :class:`NotebookRun` per executed notebook. A ``timings.json`` next to the executed
        copies records how long each took, rewritten after each notebook and keeping the entries of
        notebooks not run this time (the README's per-notebook times come from it).

    Raises:
        NotebookFailed: a cell raised; it names the notebook and the cell.
        ConfigError: a bad profile or override, or no notebook numbered from ``start`` to ``stop``.
        FileNotFoundError: ``notebook_dir`` holds no numbered notebook.
    """
    overrides = list(overrides or [])
    cfg = load_config(profile, overrides)  # fail fast on a bad profile/override, before any kernel starts
    out_dir = Path(output_dir) if output_dir else cfg.paths.notebooks
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = select_notebooks(list_notebooks(notebook_dir), start, stop)
    runs: list[NotebookRun] = []
    timings_path = out_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    with _kernel_environment():
        for nb_path in chosen:
            runs.append(_run_one(nb_path, out_dir, profile, overrides, kernel_name, cell_timeout,
                                 log or logger.info))
            timings[nb_path.name] = round(runs[-1].seconds, 1)
            atomic.write_json(timings_path, timings)
    return runs


@contextmanager
def _kernel_environment() -> Iterator[None]:
    """What the notebook kernels inherit while the runner starts them, restored afterwards.

    Progress bars as text (:mod:`sed_utils.core.progress`), so the saved copies show where each loop
    ended; matplotlib's inline backend even where ``MPLBACKEND=Agg`` is set for headless runs (CI
    sets it), which would otherwise leave every figure out of the executed notebooks."""
    wanted = {PLAIN_PROGRESS_ENV: "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_one(nb_path: Path, out_dir: Path, profile: str, overrides: list[str], kernel_name: str,
             cell_timeout: int | None, log) -> NotebookRun:
    """Execute one notebook into ``out_dir``; a failing cell becomes :class:`NotebookFailed`."""
    import papermill  # imported here: it costs seconds and only the runner needs it

    output = out_dir / nb_path.name
    log(f"[sed_utils] running {nb_path.name} (profile={profile}) -> {output}")
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(nb_path),
            str(output),
            parameters={"profile": profile, "overrides": overrides},
            kernel_name=kernel_name,
            cwd=str(nb_path.parent),
            progress_bar=False,
            execution_timeout=cell_timeout,
            extra_arguments=[f"--IPKernelApp.exec_lines={json.dumps([FAST_EXIT_LINE])}"],
        )
    except papermill.PapermillExecutionError as e:
        index, source = _failing_cell(output)
        raise NotebookFailed(nb_path, index if index is not None else e.exec_count, source,
                             f"{e.ename}: {e.evalue}", output) from None
    seconds = time.perf_counter() - t0
    log(f"[sed_utils] {nb_path.name} done in {seconds:.1f} s")
    return NotebookRun(nb_path.name, output, seconds)


def report_error(error: SedError, *, debug: bool = False, stream=None) -> int:
    """Print an expected error as one line plus a hint (its traceback too with ``debug``) and
    return the exit status (no notebook: the command line).

    Args:
        error: the error; the first line of its message is printed, its other lines indented below,
            then the :data:`HINTS` entry of its class, if any.
        debug: print the traceback first.
        stream: where to print (default: ``sys.stderr``).

    Returns:
        The exit status: 1 for :class:`NotebookFailed`, 2 for any other error.
    """
    import traceback

    stream = stream or sys.stderr
    if debug:
        traceback.print_exception(error, file=stream)
    kind = type(error).__name__
    first, *rest = str(error).splitlines() or [""]
    print(f"[sed_utils] {kind}: {first}", file=stream)
    for line in rest:
        print(f"  {line}", file=stream)
    hint = next((h for cls, h in HINTS.items() if isinstance(error, cls)), None)
    if hint:
        print(f"  hint: {hint}", file=stream)
    if not debug and not isinstance(error, NotebookFailed):  # a notebook's traceback is in its executed copy
        print(f"  (traceback: add --debug, or set {DEBUG_ENV}=1)", file=stream)
    return 1 if isinstance(error, NotebookFailed) else 2


def _add_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    """The repeatable ``-p/--param KEY=VALUE`` config override of ``run``, ``download`` and ``train``."""
    parser.add_argument("-p", "--param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"config override, e.g. -p {example} (repeatable)")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m sed_utils run --profile demo [--from 03] [-p key=value ...]``,
    ``download`` and ``detect PATH...`` (:mod:`sed_utils.cli.detect`) (no notebook: the runner).

    An expected error (:class:`~sed_utils.core.errors.SedError`: a bad config value, a failed download,
    a missing dataset) prints one line and a hint and exits with 2; ``--debug`` or ``SED_DEBUG=1``
    adds the traceback. Anything else is a bug and keeps Python's traceback.
    """
    import os

    installed = Path(sys.argv[0]).name == "sed-utils"  # the console script of a pip install
    parser = argparse.ArgumentParser(prog="sed-utils" if installed else "python -m sed_utils",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of expected errors too (or set {DEBUG_ENV}=1)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more messages (debug)")
    parser.add_argument("-q", "--quiet", dest="quiet_all", action="store_true",
                        help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebook series with papermill")
    run.add_argument("--profile", default="demo", help="config profile: demo (synthetic, offline) or full")
    run.add_argument("--from", dest="start", help="first notebook number to run, e.g. 03 (resume)")
    run.add_argument("--to", dest="stop", help="last notebook number to run, e.g. 05")
    _add_overrides(run, "models.chunk.epochs=2")
    run.add_argument("--output", type=Path,
                     help="folder for executed notebooks (default runs/<profile>/notebooks)")
    dl = sub.add_parser("download", help="download (or, on the demo profile, generate) the datasets")
    dl.add_argument("--profile", default="full")
    _add_overrides(dl, "download.timeout_seconds=60")
    add_detect_parser(sub)
    doc = sub.add_parser("doctor", help="check your own annotated dataset before training on it")
    doc.add_argument("data", type=Path, help="the dataset's folder (layout: sed_utils.labels.own_dataset)")
    doc.add_argument("--seed", type=int, default=0, help="the split's seed")
    own = sub.add_parser("train", help="train a detector of your own sounds (after doctor)")
    own.add_argument("data", type=Path, help="the dataset's folder (as doctor reads it)")
    own.add_argument("--out", type=Path, required=True, help="the run folder, e.g. runs/mine")
    own.add_argument("--seed", type=int, default=0, help="the split's and the training's seed")
    _add_overrides(own, "models.frame.epochs=3")
    own.add_argument("--device", help="cpu, cuda, mps, ... (default: the fastest there is)")
    own.add_argument("--init", type=Path, metavar="CHECKPOINT",
                     help="start from this model's weights (fine-tuning), e.g. runs/scenes/frame/best.pt")
    args = parser.parse_args(argv)
    quiet = args.quiet_all or getattr(args, "quiet", False) or os.environ.get("RANK", "0") != "0"  # torchrun
    configure_logging(args.verbose - int(quiet), sys.stderr)
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return _dispatch(args)
    except SedError as e:
        return report_error(e, debug=debug)


def _doctor(data: Path, seed: int) -> int:
    """``doctor DATA``: the classes, the split and every finding; 2 when something must be fixed."""
    from sed_utils.labels.own_dataset import class_table, scan_dataset, split_recordings, split_table

    ds = scan_dataset(data)
    table = class_table(ds)
    if ds.fatal:
        print(table.to_string(float_format="%.1f"))
    else:
        per_split = split_table(ds, split_recordings(ds, seed=seed))
        print(table.join(per_split.add_prefix("recordings in ")).to_string(float_format="%.1f"))
        print(f"{len(ds.recordings)} recordings ({(ds.recordings['kind'] == 'negative').sum()} negatives), "
              f"{ds.recordings['seconds'].sum() / 60:.1f} min; split by recording, seed {seed}")
    for problem in ds.problems:
        print(problem)
    if ds.fatal:
        print(f"{len(ds.fatal)} problem(s) to fix before training")
        return 2
    return 0


def _train_own(args) -> int:
    """``train DATA --out DIR``: the doctor, then :func:`sed_utils.evaluate.own_sounds.train_own`."""
    from sed_utils.evaluate.own_sounds import train_own
    from sed_utils.labels.own_dataset import scan_dataset
    from sed_utils.train import distributed

    check_device(args.device)
    if args.init is not None and not args.init.is_file():
        raise CheckpointError(f"--init {args.init}: no such checkpoint file")
    ds = scan_dataset(args.data)
    for problem in ds.problems:
        if not problem.fatal:  # the fatal ones stop train_own, listed in its error
            logger.info(str(problem))
    init = [f"train.init_from={args.init.resolve()}"] if args.init else []
    try:
        run = train_own(ds, args.out, overrides=[*args.overrides, *init], seed=args.seed, device=args.device)
    finally:
        distributed.finish()  # torchrun: leave the process group
    if not distributed.is_main():
        return 0
    r = run.report
    print(f"test split ({r['recordings']} recordings, {r['minutes']:.1f} min): event F1 {r['event_f1']:.3f}, "
          f"segment F1 {r['segment_f1']:.3f}, PSDS1 {r['psds1']:.3f}; report: {run.cfg.run_dir}/report.json")
    print(f"detect with it: python -m sed_utils detect RECORDINGS --run {run.cfg.run_dir}")
    return 0


def _dispatch(args) -> int:
    if args.command == "detect":
        return run_detect(args)
    if args.command == "doctor":
        return _doctor(args.data, args.seed)
    if args.command == "train":
        return _train_own(args)

    if args.command == "download":
        cfg = load_config(args.profile, args.overrides)
        for name, path in prepare_datasets(cfg).items():
            print(f"{name}: {path}")
        return 0

    t0 = time.perf_counter()
    runs = run_series(args.profile, args.overrides, start=args.start, stop=args.stop, output_dir=args.output)
    total = time.perf_counter() - t0
    logger.info(f"[sed_utils] {len(runs)} notebooks in {total:.0f} s; executed copies in "
                f"{runs[-1].output.parent}")
    return 0
