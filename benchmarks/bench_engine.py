#!/usr/bin/env python3
"""Measure targetrun's own overhead on synthetic pipelines, against reference figures.

What is measured
----------------
For each pipeline *shape* and size N, the script generates a folder holding a
``Pipelinefile.yaml`` whose tasks are tiny shell commands (as the make, doit and
Snakemake figures it is compared with: every task a shell command writing a few bytes),
then runs the real command line as a child process (``python -m targetrun`` unless
``--cli`` says otherwise), the way a user or a CI step would. ``--tasks python`` uses
in-process Python functions (``benchtasks.py``) instead; those figures are shown
without the shell tools' anchors, since they do not measure the same work:

``independent``
    N unrelated tasks, each writing a few bytes to its own target; all N are sinks.
``chain``
    task ``t{i}`` needs ``t{i-1}`` and reads its value (``t{i}`` holds ``str(i)``).
``fanin``
    N independent tasks all needed by one ``final`` task (which holds ``str(N)``).

Modes, each timed separately:

``cold``    targets absent: ``out/`` and ``.targetrun/`` are deleted before every run.
            Repeated with ``-j W --executor threads`` for every W > 1 in ``--jobs``.
``noop``    every target exists and ``.targetrun/`` is kept: nothing should run.
``status``  ``targetrun status`` with its output discarded.

Every task writes only a few bytes, so the wall time is the tool's overhead:
interpreter start-up, imports, loading and validating the Pipelinefile, deciding,
scheduling and checkpointing. The methodology follows the reference measurements (the
``ANCHORS`` table below: make, doit, Luigi and Prefect 1 on a 2-core machine): one warm-up run
(not counted), then the median wall time of ``--repeat`` runs. Peak memory is each
child's own ``ru_maxrss``, read with ``os.wait4`` on the child's pid (the
``RUSAGE_CHILDREN`` figure is a maximum over all children so far, which says nothing
about the later and smaller ones). Tasks per second is the number of tasks in the
pipeline (N, or N + 1 for ``fanin``) over the median: for a no-op run that is the
rate at which the tool can conclude that tasks need not run.

Each run is also checked, outside the timed region: the exit code must be 0, a cold
run must leave every target with the expected value, and no-op and status runs must
not rewrite any target. The script exits 1 when any check fails, after printing the
child's stderr.

Only the standard library is used, so the script runs wherever targetrun does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHAPES = ("independent", "chain", "fanin")
PIPELINE_FILE = "Pipelinefile.yaml"
STATE_DIR = ".targetrun"
STDERR_TAIL = 4000  # characters of a failed child's stderr to show
OUT_DIR = "out"
FANIN_SINK = "final"

TASKS_MODULE = '''\
"""Tiny task functions for a generated targetrun benchmark pipeline."""


def leaf() -> str:
    return "0"


def step(**upstream: str) -> str:
    (value,) = upstream.values()
    return str(int(value) + 1)


def sink(**upstream: str) -> str:
    return str(len(upstream))
'''


# Shell tasks: what make's recipes do in the anchors (a process per task, a few bytes).
SHELL_LEAF = "echo 0 > {output}"
SHELL_STEP = "read v < {needs.%s} && echo $((v + 1)) > {output}"
SHELL_SINK = "cat out/t*.txt | wc -l > {output}"  # one line per upstream target
TASK_KINDS = ("shell", "python")


class Mode(str, Enum):
    COLD = "cold"
    NOOP = "noop"
    STATUS = "status"


@dataclass(frozen=True)
class Anchor:
    """Median wall seconds of a reference measurement (None: not measured there)."""

    make: float | None
    doit: float | None
    luigi: float | None
    prefect1: float | None
    aim: float | None = None  # targetrun's aim, an upper bound


# (shape, N, mode, workers) -> reference figures (make, doit, Luigi, Prefect 1) measured on a
# 2-core machine with Python 3.11, every task a shell command writing a few bytes.
ANCHORS: dict[tuple[str, int, Mode, int], Anchor] = {
    ("independent", 100, Mode.NOOP, 1): Anchor(0.003, 0.08, 0.17, 1.1),
    ("independent", 1000, Mode.NOOP, 1): Anchor(0.006, 0.11, 0.24, 7.5),
    ("independent", 10000, Mode.NOOP, 1): Anchor(0.038, 0.45, 0.99, 83, aim=0.3),
    ("chain", 100, Mode.COLD, 1): Anchor(0.16, 0.27, 0.27, 1.1),
    ("chain", 1000, Mode.COLD, 1): Anchor(1.7, 2.2, 3.0, 14.4, aim=1.0),
    ("fanin", 1000, Mode.COLD, 1): Anchor(0.73, 1.7, 3.0, 8.3, aim=0.8),
    ("fanin", 1000, Mode.COLD, 2): Anchor(0.63, 1.5, 7.1, 8.6, aim=0.6),
}


@dataclass(frozen=True)
class Options:
    cli: list[str]
    shapes: list[str]
    sizes: list[int]
    jobs: list[int]
    repeat: int
    warmup: int
    timeout: float
    yaml_style: str
    tasks: str = "shell"


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    peak_kb: int
    returncode: int
    stderr: str


@dataclass(frozen=True)
class Row:
    shape: str
    n: int
    mode: str
    workers: int
    median_s: float
    runs_s: list[float]
    tasks_per_s: float
    peak_mb: float
    anchor: Anchor | None

    def ratio(self, reference: float | None) -> float | None:
        return self.median_s / reference if reference else None


class BenchFailure(Exception):
    """A targetrun invocation failed or left the wrong targets behind."""


# --- generating pipelines -------------------------------------------------------


def task_names(shape: str, n: int) -> list[str]:
    names = [f"t{i}" for i in range(n)]
    return names + [FANIN_SINK] if shape == "fanin" else names


def task_lines(name: str, func: str, needs: Sequence[str], style: str, kind: str = "python") -> list[str]:
    """One task of the Pipelinefile, in YAML block or flow style, a Python or shell task."""
    target = f"{OUT_DIR}/{name}.txt"
    if kind == "shell":
        command = {"leaf": SHELL_LEAF, "sink": SHELL_SINK}.get(func) or SHELL_STEP % needs[0]
        key, body = "shell", json.dumps(command)  # a JSON string is a YAML string
    else:
        key, body = "run", f"benchtasks:{func}"
    needs_yaml = f"[{', '.join(needs)}]"
    if style == "flow":
        fields = [f'{key}: {body if kind == "shell" else json.dumps(body)}'] + ([f"needs: {needs_yaml}"] if needs else [])
        return [f"  {name}: {{{', '.join([*fields, f'target: {target}'])}}}"]
    lines = [f"  {name}:", f"    {key}: {body}"]
    if needs:
        lines.append(f"    needs: {needs_yaml}")
    return [*lines, f"    target: {target}"]


def pipeline_yaml(shape: str, n: int, style: str = "block", kind: str = "shell") -> str:
    """The Pipelinefile text for ``shape`` with N tasks (plus the fan-in sink).

    >>> print(pipeline_yaml("chain", 2), end="")
    name: bench
    defaults: {serializer: text}
    tasks:
      t0:
        shell: "echo 0 > {output}"
        target: out/t0.txt
      t1:
        shell: "read v < {needs.t0} && echo $((v + 1)) > {output}"
        needs: [t0]
        target: out/t1.txt
    >>> print(pipeline_yaml("fanin", 2, "flow", "python").splitlines()[-1])
      final: {run: "benchtasks:sink", needs: [t0, t1], target: out/final.txt}
    """
    lines = ["name: bench", "defaults: {serializer: text}", "tasks:"]
    for i in range(n):
        needs = [f"t{i - 1}"] if shape == "chain" and i > 0 else []
        lines += task_lines(f"t{i}", "step" if needs else "leaf", needs, style, kind)
    if shape == "fanin":
        lines += task_lines(FANIN_SINK, "sink", [f"t{i}" for i in range(n)], style, kind)
    return "\n".join(lines) + "\n"


def write_pipeline(folder: Path, shape: str, n: int, style: str, kind: str = "shell") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "benchtasks.py").write_text(TASKS_MODULE)
    path = folder / PIPELINE_FILE
    path.write_text(pipeline_yaml(shape, n, style, kind))
    return path


def expected_values(shape: str, n: int) -> dict[str, str]:
    """Targets whose content proves the values flowed along the edges."""
    if shape == "chain":
        return {f"t{n - 1}": str(n - 1)}
    if shape == "fanin":
        return {FANIN_SINK: str(n)}
    return {"t0": "0"}


def clean(folder: Path) -> None:
    for name in (OUT_DIR, STATE_DIR):
        shutil.rmtree(folder / name, ignore_errors=True)


# --- checks (outside the timed region) --------------------------------------------


def target_mtimes(folder: Path, shape: str, n: int) -> dict[str, int]:
    """mtime of each target; raises BenchFailure naming the missing ones."""
    mtimes, missing = {}, []
    for name in task_names(shape, n):
        try:
            mtimes[name] = (folder / OUT_DIR / f"{name}.txt").stat().st_mtime_ns
        except FileNotFoundError:
            missing.append(name)
    if missing:
        raise BenchFailure(f"{len(missing)} target(s) missing after the run, e.g. {missing[:5]}")
    return mtimes


def check_values(folder: Path, shape: str, n: int) -> None:
    for name, want in expected_values(shape, n).items():
        got = (folder / OUT_DIR / f"{name}.txt").read_text().strip()
        if got != want:
            raise BenchFailure(f"target {name} holds {got!r}, expected {want!r}")


def check_unchanged(before: dict[str, int], after: dict[str, int], mode: Mode) -> None:
    changed = [name for name, mtime in after.items() if before.get(name) != mtime]
    if changed:
        raise BenchFailure(f"{mode.value} run rewrote {len(changed)} target(s), e.g. {changed[:5]}")


# --- running the command line ---------------------------------------------------------


def child_env() -> dict[str, str]:
    """The caller's environment, with this checkout importable first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def run_child(cmd: list[str], cwd: Path, timeout: float) -> ChildRun:
    """Run ``cmd`` with stdout discarded; wall time and the child's own peak RSS."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=child_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
        )
        timer = threading.Timer(timeout, os.kill, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    # ru_maxrss is in KB on Linux, in bytes on macOS.
    peak_kb = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    return ChildRun(seconds, peak_kb, proc.returncode, stderr)


def command(cli: list[str], mode: Mode, pipeline: Path, workers: int) -> list[str]:
    if mode is Mode.STATUS:
        return [*cli, "status", "-f", str(pipeline)]
    cmd = [*cli, "run", "-q", "-f", str(pipeline)]
    return cmd + ["-j", str(workers), "--executor", "threads"] if workers > 1 else cmd


def invoke(cmd: list[str], cwd: Path, timeout: float) -> ChildRun:
    run = run_child(cmd, cwd, timeout)
    if run.returncode != 0:
        timed_out = run.returncode == -signal.SIGKILL and run.seconds >= timeout
        how = "was killed by --timeout" if timed_out else f"exited {run.returncode}"
        raise BenchFailure(
            f"`{shlex.join(cmd)}` {how} after {run.seconds:.2f} s"
            f"\n--- stderr (tail) ---\n{run.stderr.rstrip()[-STDERR_TAIL:] or '(empty)'}"
        )
    return run


# --- measuring ------------------------------------------------------------------------


def measure(
    opts: Options, pipeline: Path, shape: str, n: int, mode: Mode, workers: int,
    before_each: Callable[[], None], after_each: Callable[[], None],
) -> Row:
    """Warm-up runs, then ``repeat`` timed runs; the hooks run outside the timing."""
    cmd, folder = command(opts.cli, mode, pipeline, workers), pipeline.parent
    runs: list[ChildRun] = []
    for i in range(opts.warmup + opts.repeat):
        before_each()
        run = invoke(cmd, folder, opts.timeout)
        after_each()
        if i >= opts.warmup:
            runs.append(run)
    median = statistics.median(r.seconds for r in runs)
    tasks = len(task_names(shape, n))
    row = Row(
        shape=shape, n=n, mode=mode.value, workers=workers, median_s=median,
        runs_s=[r.seconds for r in runs], tasks_per_s=tasks / median,
        peak_mb=max(r.peak_kb for r in runs) / 1024,
        # Like with like: the anchors are shell tasks; Python tasks get no anchor.
        anchor=ANCHORS.get((shape, n, mode, workers)) if opts.tasks == "shell" else None,
    )
    progress(f"  {mode.value:<6} w{workers}  {median:8.3f} s  {row.peak_mb:6.1f} MB")
    return row


def bench_pipeline(opts: Options, root: Path, shape: str, n: int) -> Iterator[Row]:
    """Cold (per worker count), then no-op, then status runs of one pipeline."""
    folder = root / f"{shape}-{n}"
    pipeline = write_pipeline(folder, shape, n, opts.yaml_style, opts.tasks)
    progress(f"{shape} N={n}, {opts.tasks} tasks  ({folder})")

    def check_cold() -> None:
        target_mtimes(folder, shape, n)
        check_values(folder, shape, n)

    for workers in opts.jobs:
        yield measure(opts, pipeline, shape, n, Mode.COLD, workers, lambda: clean(folder), check_cold)
    for mode in (Mode.NOOP, Mode.STATUS):
        before = target_mtimes(folder, shape, n)

        def check_untouched(mode: Mode = mode, before: dict[str, int] = before) -> None:
            check_unchanged(before, target_mtimes(folder, shape, n), mode)

        yield measure(opts, pipeline, shape, n, mode, 1, lambda: None, check_untouched)


def bench_all(opts: Options, root: Path) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    failures: list[str] = []
    for n in opts.sizes:
        for shape in opts.shapes:
            try:
                rows.extend(bench_pipeline(opts, root, shape, n))
            except BenchFailure as exc:
                failures.append(f"{shape} N={n}: {exc}")
                progress(f"FAILED {shape} N={n}: {exc}")
    return rows, failures


# --- reporting ------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fmt(value: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


TABLE_HEADER = (
    "shape", "N", "mode", "workers", "median s", "tasks/s", "peak MB",
    "make", "doit", "Luigi", "Prefect 1", "aim", "tr/aim", "tr/Luigi",
)


def table_cells(row: Row) -> tuple[str, ...]:
    a = row.anchor or Anchor(None, None, None, None)
    return (
        row.shape, str(row.n), row.mode, str(row.workers), f"{row.median_s:.3f}",
        f"{row.tasks_per_s:,.0f}", f"{row.peak_mb:.1f}",
        fmt(a.make), fmt(a.doit), fmt(a.luigi), fmt(a.prefect1),
        "-" if a.aim is None else f"< {a.aim}",
        fmt(row.ratio(a.aim), ".2f", "x"), fmt(row.ratio(a.luigi), ".2f", "x"),
    )


def format_table(rows: Sequence[Row]) -> str:
    lines = [TABLE_HEADER, *(table_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_HEADER))]
    left = {0, 2}  # text columns; the rest are numbers
    out = [
        "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in lines
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def metadata(opts: Options) -> dict[str, object]:
    return {
        "cli": shlex.join(opts.cli),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "repeat": opts.repeat,
        "warmup": opts.warmup,
        "yaml_style": opts.yaml_style,
        "tasks": opts.tasks,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def row_json(row: Row) -> dict[str, object]:
    data = asdict(row)
    data["ratio_aim"] = row.ratio(row.anchor.aim) if row.anchor else None
    data["ratio_luigi"] = row.ratio(row.anchor.luigi) if row.anchor else None
    return data


def report(opts: Options, rows: Sequence[Row], failures: Sequence[str], as_json: bool) -> None:
    if as_json:
        doc = {"meta": metadata(opts), "rows": [row_json(r) for r in rows], "failures": list(failures)}
        print(json.dumps(doc, indent=2))
        return
    meta = metadata(opts)
    print(" ".join(f"{k}={v}" for k, v in meta.items()))
    print(format_table(rows) if rows else "(no figures)")
    print("anchors: reference median wall s (shell tasks, 2 cores; shown for --tasks shell only); "
          "tr/aim < 1 meets the aim.")
    for failure in failures:
        print(f"FAILED {failure.splitlines()[0]}")


# --- command line -----------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,2, got {text!r}")
    return values


def shape_list(text: str) -> list[str]:
    shapes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes:
        raise argparse.ArgumentTypeError(f"unknown shape(s) {unknown}; choose from {', '.join(SHAPES)}")
    return shapes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", type=shape_list, default=list(SHAPES), help="comma list (default: all)")
    p.add_argument("--sizes", type=int_list, default=[1000, 10000], help="comma list of N (default: 1000,10000)")
    p.add_argument("--jobs", type=int_list, default=[1], help="worker counts for cold runs, e.g. 1,2 (default: 1)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before them (default: 1)")
    p.add_argument("--quick", action="store_true", help="smoke test: N=100, --repeat 1, --warmup 0")
    p.add_argument("--cli", default=None, help='command to run (default: "python -m targetrun")')
    p.add_argument("--yaml-style", choices=("block", "flow"), default="block",
                   help="block: 3-4 lines per task, as the references measured (default); flow: 1 line")
    p.add_argument("--tasks", choices=TASK_KINDS, default="shell",
                   help="shell: a tiny shell command per task, as the anchors (default); python: in-process functions")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds before a child is killed")
    p.add_argument("--workdir", type=Path, default=None, help="generate pipelines here and keep them (default: a temp folder, removed)")
    p.add_argument("--keep", action="store_true", help="keep the generated folders")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be at least 1 and --warmup at least 0")
    return args


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        cli=shlex.split(args.cli) if args.cli else [sys.executable, "-m", "targetrun"],
        shapes=args.shapes,
        sizes=[100] if args.quick else args.sizes,
        jobs=args.jobs,
        repeat=1 if args.quick else args.repeat,
        warmup=0 if args.quick else args.warmup,
        timeout=args.timeout,
        yaml_style=args.yaml_style,
        tasks=args.tasks,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    opts = options_from(args)
    keep = args.keep or args.workdir is not None  # never delete a folder we did not make
    root = args.workdir or Path(tempfile.mkdtemp(prefix="targetrun-bench-"))
    try:
        rows, failures = bench_all(opts, root.resolve())
    finally:
        if keep:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(opts, rows, failures, args.json)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
