"""Speed benchmarks on the real ESC-50: data loading, feature extraction, train steps, evaluation.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run.py                      # all four, ~10-15 min on 2 cores
    .venv/bin/python benchmarks/run.py --quick              # smoke run, ~3 min, results to a temp dir
    .venv/bin/python benchmarks/run.py --only train,eval --repeats 5
    .venv/bin/python benchmarks/run.py --data-root /path/with/ESC-50-master

Writes ``<out>/<name>.json`` per benchmark and rebuilds ``<out>/README_tables.md`` from all of them
(default out: benchmarks/results; with --quick a temp folder, so a smoke run never replaces real
numbers). Scripts, not tests: they need the real ESC-50 (notebook 01, profile full).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from common import (
    ORDER,
    RESULTS_DIR,
    BenchmarkError,
    CpuMonitor,
    bench_config,
    loadavg,
    log,
    machine_info,
    result_markdown,
    write_result,
    write_tables,
)


def _modules() -> dict:
    """Imported lazily so ``--help`` and argument errors are instant."""
    import bench_data
    import bench_eval
    import bench_features
    import bench_train

    return {"data": bench_data, "features": bench_features, "train": bench_train, "eval": bench_eval}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", help="folder holding ESC-50-master/ (default: $SED_DATA_ROOT or the full "
                   "profile's data_root)")
    p.add_argument("--only", default=",".join(ORDER), help=f"comma-separated subset of {','.join(ORDER)}")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per variant for data/features/eval (default 5, --quick 1); "
                   "train always times 5 steps per option (2 with --quick)")
    p.add_argument("--quick", action="store_true", help="small sizes, no torch.compile: a ~3 min smoke run")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default benchmarks/results; with --quick a temp folder)")
    p.add_argument("-p", "--param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the full profile, e.g. -p features.n_mels=128 (repeatable)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in ORDER]
    if unknown or not names:
        p.error(f"--only: unknown benchmark(s) {unknown}; choose from {','.join(ORDER)}")
    args.names = [n for n in ORDER if n in names]
    if args.repeats is None:
        args.repeats = 1 if args.quick else 5
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.out is None:
        args.out = Path(tempfile.gettempdir()) / "sed_benchmarks_quick" if args.quick else RESULTS_DIR
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = bench_config(args.data_root, args.overrides)
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    machine = machine_info()
    command = "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    log(f"data root {cfg.data_root}; {machine['cores']} cores, torch {machine['torch']} "
        f"({machine['torch_threads_default']} threads); results -> {args.out}")
    modules = _modules()
    t_all = time.perf_counter()
    for name in args.names:
        log(f"=== {name} ===")
        before, t0, cpu = loadavg(), time.perf_counter(), CpuMonitor()
        result = modules[name].run(cfg, repeats=args.repeats, quick=args.quick)
        result.update({
            "name": name,
            "machine": machine,
            "command": command.strip(),
            "quick": args.quick,
            "repeats": args.repeats,
            "data_root": str(cfg.data_root),
            "seconds": time.perf_counter() - t0,
            "load": {"before": before, "after": loadavg(), "others_cpu_share": cpu.others_share()},
        })
        path = write_result(args.out, name, result)
        print("\n" + result_markdown(result), flush=True)
        log(f"{name}: {result['seconds']:.0f} s, wrote {path}")
    tables = write_tables(args.out)
    log(f"all done in {time.perf_counter() - t_all:.0f} s; tables in {tables}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
