"""Your own annotated sounds as a dataset: found in a folder, checked before anything is trained, split
by recording (``python -m sed_utils doctor DATA``; the own-sounds training builds on it).

The folder (every part optional but one with labels)::

    DATA/
      classes.txt                 the classes, one per line (default: every label found)
      *.tsv                       DCASE strong-label tables (filename onset offset event_label; a row with a
                                  name only marks a recording without events); filenames relative to DATA,
                                  or names alone when they are unique
      **/rec.wav + rec.txt        a recording with its Audacity label track beside it (same stem), or
      **/rec.wav + rec.Table.1.selections.txt   with its Raven selection table
      clips/<class>/*.wav         short clips of one class each (weak labels: the class sounds in the clip)
      negatives/**/*.wav          recordings with none of the classes (and background/: the same)
      split.tsv                   optional: filename<TAB>train|valid|test (default: a seeded split)

A folder named ``train``, ``valid`` or ``test`` anywhere in a recording's path (``field/test/rec9.wav``,
``clips/dog/valid/bark.wav``, ``negatives/train/hum.wav``) puts it in that split; ``split.tsv`` wins over
folders, and recordings in neither are split by :func:`split_recordings`' rule.

Every other audio file is reported and left out (no labels: not known to be a negative).

What the doctor refuses (fatal: nothing is trained until fixed), each with its file and line: a label not
in ``classes.txt`` (with the nearest known one); a class with fewer than :data:`MIN_PER_CLASS` recordings
(it cannot be in train, validation and test), naming a similar class when one is close (a misspelling);
an event whose onset is not before its offset, or that starts before 0 or ends after its recording; an
annotation naming a recording that is not there; an audio file that cannot be read; a label file that
cannot be parsed. What it notes: overlapping events of one class in one recording (merged), audio files
without labels (left out), recordings in ``negatives/`` (kept, all-zero targets).
"""

from __future__ import annotations

import difflib
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from sed_utils.core.errors import DatasetError
from sed_utils.io.audio import AUDIO_SUFFIXES
from sed_utils.labels.annotations import guess_format, read_annotations

__all__ = ["MIN_PER_CLASS", "SPLITS", "Problem", "OwnDataset", "scan_dataset", "class_table", "split_table",
           "split_recordings"]

#: The fewest recordings a class needs: one each for training, validation and test.
MIN_PER_CLASS = 3
SPLITS = ("train", "valid", "test")
#: Seconds an event may run past its recording's end (rounding in label tools) before it is an error.
END_SLACK = 0.05
NEGATIVE_FOLDERS = ("negatives", "background")


@dataclass(frozen=True)
class Problem:
    """One finding of the doctor (notebook 10): ``fatal`` ones stop training."""

    fatal: bool
    where: str
    message: str

    def __str__(self) -> str:
        return f"{'error' if self.fatal else 'note'}: {self.where}: {self.message}"


@dataclass
class OwnDataset:
    """A user's dataset as :func:`scan_dataset` found it (notebook 10).

    Attributes:
        root: the folder.
        recordings: one row per usable recording: ``filename`` (relative to ``root``), ``seconds``, ``kind``
            (``strong``: timed events, ``clip``: a class folder's clip, ``negative``).
        events: ``filename onset offset event_label`` (a clip's event spans the whole clip), ``source``
            (the label file and line).
        classes: the classes, in order.
        problems: every finding; :attr:`fatal` those that stop training.
    """

    root: Path
    recordings: pd.DataFrame
    events: pd.DataFrame
    classes: list[str]
    problems: list[Problem] = field(default_factory=list)

    @property
    def fatal(self) -> list[Problem]:
        return [p for p in self.problems if p.fatal]

    @property
    def seconds(self) -> dict[str, float]:
        """Each recording's length in seconds, by file name."""
        return dict(zip(self.recordings["filename"], self.recordings["seconds"], strict=True))

    @property
    def kinds(self) -> dict[str, str]:
        """Each recording's kind (``strong``, ``clip`` or ``negative``), by file name."""
        return dict(zip(self.recordings["filename"], self.recordings["kind"], strict=True))

    def check(self) -> None:
        """Raise :class:`DatasetError` listing every fatal problem (one line each), if any."""
        if self.fatal:
            lines = "\n".join(f"  {p}" for p in self.fatal)
            raise DatasetError(f"{self.root}: {len(self.fatal)} problem(s) to fix before training:\n{lines}")


def _seconds(path: Path) -> float:
    info = sf.info(os.fsencode(path))
    if info.samplerate <= 0 or info.frames <= 0:
        raise ValueError("no samples")
    return info.frames / info.samplerate


def _sidecar_labels(audio: Path) -> Path | None:
    """The label file beside a recording: ``<stem>.txt`` (Audacity) or ``<stem>.Table.*.selections.txt``."""
    raven = sorted(audio.parent.glob(f"{glob.escape(audio.stem)}.Table.*.selections.txt"))
    if raven:
        return raven[0]
    audacity = audio.with_suffix(".txt")
    return audacity if audacity.is_file() else None


def _tables(root: Path) -> list[Path]:
    """The DCASE tables at the top of the folder (``split.tsv`` excepted)."""
    out = []
    for p in sorted(root.glob("*.tsv")):
        if p.name != "split.tsv" and guess_format(p.read_text(encoding="utf-8", errors="replace")) == "dcase":
            out.append(p)
    return out


class _Scan:
    """The state of one scan: what was found so far and the problems met."""

    def __init__(self, root: Path):
        self.root = root
        self.problems: list[Problem] = []
        self.seconds: dict[str, float] = {}
        self.kind: dict[str, str] = {}
        self.events: list[tuple] = []

    def note(self, fatal: bool, where: Path | str, message: str) -> None:
        where = str(Path(where).relative_to(self.root)) if isinstance(where, Path) else where
        self.problems.append(Problem(fatal, where, message))

    def reader_error(self, path: Path, error: DatasetError) -> None:
        """A label file the reader refused: its message, with the path relative to the root."""
        rest = str(error)[len(str(path)):] if str(error).startswith(str(path)) else f": {error}"
        line, _, message = rest.partition(": ")
        self.note(True, f"{path.relative_to(self.root).as_posix()}{line}", message)

    def audio(self, path: Path) -> str | None:
        """Register a readable audio file; its name relative to the root, or None."""
        name = path.relative_to(self.root).as_posix()
        try:
            self.seconds[name] = _seconds(path)
        except Exception as e:  # soundfile's errors, a file with no samples
            self.note(True, path, f"cannot read the audio ({e})")
            return None
        return name


def _read_labelled(scan: _Scan, audio_files: list[Path], all_audio: list[Path]) -> set[str]:
    """Recordings with an Audacity/Raven file beside them (``audio_files``), and the DCASE tables (any of
    ``all_audio``: a name-only row may mark a file of negatives/); returns the names used."""
    used: set[str] = set()
    for path in audio_files:
        labels = _sidecar_labels(path)
        if labels is None or (name := scan.audio(path)) is None:
            continue
        try:
            ann = read_annotations(labels, filename=name)
        except DatasetError as e:
            scan.reader_error(labels, e)
            continue
        used.add(name)
        scan.kind[name] = "strong"
        for (_, row), line in zip(ann.events.iterrows(), ann.lines, strict=True):
            where = f"{labels.relative_to(scan.root).as_posix()} line {line}"
            scan.events.append((name, row.onset, row.offset, row.event_label, where))
    by_path = {p.relative_to(scan.root).as_posix(): p for p in all_audio}
    by_base: dict[str, list[str]] = {}
    for rel in by_path:
        by_base.setdefault(Path(rel).name, []).append(rel)
    for table in _tables(scan.root):
        try:
            ann = read_annotations(table, "dcase")
        except DatasetError as e:
            scan.reader_error(table, e)
            continue
        lines = dict(zip(ann.events.index, ann.lines, strict=True))
        for given in ann.files:
            rel = given if given in by_path else (by_base.get(Path(given).name, [None])[0]
                                                  if len(by_base.get(Path(given).name, [])) == 1 else None)
            if rel is None:
                scan.note(True, table, f"names {given!r}, which is not an audio file under {scan.root.name}/")
                continue
            if rel not in scan.seconds and scan.audio(by_path[rel]) is None:
                continue
            used.add(rel)
            scan.kind[rel] = "strong"
            for i, row in ann.events[ann.events["filename"] == given].iterrows():
                where = f"{table.name} line {lines[i]}"
                scan.events.append((rel, row.onset, row.offset, row.event_label, where))
    return used


def _check_events(scan: _Scan, classes: list[str] | None) -> pd.DataFrame:
    """Times inside their recording, known labels; overlapping events of a class merged (noted)."""
    events = pd.DataFrame(scan.events, columns=["filename", "onset", "offset", "event_label", "source"])
    keep = np.ones(len(events), bool)
    for i, e in events.iterrows():
        seconds = scan.seconds[e.filename]
        if e.onset >= e.offset and scan.kind[e.filename] == "strong":
            scan.note(True, e.source, f"onset {e.onset:g} s is not before offset {e.offset:g} s")
            keep[i] = False
        elif e.onset < 0 or e.offset > seconds + END_SLACK:
            scan.note(True, e.source, f"{e.event_label} {e.onset:g}-{e.offset:g} s lies outside "
                                      f"{e.filename} (0-{seconds:.2f} s)")
            keep[i] = False
        if classes is not None and e.event_label not in classes:
            near = difflib.get_close_matches(e.event_label, classes, n=1)
            scan.note(True, e.source, f"label {e.event_label!r} is not in classes.txt"
                                      + (f"; did you mean {near[0]!r}?" if near else f" ({classes})"))
            keep[i] = False
    events = events[keep].sort_values(["filename", "event_label", "onset"]).reset_index(drop=True)
    merged = []
    for (_, _), group in events.groupby(["filename", "event_label"], sort=False):
        rows = group.to_dict("records")
        current = rows[0]
        for row in rows[1:]:
            if row["onset"] < current["offset"]:
                scan.note(False, row["source"], f"{row['event_label']} overlaps the event of "
                                                f"{current['source']}: merged into one")
                current["offset"] = max(current["offset"], row["offset"])
            else:
                merged.append(current)
                current = row
        merged.append(current)
    return pd.DataFrame(merged, columns=events.columns)


def scan_dataset(root: Path, classes: Sequence[str] | None = None) -> OwnDataset:
    """Find and check a user's dataset (see the module docstring for the layout and the rules)
    (notebook 10, ``python -m sed_utils doctor``).

    Args:
        root: the dataset's folder.
        classes: the classes (default: ``classes.txt`` in ``root``, else every label found).

    Returns:
        An :class:`OwnDataset`; its ``problems`` list every finding (nothing is raised for them:
        :meth:`OwnDataset.check` does).

    Raises:
        DatasetError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    scan = _Scan(root)
    if classes is None and (root / "classes.txt").is_file():
        listed = (root / "classes.txt").read_text(encoding="utf-8").splitlines()
        classes = [c.strip() for c in listed if c.strip()]
    audio_files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    clip_dir = root / "clips"
    in_clips = [p for p in audio_files if clip_dir in p.parents]
    negatives = [p for p in audio_files if any((root / n) in p.parents for n in NEGATIVE_FOLDERS)]
    beside = [p for p in audio_files if p not in in_clips and p not in negatives]
    used = _read_labelled(scan, beside, audio_files)
    for path in in_clips:
        label = path.relative_to(clip_dir).parts[0]
        if len(path.relative_to(clip_dir).parts) < 2:
            scan.note(False, path, "directly in clips/, not in clips/<class>/: left out")
            continue
        if (name := scan.audio(path)) is None:
            continue
        scan.kind[name] = "clip"
        scan.events.append((name, 0.0, scan.seconds[name], label, f"clips/{label}/"))
        used.add(name)
    for path in negatives:
        if path.relative_to(root).as_posix() in used:  # named by a table already (a name-only row)
            continue
        if (name := scan.audio(path)) is not None:
            scan.kind[name] = "negative"
            used.add(name)
    for path in audio_files:
        rel = path.relative_to(root).as_posix()
        if rel not in used and rel not in scan.seconds and path not in in_clips:
            scan.note(False, path, "no labels beside it and not under negatives/: left out")
    events = _check_events(scan, list(classes) if classes is not None else None)
    found = list(classes) if classes is not None else sorted(events["event_label"].unique())
    recordings = pd.DataFrame({"filename": list(scan.kind), "seconds": [scan.seconds[n] for n in scan.kind],
                               "kind": list(scan.kind.values())})
    dataset = OwnDataset(root, recordings, events, found, scan.problems)
    if not found:
        dataset.problems.append(Problem(True, root.name, "no labelled sound: nothing to train (the layout: "
                                                         "sed_utils.labels.own_dataset)"))
    _check_class_sizes(dataset)
    return dataset


def class_table(dataset: OwnDataset) -> pd.DataFrame:
    """Per class: recordings, events and seconds of sound (notebook 10, what ``doctor`` prints first)."""
    ev = dataset.events.assign(seconds=dataset.events["offset"] - dataset.events["onset"])
    table = ev.groupby("event_label").agg(recordings=("filename", "nunique"), events=("filename", "size"),
                                         seconds=("seconds", "sum"))
    return table.reindex(dataset.classes, fill_value=0).rename_axis("class")


def split_table(dataset: OwnDataset, split: pd.Series) -> pd.DataFrame:
    """Per class, the recordings holding it in each split (notebook 10 and ``doctor``): rows
    ``dataset.classes``, columns :data:`SPLITS`."""
    return (dataset.events.merge(split.rename("split"), left_on="filename", right_index=True)
            .drop_duplicates(["filename", "event_label"])
            .pivot_table(index="event_label", columns="split", values="filename", aggfunc="count",
                         fill_value=0)
            .reindex(index=dataset.classes, columns=list(SPLITS), fill_value=0)
            .rename_axis(index="class", columns=None))


def _check_class_sizes(dataset: OwnDataset) -> None:
    counts = class_table(dataset)["recordings"]
    for label, n in counts.items():
        if n >= MIN_PER_CLASS:
            continue
        others = [c for c in dataset.classes if c != label and counts.get(c, 0) >= MIN_PER_CLASS]
        near = difflib.get_close_matches(label, others, n=1, cutoff=0.7)
        dataset.problems.append(Problem(
            True, f"class {label!r}", f"{n} recording(s); a class needs {MIN_PER_CLASS} (train, validation, "
            "test)" + (f": a misspelling of {near[0]!r}?" if near else ": add recordings or drop the class")))


def split_recordings(dataset: OwnDataset, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                     seed: int = 0) -> pd.Series:
    """Assign each recording to train, valid or test (notebook 10): never one recording in two splits,
    each class in every split, shares close to ``fractions`` per class.

    The rule: recordings in a random (seeded) order, the rarest class's first; each goes to a split that
    has none of its classes yet, else to the split whose share of its classes' recordings lies furthest
    below its target (a class of 3 recordings gets one in each split); then, where recordings holding
    several classes left a class out of a split, recordings are moved to fill the gap. A recording
    without events (a negative) counts for a class of its own, so negatives spread too. A ``train``,
    ``valid`` or ``test`` folder in a recording's path, then ``split.tsv``, override the rule for the
    recordings they place (the others keep the rule's split); every class must still be in every split.

    Args:
        dataset: from :func:`scan_dataset`.
        fractions: the wanted shares of train, valid, test.
        seed: the shuffle's seed.

    Returns:
        The split of each recording, indexed by filename.

    Raises:
        DatasetError: a class without a recording in some split, a ``split.tsv`` naming an unknown
            recording or split.
    """
    rng = np.random.default_rng(seed)
    labels = dataset.events.groupby("filename")["event_label"].agg(frozenset)
    names = list(dataset.recordings["filename"])
    tags = {n: labels.get(n, frozenset({_NONE})) for n in names}
    size = pd.Series([t for n in names for t in tags[n]]).value_counts()
    order = [names[i] for i in rng.permutation(len(names))]
    order.sort(key=lambda n: min(size[t] for t in tags[n]))
    target = np.asarray(fractions, float) / sum(fractions)
    have = {t: np.zeros(3) for t in size.index}
    out = {}
    for name in order:
        missing = sum((have[t] == 0).astype(float) for t in tags[name])  # a split without the class first
        deficit = sum(target * (have[t].sum() + 1) - have[t] for t in tags[name])
        k = int(np.argmax(missing * 1e3 + deficit))
        out[name] = SPLITS[k]
        for t in tags[name]:
            have[t][k] += 1
    _cover(out, tags, order)
    for name in names:  # a folder named train, valid or test (the innermost one) sets the split
        if folders := [part for part in Path(name).parts[:-1] if part in SPLITS]:
            out[name] = folders[-1]
    given = dataset.root / "split.tsv"
    if given.is_file():
        table = pd.read_csv(given, sep="\t", header=None, names=["filename", "split"], dtype=str,
                            encoding="utf-8-sig")
        unknown = [f for f in table["filename"] if f not in out]
        if unknown:
            raise DatasetError(f"{given}: names {unknown[:5]} that are not recordings of the dataset "
                               "(paths relative to its folder, as doctor lists them)")
        for row in table.itertuples():
            if row.split not in SPLITS:
                raise DatasetError(f"{given} line {row.Index + 1}: split {row.split!r} is not one of "
                                   f"{SPLITS}")
            out[row.filename] = row.split
    for tag in (t for t in size.index if t != _NONE):
        held = {out[n] for n in names if tag in tags[n]}
        if missing := [s for s in SPLITS if s not in held]:
            where = " or ".join(missing)
            raise DatasetError(f"{dataset.root}: class {tag!r} has no recording in the {where} split"
                               + (" (split.tsv)" if given.is_file() else "; add recordings of it"))
    return pd.Series(out).reindex(names).rename("split")


_NONE = "(none)"


def _cover(split: dict[str, str], tags: dict[str, frozenset], order: list[str]) -> None:
    """Move recordings until every class has one in each split, where a move takes from a split no class
    would then lack (the greedy pass can leave a gap when recordings hold several classes)."""
    for _ in range(len(split)):
        have = {}
        for name, part in split.items():
            for tag in tags[name]:
                have.setdefault(tag, dict.fromkeys(SPLITS, 0))[part] += 1
        gaps = [(t, s) for t in sorted(have) if t != _NONE for s in SPLITS if have[t][s] == 0]
        if not gaps:
            return
        tag, target = gaps[0]
        movable = [n for n in order if tag in tags[n] and
                   all(have[u][split[n]] > 1 for u in tags[n] if u != _NONE)]
        if not movable:
            return  # left to the caller's check, which names the class
        split[movable[0]] = target
