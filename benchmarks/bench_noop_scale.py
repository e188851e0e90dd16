#!/usr/bin/env python3
"""How the no-op grows from 10,000 to 100,000 tasks, and its peak memory (issue 13's goal:
100,000 tasks in at most 25x the 10,000 figure, linear, and under 300 MB), next to GNU
make on the same 100,000 targets.

The folders are bench_vs_make.py's ``independent`` workload (``echo 0 > out/t{i}.txt``,
a ``Pipelinefile.yaml`` and a ``Makefile``); the targets are written by this script, not
by a cold run (100,000 shell tasks take minutes), and one untimed run of each tool
follows. Three no-ops, each timed as a whole process (wall time, and the child's own peak
RSS from ``os.wait4``; the 100k figure is the largest of its runs), runs alternated between the sizes so a drift of the machine's
load falls on both:

``replayed``
    a repeated no-op, answered from the last one's certificate (targetrun/replay.py).
``full``
    the certificate removed before each run: the first no-op after a change (a deleted
    target, another day) decides every task in full.
``parsed``
    the spec cache removed too: the first no-op after an edit of the Pipelinefile, which
    is parsed again (slow at 100,000 tasks: ~20 s a run; ``--modes`` leaves it out).

Standard library only; make comes from PATH (installed with apt-get when missing and
possible, as bench_vs_make.py does).

    python benchmarks/bench_noop_scale.py                      # 3 runs per figure
    python benchmarks/bench_noop_scale.py --runs 5 --modes replayed,full
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_vs_make as vs  # noqa: E402  (the same workload, commands and environment)

SIZES = (10_000, 100_000)
RATIO_GOAL = 25.0  # 100,000 tasks / 10,000 tasks
RSS_GOAL_MB = 300.0  # 300 * 10^6 bytes


def drop_spec_cache(folder: Path) -> None:
    vs.drop_certificates(folder)
    shutil.rmtree(folder / ".targetrun" / "spec", ignore_errors=True)


MODES: dict[str, Callable[[Path], None]] = {
    "replayed": vs.nothing,
    "full": vs.drop_certificates,
    "parsed": drop_spec_cache,
}


def prepare(folder: Path, n: int) -> None:
    """Writes the folder in a child process: a child's peak RSS counts the parent's at the
    fork (Linux keeps the high-water mark across exec), so this process stays small."""
    subprocess.run([sys.executable, __file__, "--prepare", str(folder), str(n)], check=True)


def write_folder(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    vs.write_independent(folder, n)
    (folder / vs.OUT).mkdir()
    for i in range(n):
        (folder / vs.OUT / f"t{i}.txt").write_text("0\n")
    run(vs.targetrun("run", "-q"), folder)  # untimed: the spec cache, the records, a certificate
    run([vs.MAKE, "-s"], folder)


def run(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and the child's peak RSS in MB of 10^6 bytes (Linux reports ru_maxrss in KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=vs.child_env(cwd), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{stderr.decode()[-3000:]}")
    return seconds, usage.ru_maxrss * 1024 / 1e6


def measure(folders: dict[int, Path], before: Callable[[Path], None], cmd: list[str],
            runs: int) -> dict[int, list[tuple[float, float]]]:
    figures: dict[int, list[tuple[float, float]]] = {n: [] for n in folders}
    for i in range(runs):
        for n in (SIZES if i % 2 == 0 else SIZES[::-1]):
            before(folders[n])
            figures[n].append(run(cmd, folders[n]))
    return figures


def median(pairs: Sequence[tuple[float, float]], index: int) -> float:
    return statistics.median(p[index] for p in pairs)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="timed runs per figure (default 3)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma list of: {', '.join(MODES)}")
    p.add_argument("--prepare", nargs=2, metavar=("FOLDER", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    vs.MAKE = vs.ensure_make()
    if args.prepare:
        write_folder(Path(args.prepare[0]), int(args.prepare[1]))
        return 0
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        p.error(f"--modes: choose from {', '.join(MODES)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="targetrun-noop-scale-") as root:
        folders = {n: Path(root) / f"noop-{n}" for n in SIZES}
        for n, folder in folders.items():
            prepare(folder, n)
        make = measure(folders, vs.nothing, [vs.MAKE, "-s"], args.runs)
        for mode in modes:
            tr = measure(folders, MODES[mode], vs.targetrun("run", "-q"), args.runs)
            rows.append((mode, tr))
            print(f"  {mode}: {median(tr[SIZES[0]], 0):.3f} s, {median(tr[SIZES[1]], 0):.3f} s",
                  file=sys.stderr, flush=True)
    small, big = SIZES
    print(f"no-op of existing targets, median of {args.runs} runs each (wall s; peak RSS of the child)")
    header = (f"{'no-op':<10}{'10k s':>8}{'100k s':>8}{'100k/10k':>10}{'goal':>7}  met"
              f"{'100k MB':>9}{'goal':>7}  met{'make 100k s':>13}{'/make':>7}")
    print(header)
    print("-" * len(header))
    make_big = median(make[big], 0)
    for mode, tr in rows:
        a, b, mb = median(tr[small], 0), median(tr[big], 0), max(x[1] for x in tr[big])
        print(f"{mode:<10}{a:>8.3f}{b:>8.3f}{b / a:>9.1f}x{RATIO_GOAL:>6g}x  {'yes' if b / a <= RATIO_GOAL else 'NO ':<3}"
              f"{mb:>9.0f}{RSS_GOAL_MB:>7g}  {'yes' if mb < RSS_GOAL_MB else 'NO ':<3}{make_big:>13.3f}{b / make_big:>6.1f}x")
    print(f"{'make -s':<10}{median(make[small], 0):>8.3f}{make_big:>8.3f}{make_big / median(make[small], 0):>9.1f}x"
          f"{'':>12}{max(x[1] for x in make[big]):>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
