"""``python -m sed_utils detect PATH...``: a trained model on your own recordings (notebook 09).

    python -m sed_utils detect my_recordings/ --run runs/scenes --out events.tsv
    python -m sed_utils detect kitchen.mp3 "field/*.flac" --checkpoint model.pt --plot figures/
    python -m sed_utils detect a.wav --threshold Dog=0.4 --threshold 0.6 --format json
    python -m sed_utils detect field/ --per-file --format raven --skip-existing

Decisions, so that a batch behaves predictably:

* The model: ``--checkpoint FILE``, or ``--run DIR`` (its frame model if trained, else its chunk
  model; ``--model`` picks one); with neither, the first of ``runs/full``, ``runs/scenes`` and
  ``runs/demo`` that holds a model whose training finished (real data first), named on stderr. A
  model whose training has not finished gets a warning.
* ``--threshold VALUE`` sets every class, ``--threshold CLASS=VALUE`` one class (applied after,
  so ``--threshold 0.6 --threshold Dog=0.4`` works); likewise ``--median-filter``.
* Output: the DCASE tsv (``filename onset offset event_label score``; a recording without events gets a
  row with its name only, as in DESED's tables) to ``--out``, written atomically once all files are
  done, or to stdout; ``--format`` picks another layout (``sed_utils.detection.output``: json, weak,
  audacity, raven, scores). Files are named by their name alone, as DESED's tables do (``--names path``:
  as given); two inputs of the same name are then refused.
* ``--per-file``: one output per recording, written as soon as it is scored: beside the recording, or
  in the folder ``--out`` names (``<stem>.events.tsv``, ``<stem>.labels.txt`` for Audacity,
  ``<stem>.Table.1.selections.txt`` for Raven, ``<stem>.tsv`` for scores: a folder sed_scores_eval
  reads). ``--skip-existing`` then skips recordings whose output is there: an interrupted batch resumes.
  Audacity, Raven and scores hold one recording: several inputs need ``--per-file``.
* Everything that can be checked before the first file is decoded is checked then, with exit status
  2 and one line each: the model, the thresholds and median filters (stored or given: in [0, 1], odd
  filters), ``--out`` (not a folder, not one of the inputs, in a writable folder) and ``--plot``
  (not a file).
* A file that cannot be read does not stop the others. The failures are listed at the end with
  their reasons and the exit status is 1; the output then holds the files that worked. When no
  file worked, no output file is written at all. Ctrl-C stops with one line and exit status 130;
  an output file is never left half-written.
* The same file given twice (two relative paths, a folder and a pattern) is scored once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from sed_utils.config import REPO_ROOT
from sed_utils.core import atomic
from sed_utils.core.errors import ConfigError, SedError

# sed_utils.detection (torch) is imported inside the functions that need it

__all__ = ["add_detect_parser", "run_detect", "parse_overrides", "check_device"]

log = logging.getLogger(__name__)

DEFAULT_RUNS = ("full", "scenes", "demo")
#: ``--plot`` draws the log-mel of each recording's first 10 minutes (its scores and events in full).
PLOT_SECONDS = 600.0


def add_detect_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``detect`` sub-command's arguments (no notebook: the CLI; notebook 09 shows it)."""
    p = sub.add_parser("detect", help="detect events in your own audio files with a trained model",
                       description="Detect sound events in audio files with a trained model (notebook 09).")
    p.add_argument("paths", nargs="+", help="audio files, folders (searched recursively) or glob patterns")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", type=Path, help="a run folder, e.g. runs/scenes")
    src.add_argument("--checkpoint", type=Path, help="a checkpoint file (best.pt)")
    p.add_argument("--model", metavar="KIND",
                   help="which model of a run folder: frame or chunk (default: the frame model if trained)")
    p.add_argument("--out", type=Path,
                   help="write the events here (default: stdout); with --per-file, a folder for the outputs")
    p.add_argument("--format", default="tsv",
                   help="tsv or dcase (the DCASE table, default), json, weak (DCASE weak labels), audacity "
                        "(a label track), raven (a selection table) or scores (sed_scores_eval's curves)")
    p.add_argument("--per-file", action="store_true",
                   help="one output per recording, beside it (or in the folder --out names)")
    p.add_argument("--skip-existing", action="store_true",
                   help="with --per-file: skip recordings whose output exists (resumes a batch)")
    p.add_argument("--names", choices=("basename", "path"), default="basename",
                   help="name files in the tables by their name alone (default, as DESED does) or by path")
    p.add_argument("--plot", type=Path, metavar="DIR",
                   help="save one figure per file here (log-mel, events, scores)")
    p.add_argument("--threshold", action="append", default=[], metavar="[CLASS=]VALUE",
                   help="threshold override (repeatable)")
    p.add_argument("--median-filter", action="append", default=[], metavar="[CLASS=]FRAMES",
                   help="median filter override, in the model's frames (repeatable)")
    p.add_argument("--min-duration", action="append", default=[], metavar="[CLASS=]SECONDS",
                   help="drop events shorter than this (repeatable)")
    p.add_argument("--device", help="cpu, cuda, mps, ... (default: the fastest there is)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for the model (default: torch's, one per core; on a busy machine 1 "
                        "can be several times faster)")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="model inputs per forward pass: 10 s blocks of a frame model (default 1), 1 s "
                        "windows of the chunk model (default 128); meant for GPUs (on 2 CPU cores more was "
                        "slower); the events do not change")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar, no progress messages: warnings, errors and failed files only")
    return p


def parse_overrides(items: list[str], labels: list[str], cast: type, what: str) -> dict[str, Any] | None:
    """Per-class values from repeated ``--threshold`` or ``--median-filter`` options (no notebook: the CLI).

    ``["0.6", "Dog=0.4"]`` -> ``{every label: 0.6, "Dog": 0.4}``: a bare value sets every class,
    ``CLASS=VALUE`` one class, and later items override earlier ones.

    Args:
        items: the option's values, in command-line order.
        labels: the model's classes.
        cast: the value's type (``float`` for thresholds, ``int`` for median filters).
        what: the option's name without ``--``, for the error messages.

    Returns:
        ``{class: value}``, or None when ``items`` is empty.

    Raises:
        ValueError: a value ``cast`` cannot convert, or a class the model does not have.
    """
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        name, _, value = item.rpartition("=")
        try:
            number = cast(value)
        except ValueError:
            raise ValueError(f"--{what} {item!r}: {value!r} is not a number") from None
        if not name:
            out.update({lab: number for lab in labels})
        elif name in labels:
            out[name] = number
        else:
            raise ValueError(f"--{what} {item!r}: unknown class {name!r}; the model's classes are {labels}")
    return out


def _model_source(args: argparse.Namespace) -> Path:
    """The model ``detect`` uses: ``--checkpoint``, ``--run``, or the first default run holding a model
    whose training finished (one still training or interrupted only when no other is there, with a
    warning from :func:`run_detect`)."""
    if args.checkpoint is not None:
        return args.checkpoint
    if args.run is not None:
        return args.run
    from sed_utils.detection.recordings import find_checkpoint
    from sed_utils.models.checkpoint import checkpoint_info, read_checkpoint

    found = []
    for name in DEFAULT_RUNS:
        folder = REPO_ROOT / "runs" / name
        try:
            path = find_checkpoint(folder, args.model)
            complete = checkpoint_info(read_checkpoint(path), path).complete
        except (FileNotFoundError, SedError):
            continue
        found.append((folder, complete))
    if not found:
        raise FileNotFoundError("no trained model under runs/full, runs/scenes or runs/demo: train one "
                                "(make demo, or notebook 05 / 08), or give --run DIR or --checkpoint FILE")
    folder = next((f for f, complete in found if complete), found[0][0])
    log.info(f"[detect] using the model of {folder} (--run or --checkpoint chooses another)")
    return folder


def _plotter(out_dir: Path, trained: Any) -> Any:
    """A callback saving each file's figure as ``<out_dir>/<name>.png`` (numbered on a name clash)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: the CLI never opens a window
    import matplotlib.pyplot as plt

    from sed_utils.detection.recordings import detection_logmel
    from sed_utils.plots.detection import plot_detection

    used: set[str] = set()
    hop = trained.detector.mel.hop_length / trained.detector.sample_rate

    def save(det: Any) -> None:
        stem = Path(det.filename).stem
        name, k = f"{stem}.png", 1
        while name in used:
            k += 1
            name = f"{stem}-{k}.png"
        used.add(name)
        logmel = detection_logmel(trained, det.audio, PLOT_SECONDS)
        fig = plot_detection(det, logmel, hop, mel=trained.detector.mel)
        atomic.write_with(out_dir / name, lambda fh: fig.savefig(fh, format="png", dpi=110))
        plt.close(fig)

    return save


def check_device(name: str | None) -> None:
    """Refuse a ``--device`` torch does not know, or one this machine lacks (no notebook: the CLI's
    ``detect`` and ``train``), before any file is read.

    Raises:
        ConfigError: naming the device and why.
    """
    if name is None:
        return
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"--device {name!r}: not a device torch knows (cpu, cuda:1, mps): {e}") from None
    present = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}.get(device.type)
    if present is not None and not present():
        raise ConfigError(f"--device {name}: this machine has no {device.type.upper()} device torch can use")


def _per_file_targets(args: argparse.Namespace, files: list[Path]) -> dict[Path, Path]:
    """``--per-file``: each recording's output path; refuses a ``--out`` that is a file and two recordings
    that would write the same output."""
    from sed_utils.detection.output import per_file_path

    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out}: is a file; with --per-file give a folder for the outputs")
    targets: dict[Path, Path] = {}
    by_target: dict[Path, Path] = {}
    for f in files:
        target = per_file_path(f, args.format, args.out)
        if target.resolve() in by_target:
            fix = ("drop --out to write each beside its recording" if args.out is not None
                   else "they share a folder and a name: rename one")
            raise ValueError(f"{by_target[target.resolve()]} and {f} would both write {target}; {fix}")
        by_target[target.resolve()] = f
        targets[f] = target
    return targets


def _check_paths(args: argparse.Namespace, files: list[Path]) -> None:
    """Refuse ``--out`` and ``--plot`` values that could only fail after the batch, or destroy an input.

    Raises:
        ValueError: ``--out`` is a folder, is one of the input files, or lies in a folder that cannot be
            written; ``--plot`` is a file.
    """
    if args.out is not None and not args.per_file:
        out = args.out
        if out.is_dir():
            raise ValueError(f"--out {out}: is a folder; give a file name, e.g. {out / 'events.tsv'}")
        if any(out.resolve() == f.resolve() for f in files):
            raise ValueError(f"--out {out}: is one of the input recordings; it would be overwritten")
        parent = next((d for d in [out.parent, *out.parent.parents] if d.exists()), Path("."))
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"--out {out}: cannot write in {parent}")
    if args.plot is not None and args.plot.exists() and not args.plot.is_dir():
        raise ValueError(f"--plot {args.plot}: is a file; give a folder for the figures")


def run_detect(args: argparse.Namespace) -> int:
    """Run ``detect`` for parsed arguments; returns the exit status (no notebook: the CLI).
    torch and the model code load here, not when ``python -m sed_utils run`` starts."""
    try:
        return _run_detect(args)
    except KeyboardInterrupt:
        print("\n[detect] interrupted; no output written", file=sys.stderr)
        return 130


def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Everything checked before the first file is decoded: the files, the outputs, the model and the
    post-processing (raises SedError, OSError or ValueError with the line to print)."""
    from sed_utils.detection import expand_inputs, file_names, load_model, post_processing_of
    from sed_utils.detection.output import FORMATS, ONE_RECORDING_FORMATS

    if args.format not in FORMATS:
        raise ValueError(f"--format {args.format!r}: choose one of {', '.join(FORMATS)}")
    if args.skip_existing and not args.per_file:
        raise ValueError("--skip-existing needs --per-file (a combined output is written once, at the end)")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads {args.threads}: give 1 or more")
        import torch

        torch.set_num_threads(args.threads)
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: give 1 or more")
    files, missing = expand_inputs(args.paths)
    if args.format in ONE_RECORDING_FORMATS and not args.per_file and len(files) > 1:
        raise ValueError(f"--format {args.format} holds one recording and {len(files)} were given: add "
                         "--per-file (one output each)")
    file_names(files, args.names, unique=not args.per_file)
    check_device(args.device)
    _check_paths(args, files)
    targets = _per_file_targets(args, files) if args.per_file else {}
    skipped = [f for f in files if f in targets and targets[f].exists()] if args.skip_existing else []
    trained = load_model(_model_source(args), args.model, args.device)
    labels = list(trained.labels)
    post = {"thresholds": parse_overrides(args.threshold, labels, float, "threshold"),
            "median_filters": parse_overrides(args.median_filter, labels, int, "median-filter"),
            "min_durations": parse_overrides(args.min_duration, labels, float, "min-duration")}
    post_processing_of(trained, **post)  # the same checks detect() makes, before any file
    for folder in [args.plot, args.out if args.per_file else None]:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    return {"files": [f for f in files if f not in skipped], "missing": missing, "skipped": skipped,
            "targets": targets, "trained": trained, "post": post}


def _callbacks(args: argparse.Namespace, ready: dict[str, Any]) -> Any:
    """What runs on each file's detection as it comes: its figure (``--plot``), its output
    (``--per-file``, atomically: an interrupted batch leaves finished files whole)."""
    from sed_utils.detection.output import detection_text

    plot = _plotter(args.plot, ready["trained"]) if args.plot is not None else None
    targets = ready["targets"]
    if plot is None and not targets:
        return None

    def on_detection(det: Any) -> None:
        if plot is not None:
            plot(det)
        if targets:
            atomic.write_text(targets[det.path], detection_text(det, args.format))

    return on_detection


def _write_batch(args: argparse.Namespace, batch: Any) -> int:
    """The combined output of a batch (not ``--per-file``): to ``--out`` or stdout; 1 on a failed write."""
    from sed_utils.detection.output import events_text, scores_text

    names = [d.filename for d in batch.detections]
    if args.format == "scores":  # one recording (checked up front)
        text = scores_text(batch.detections[0])
    else:
        text = events_text(batch.events, args.format, files=names)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        atomic.write_text(args.out, text)
    except OSError as e:  # a full disk, a folder made read-only during the batch
        print(f"[detect] error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    log.info(f"[detect] {len(batch.events)} events from {len(batch.detections)} file(s) -> {args.out}")
    return 0


def _run_detect(args: argparse.Namespace) -> int:
    from sed_utils.detection import detect_files

    try:
        ready = _prepare(args)
    except (SedError, OSError, ValueError) as e:
        print(f"[detect] error: {e}", file=sys.stderr)
        return 2
    trained = ready["trained"]
    log.info(f"[detect] {trained.kind} model {trained.info.path}")
    if not trained.info.complete:
        log.warning(f"[detect] this model's training has not finished (still running, or interrupted: its "
                    f"best epoch so far, {trained.info.epoch}, is used); re-run the training to finish it")
    if ready["skipped"]:
        log.info(f"[detect] {len(ready['skipped'])} recording(s) skipped: their output exists "
                 "(--skip-existing)")
    quiet = args.quiet or getattr(args, "quiet_all", False)  # detect --quiet, or sed-utils -q detect
    batch = detect_files(ready["files"], trained, progress=not quiet,
                         on_detection=_callbacks(args, ready), seen_seconds=PLOT_SECONDS, names=args.names,
                         unique_names=not args.per_file, batch_size=args.batch_size, **ready["post"])
    failures = ready["missing"] + batch.failures
    if batch.detections:
        log.info(f"[detect] post-processing: {batch.detections[0].source}")
        for det in batch.detections:
            for note in det.notes:
                log.warning(f"[detect] {det.filename}: {note}")
        if args.per_file:
            where = f"in {args.out}" if args.out is not None else "beside each recording"
            log.info(f"[detect] {len(batch.detections)} output(s) written {where}")
        elif _write_batch(args, batch):
            return 1
    if failures:
        print(f"[detect] {len(failures)} file(s) failed:", file=sys.stderr)
        for path, reason in failures:
            print(f"  {reason}" if reason.startswith(str(path)) else f"  {path}: {reason}", file=sys.stderr)
        if not batch.detections and args.out is not None:
            print(f"[detect] nothing written to {args.out}", file=sys.stderr)
        return 1
    return 0
