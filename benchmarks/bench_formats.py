#!/usr/bin/env python3
"""Writing and reading an N-row DataFrame as parquet through targetrun vs pandas directly.

targetrun's path is the one every task takes: the worker serializes the value into a
staging file beside the target, hashing the bytes on the way (``write_value``; Arrow's
output is hashed and written on a second thread while it encodes), the staging file is
renamed onto the target, and the downstream read goes through ``read_value``: the local
checkpoint is read once into memory and decoded while a second thread hashes those same
bytes; the value is returned only if the digest matches the record. pandas' path is
``df.to_parquet(path)`` then ``pd.read_parquet(path)``. Figures: median seconds of
``--repeat`` rounds (after a warm-up) and the overhead ratio targetrun / pandas. Each
round checks the value read back equals the one written (outside the timing).

    python benchmarks/bench_formats.py                  # 1,000,000 rows
    python benchmarks/bench_formats.py --rows 10000 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from targetrun.checkpoints import Expected, read_value  # noqa: E402
from targetrun.engine.work import write_value  # noqa: E402
from targetrun.serializers.make import serializer  # noqa: E402
from targetrun.storage.local import LocalStorage  # noqa: E402


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "ts": pd.date_range("2026-01-01", periods=rows, freq="s"),
        "user": rng.integers(0, 50_000, rows),
        "amount": rng.random(rows) * 100,
        "country": pd.Categorical(rng.choice(["fr", "de", "es", "it", "nl"], rows)),
        "note": rng.choice(["ok", "late", "refund", "gift"], rows),
    })


def through_pandas(df: pd.DataFrame, folder: str) -> tuple[float, float, pd.DataFrame]:
    path = os.path.join(folder, "pandas.parquet")
    began = time.perf_counter()
    df.to_parquet(path)
    wrote = time.perf_counter()
    back = pd.read_parquet(path)
    return wrote - began, time.perf_counter() - wrote, back


def through_targetrun(df: pd.DataFrame, folder: str) -> tuple[float, float, pd.DataFrame]:
    storage = LocalStorage()
    target = os.path.join(folder, "targetrun.parquet")
    staging = storage.staging_url(target, "bench")
    began = time.perf_counter()
    written_as = serializer("parquet").for_value(df)
    size, digest = write_value(storage, staging, df, written_as, shown=target)
    storage.commit(staging, target)
    wrote = time.perf_counter()
    back = read_value(storage, target, written_as, expected=Expected(size, digest), trust=False, task="bench")
    assert isinstance(back, pd.DataFrame)
    return wrote - began, time.perf_counter() - wrote, back


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    df = frame(args.rows)
    results: dict[str, list[tuple[float, float]]] = {"pandas": [], "targetrun": []}
    with tempfile.TemporaryDirectory() as folder:
        for way in (through_pandas, through_targetrun):  # warm-up: imports, page cache
            way(df, folder)
        for _ in range(args.repeat):
            for name, way in (("pandas", through_pandas), ("targetrun", through_targetrun)):
                write, read, back = way(df, folder)
                pd.testing.assert_frame_equal(back, df)
                results[name].append((write, read))
        size = os.path.getsize(os.path.join(folder, "targetrun.parquet"))
    print(f"{args.rows:,} rows, parquet {size / 1e6:.1f} MB, median of {args.repeat}")
    print(f"{'':10} {'write s':>8} {'read s':>8} {'total s':>8}")
    medians = {}
    for name, rounds in results.items():
        write = statistics.median(r[0] for r in rounds)
        read = statistics.median(r[1] for r in rounds)
        medians[name] = statistics.median(r[0] + r[1] for r in rounds)
        print(f"{name:10} {write:8.3f} {read:8.3f} {medians[name]:8.3f}")
    ratio = medians["targetrun"] / medians["pandas"]
    print(f"overhead ratio targetrun / pandas: {ratio:.2f}x (goal <= 1.10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
