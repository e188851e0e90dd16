"""The project's own benchmarks run as shipped (small sizes), and compare like with like."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=BENCH.parent)


def test_bench_cache_runs_cold_then_no_op_on_both_stores():
    done = _bench(str(BENCH / "bench_cache.py"), "--sizes", "20", "--repeat", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["sqlite", "20"], ["redis", "20"]]


def test_bench_staleness_quick_runs_both_variants_and_prints_the_ratio():
    done = _bench(str(BENCH / "bench_staleness.py"), "--quick")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cache_validator: [code]" in done.stdout and "ratio:" in done.stdout


def test_bench_engine_quick_runs_and_checks_its_targets():
    done = _bench(str(BENCH / "bench_engine.py"), "--quick", "--shapes", "chain,fanin")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tasks=shell" in done.stdout and "FAILED" not in done.stdout


def test_bench_engine_compares_shell_tasks_with_the_shell_references():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_engine
    finally:
        sys.path.remove(str(BENCH))
    text = bench_engine.pipeline_yaml("fanin", 3)
    assert text.count("shell:") == 4 and "run:" not in text  # like make's recipes: a command per task
    assert bench_engine.pipeline_yaml("fanin", 3, kind="python").count("run:") == 4


def test_bench_formats_round_trips_through_targetrun_and_pandas():
    done = _bench(str(BENCH / "bench_formats.py"), "--rows", "2000", "--repeat", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "overhead ratio targetrun / pandas:" in done.stdout
    assert [line.split()[0] for line in done.stdout.splitlines()[2:4]] == ["pandas", "targetrun"]


def test_bench_vs_make_gives_make_and_targetrun_the_same_work(tmp_path):
    """The paired comparison is like with like: on the generated chain and fan-out, make and
    targetrun leave the same bytes in every target."""
    import shutil

    if shutil.which("make") is None:
        import pytest

        pytest.skip("GNU make is not installed")
    sys.path.insert(0, str(BENCH))
    try:
        import bench_vs_make
    finally:
        sys.path.remove(str(BENCH))
    for write in (bench_vs_make.write_chain, bench_vs_make.write_fanout):
        folder = tmp_path / write.__name__
        folder.mkdir()
        write(folder, 5)
        made = {}
        for cmd in (["make", "-s"], [sys.executable, "-m", "targetrun", "run", "-q"]):
            bench_vs_make.cold(folder)
            done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=120,
                                  env=bench_vs_make.child_env())
            assert done.returncode == 0, done.stdout + done.stderr
            made[cmd[0]] = {p.name: p.read_text() for p in sorted((folder / "out").iterdir()) if not p.name.startswith(".")}
        assert made["make"] == made[sys.executable] and len(made["make"]) >= 5, made
