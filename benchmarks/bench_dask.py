#!/usr/bin/env python3
"""Per-task overhead of `--executor dask` (a LocalCluster with -j worker processes).

Runs N independent tiny Python tasks cold for two sizes and reports the slope
(seconds per extra task), which leaves out the cluster's start-up. The same is done with
the inline and threads executors for comparison. Reference: a Dask LocalCluster on this
machine costs about 2 ms per task when submissions are batched.

    python benchmarks/bench_dask.py                       # sizes 200 and 1000, -j 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bt.py").write_text("def leaf(i):\n    return str(i)\n")
    lines = ["name: daskbench", "tasks:"]
    lines += [f"  t{i}: {{run: bt:leaf, args: {{i: {i}}}, target: out/d{i % 20}/t{i}.txt}}" for i in range(n)]
    (folder / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")


def cold(folder: Path, *args: str) -> float:
    shutil.rmtree(folder / "out", ignore_errors=True)
    for leftover in (folder / ".targetrun").glob("state.db*"):  # the store, with its WAL files
        leftover.unlink()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q", "-f", str(folder / "Pipelinefile.yaml"),
                             *args], capture_output=True, text=True, env=env)
    took = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    small, large = (int(x) for x in args.sizes.split(","))
    executors = {"inline": [], "threads": ["--executor", "threads", "-j", str(args.jobs)],
                 "dask": ["--executor", "dask", "-j", str(args.jobs)]}
    print(f"{'executor':<9}{f'N={small} s':>11}{f'N={large} s':>12}{'per task ms':>13}")
    with tempfile.TemporaryDirectory(prefix="targetrun-daskbench-") as tmp:
        for size in (small, large):
            make(Path(tmp) / str(size), size)
        for name, extra in executors.items():
            a = cold(Path(tmp) / str(small), *extra)
            b = cold(Path(tmp) / str(large), *extra)
            print(f"{name:<9}{a:>11.2f}{b:>12.2f}{(b - a) / (large - small) * 1000:>13.2f}")


if __name__ == "__main__":
    main()
