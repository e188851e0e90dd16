#!/usr/bin/env python3
"""What judging staleness costs: a no-op run with ``cache_validator: [code]`` on every
task against the same no-op run without validators (issue 12: goal at most 1.3x).

The folder holds N independent Python tasks, all calling one project function that calls
a helper (so every task's code fingerprint is a closure over two objects of the project),
each writing its own target. One cold run writes every target and its record (records
always carry the fingerprints); then each variant's no-op run -- ``plain`` (existence
only, no record is read) and ``code`` (every record read in one batch per wave, every
task's code compared) -- is timed as a child process ``python -m targetrun run``: one
warm-up, then ``--repeat`` runs of each, interleaved; the median and the best are printed. Each no-op run is checked: exit 0 and no
target rewritten.

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

TASKS = '''
def _helper(i):
    return {"i": i, "square": i * i}


def make(i):
    return _helper(i)
'''


def pipeline(n: int, validator: bool) -> str:
    lines = ["name: stale_bench", ""]
    if validator:
        lines += ["defaults:", "  cache_validator: [code]", ""]
    lines.append("tasks:")
    for i in range(n):
        lines += [f"  t{i}:", "    run: benchtasks:make", f"    args: {{i: {i}}}", f"    target: out/t{i}.json"]
    return "\n".join(lines) + "\n"


def run(folder: str, pipelinefile: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q", "-f", pipelinefile], cwd=folder,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(1)
    return elapsed


def newest_mtime(folder: str) -> float:
    out = os.path.join(folder, "out")
    return max(os.stat(os.path.join(out, name)).st_mtime_ns for name in os.listdir(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="tasks (default 10000)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per variant (median and best)")
    parser.add_argument("--quick", action="store_true", help="200 tasks, 1 repeat (a smoke test)")
    args = parser.parse_args()
    n, repeat = (200, 1) if args.quick else (args.n, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench-staleness-") as folder:
        with open(os.path.join(folder, "benchtasks.py"), "w") as f:
            f.write(TASKS)
        files = {}
        for name, validator in (("plain", False), ("code", True)):
            files[name] = os.path.join(folder, f"Pipelinefile-{name}.yaml")
            with open(files[name], "w") as f:
                f.write(pipeline(n, validator))
        cold = run(folder, files["plain"])
        written = newest_mtime(folder)
        times: dict[str, list[float]] = {name: [] for name in files}
        for path in files.values():
            run(folder, path)  # warm-up (also warms the spec cache)
        for _ in range(repeat):  # interleaved, so a busy moment of the machine hits both alike
            for name, path in files.items():
                times[name].append(run(folder, path))
        if newest_mtime(folder) != written:
            print("FAIL: a no-op run rewrote a target", file=sys.stderr)
            return 1
        medians = {name: statistics.median(found) for name, found in times.items()}
        best = {name: min(found) for name, found in times.items()}
        print(f"tasks: {n}  cold run: {cold:.2f}s  ({repeat} interleaved runs each)")
        print(f"no-op, no validator:            median {medians['plain']:.2f}s  best {best['plain']:.2f}s")
        print(f"no-op, cache_validator: [code]: median {medians['code']:.2f}s  best {best['code']:.2f}s")
        print(f"ratio: {medians['code'] / medians['plain']:.2f}x median, {best['code'] / best['plain']:.2f}x best "
              "(goal <= 1.30x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
