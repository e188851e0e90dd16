#!/usr/bin/env python3
"""targetrun against GNU make on the same shell workloads, paired and alternated.

Every workload is a generated folder with a ``Pipelinefile.yaml`` and a ``Makefile``
that do the same work: tiny shell commands writing a few bytes. The two tools run as
whole processes, alternated (A B A B ...), after one untimed warm-up of each; the figure
is the **median of the pair ratios** (targetrun / make of the same pair), which holds
when the machine's load drifts while absolute seconds move by ±30 %.

Workloads (the goals of issue 13):

``noop-1000`` / ``noop-10000``
    N existing targets, nothing to do (``targetrun run -q`` vs ``make -s``): a repeated
    no-op, which targetrun answers from the last one's certificate (targetrun/replay.py).
``noop-10000-full``
    the same with the certificate removed before each run: the first no-op after any
    change (an edit, a deleted target, another day) decides every task in full.
``noop-1000-vs-doit``
    the 1,000-target no-op against doit (``python -m doit``, tasks with ``targets`` and
    ``uptodate: [True]``), when doit is installed (``pip install doit``); else skipped.
``chain-1000``
    cold: ``t{i}`` is ``cat t{i-1} > t{i}``; targets and state removed before each run.
``fanout-1000-j2``
    cold: 1,000 independent ``echo`` tasks into one that counts them, ``-j 2`` against
    ``make -j2``; also ``-j 2`` against targetrun's own ``-j 1`` (it must be faster).
``cachehit-10000``
    targetrun only: a no-op of 10,000 ``cache_for`` hits (no targets) against the
    no-op of 10,000 existing targets.
``status-10000``
    targetrun only: ``status`` against ``run`` on the 10,000-target no-op (which is
    replayed; ``status`` always looks at everything, its ages and last runs change).
``status-10000-vs-full``
    the same against a ``run`` that decides every task in full (certificate removed).

GNU make is used from ``PATH``; when it is missing the script installs it with the
system package manager (``apt-get install make``) if it can, else says so and exits 2.
Standard library only.

    python benchmarks/bench_vs_make.py                     # all workloads, 7 pairs each
    python benchmarks/bench_vs_make.py --only noop-10000 --pairs 11
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
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = "out"


@dataclass(frozen=True)
class Workload:
    name: str
    goal: float  # the ratio to stay under
    a_label: str
    b_label: str
    setup: Callable[[Path], None]  # writes the folder once
    a: Callable[[Path], list[str]]  # command lines, run in the folder
    b: Callable[[Path], list[str]]
    before: Callable[[Path], None]  # before every timed run (outside the timing)


# --- generated folders -----------------------------------------------------------------


def _yaml(tasks: list[tuple[str, str, list[str], str | None, str]]) -> str:
    """tasks: (name, shell, needs, target or None, extra YAML keys)."""
    lines = ["name: bench", "defaults: {serializer: text}", "tasks:"]
    for name, shell, needs, target, extra in tasks:
        fields = [f"shell: {_quote(shell)}"]
        if needs:
            fields.append(f"needs: [{', '.join(needs)}]")
        if target:
            fields.append(f"target: {target}")
        if extra:
            fields.append(extra)
        lines.append(f"  {name}:")
        lines += [f"    {field}" for field in fields]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_independent(folder: Path, n: int) -> None:
    tasks = [(f"t{i}", "echo 0 > {output}", [], f"{OUT}/t{i}.txt", "") for i in range(n)]
    (folder / "Pipelinefile.yaml").write_text(_yaml(tasks))
    names = " ".join(f"{OUT}/t{i}.txt" for i in range(n))
    (folder / "Makefile").write_text(f"all: {names}\n\n{OUT}/%.txt:\n\t@mkdir -p {OUT} && echo 0 > $@\n")


def write_chain(folder: Path, n: int) -> None:
    tasks = [("t0", "echo 0 > {output}", [], f"{OUT}/t0.txt", "")]
    tasks += [(f"t{i}", f"cat {{needs.t{i - 1}}} > {{output}}", [f"t{i - 1}"], f"{OUT}/t{i}.txt", "") for i in range(1, n)]
    (folder / "Pipelinefile.yaml").write_text(_yaml(tasks))
    rules = [f"all: {OUT}/t{n - 1}.txt", "", f"{OUT}/t0.txt:", f"\t@mkdir -p {OUT} && echo 0 > $@"]
    for i in range(1, n):
        rules += [f"{OUT}/t{i}.txt: {OUT}/t{i - 1}.txt", f"\t@cat {OUT}/t{i - 1}.txt > $@"]
    (folder / "Makefile").write_text("\n".join(rules) + "\n")


def write_fanout(folder: Path, n: int) -> None:
    tasks = [(f"t{i}", "echo 0 > {output}", [], f"{OUT}/t{i}.txt", "") for i in range(n)]
    tasks.append(("final", f"cat {OUT}/t*.txt | wc -l > {{output}}", [f"t{i}" for i in range(n)], f"{OUT}/final.txt", ""))
    (folder / "Pipelinefile.yaml").write_text(_yaml(tasks))
    names = " ".join(f"{OUT}/t{i}.txt" for i in range(n))
    (folder / "Makefile").write_text(
        f"all: {OUT}/final.txt\n\n{OUT}/final.txt: {names}\n\t@cat {OUT}/t*.txt | wc -l > $@\n\n"
        f"{OUT}/t%.txt:\n\t@echo 0 > $@\n"
    )
    (folder / OUT).mkdir(exist_ok=True)


def write_cachehit(folder: Path, n: int) -> None:
    """Two pipelines: N cache_for hits without targets, and N existing targets."""
    hits = [(f"t{i}", f"echo {i}", [], None, "cache_for: 1h") for i in range(n)]
    (folder / "cache.yaml").write_text(_yaml(hits))
    write_independent(folder, n)


# --- running -----------------------------------------------------------------------------


def targetrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "targetrun", *args]


def child_env(cwd: Path | None = None) -> dict[str, str]:
    """The caller's environment with this checkout first on the path, and bytecode
    caching on (an installed package has its .pyc files; without them every run would
    compile targetrun's sources again, ~0.1 s). ``PWD`` names ``cwd``, the folder the
    command runs in, as a shell (or make) starting it there would set it: an inherited
    ``PWD`` naming another folder would have every command a tool starts work out its
    folder again (dash, and targetrun's direct commands, resolve it then)."""
    env = dict(os.environ)
    if cwd is not None:
        env["PWD"] = str(cwd)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=child_env(cwd), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr.decode()[-3000:]}")
    return seconds


def write_dodo(folder: Path, n: int) -> None:
    """doit's form of write_independent: a task is done while its target exists."""
    (folder / "dodo.py").write_text(
        "def task_t():\n"
        f"    for i in range({n}):\n"
        f"        yield {{'name': f't{{i}}', 'actions': [f'echo 0 > {OUT}/t{{i}}.txt'], "
        f"'targets': [f'{OUT}/t{{i}}.txt'], 'uptodate': [True]}}\n")


def has_doit() -> bool:
    return subprocess.run([sys.executable, "-c", "import doit"], capture_output=True).returncode == 0


def drop_certificates(folder: Path) -> None:
    shutil.rmtree(folder / ".targetrun" / "replay", ignore_errors=True)


def cold(folder: Path) -> None:
    shutil.rmtree(folder / OUT, ignore_errors=True)
    shutil.rmtree(folder / ".targetrun", ignore_errors=True)
    (folder / OUT).mkdir()


def nothing(folder: Path) -> None:
    pass


def warm(folder: Path, cmds: Sequence[list[str]]) -> None:
    for cmd in cmds:
        timed(cmd, folder)


def make_cmd(*args: str) -> Callable[[Path], list[str]]:
    return lambda folder: [MAKE, "-s", *args]


MAKE = "make"


def ensure_make() -> str:
    found = shutil.which("make")
    if found:
        return found
    installer = shutil.which("apt-get")
    if installer:
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        subprocess.run([*sudo, installer, "install", "-y", "-q", "make"], check=False)
        found = shutil.which("make")
    if not found:
        raise SystemExit("GNU make is not installed and could not be installed; install it (e.g. apt-get install make).")
    return found


def workloads() -> list[Workload]:
    def noop(n: int) -> Workload:
        def setup(folder: Path) -> None:
            write_independent(folder, n)
            warm(folder, [targetrun("run", "-q"), [MAKE, "-s"]])

        return Workload(f"noop-{n}", 4.0 if n == 10000 else float("inf"), "targetrun run", "make",
                        setup, lambda f: targetrun("run", "-q"), make_cmd(), nothing)

    def doit_setup(folder: Path) -> None:
        write_independent(folder, 1000)
        write_dodo(folder, 1000)
        warm(folder, [targetrun("run", "-q"), [sys.executable, "-m", "doit"]])

    def chain_setup(folder: Path) -> None:
        write_chain(folder, 1000)

    def fan_setup(folder: Path) -> None:
        write_fanout(folder, 1000)

    def cache_setup(folder: Path) -> None:
        write_cachehit(folder, 10000)
        warm(folder, [targetrun("run", "-q", "-f", "cache.yaml"), targetrun("run", "-q")])

    def status_setup(folder: Path) -> None:
        write_independent(folder, 10000)
        warm(folder, [targetrun("run", "-q")])

    found = [
        noop(10000),
        Workload("noop-10000-full", float("inf"), "targetrun run", "make", noop(10000).setup,
                 lambda f: targetrun("run", "-q"), make_cmd(), drop_certificates),
        noop(1000),
        Workload("noop-1000-vs-doit", 0.5, "targetrun run", "doit", doit_setup,
                 lambda f: targetrun("run", "-q"), lambda f: [sys.executable, "-m", "doit"], nothing),
        Workload("chain-1000", 1.0, "targetrun run", "make", chain_setup,
                 lambda f: targetrun("run", "-q"), make_cmd(), cold),
        Workload("fanout-1000-j2", 1.1, "targetrun -j 2", "make -j2", fan_setup,
                 lambda f: targetrun("run", "-q", "-j", "2"), make_cmd("-j2"), cold),
        Workload("fanout-1000-j2-vs-j1", 1.0, "targetrun -j 2", "targetrun -j 1", fan_setup,
                 lambda f: targetrun("run", "-q", "-j", "2"), lambda f: targetrun("run", "-q"), cold),
        Workload("cachehit-10000", 1.2, "cache-hit no-op", "target no-op", cache_setup,
                 lambda f: targetrun("run", "-q", "-f", "cache.yaml"), lambda f: targetrun("run", "-q"), nothing),
        Workload("status-10000", 1.1, "targetrun status", "targetrun run", status_setup,
                 lambda f: targetrun("status"), lambda f: targetrun("run", "-q"), nothing),
        Workload("status-10000-vs-full", float("inf"), "targetrun status", "run (in full)", status_setup,
                 lambda f: targetrun("status"), lambda f: targetrun("run", "-q"), drop_certificates),
    ]
    return found


@dataclass(frozen=True)
class Result:
    workload: Workload
    a: list[float]
    b: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(x / y for x, y in zip(self.a, self.b))


def measure(w: Workload, root: Path, pairs: int) -> Result:
    folder = root / w.name
    folder.mkdir(parents=True)
    w.setup(folder)
    a_cmd, b_cmd = w.a(folder), w.b(folder)
    w.before(folder)
    timed(a_cmd, folder)  # one warm-up each (file caches, pyc)
    w.before(folder)
    timed(b_cmd, folder)
    a_times, b_times = [], []
    for i in range(pairs):
        order = [(a_cmd, a_times), (b_cmd, b_times)]
        for cmd, times in order if i % 2 == 0 else order[::-1]:  # A B, B A, ...: no order bias
            w.before(folder)
            times.append(timed(cmd, folder))
    result = Result(w, a_times, b_times)
    print(f"  {w.name}: {statistics.median(a_times):.3f} s vs {statistics.median(b_times):.3f} s, "
          f"ratio {result.ratio:.2f}", file=sys.stderr, flush=True)
    return result


def report(results: Sequence[Result]) -> None:
    header = f"{'workload':<22}{'A':<18}{'A median s':>11} {'B':<17}{'B median s':>11}{'A/B (median of pairs)':>24}{'goal':>8}  met"
    print(header)
    print("-" * len(header))
    for r in results:
        w = r.workload
        goal = "-" if w.goal == float("inf") else f"<= {w.goal:g}"
        met = "" if w.goal == float("inf") else ("yes" if r.ratio <= w.goal else "NO")
        print(f"{w.name:<22}{w.a_label:<18}{statistics.median(r.a):>11.3f} {w.b_label:<17}"
              f"{statistics.median(r.b):>11.3f}{r.ratio:>23.2f}x{goal:>8}  {met}")


def main(argv: Sequence[str] | None = None) -> int:
    global MAKE
    all_names = [w.name for w in workloads()]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=7, help="timed A/B pairs per workload (default 7)")
    p.add_argument("--only", default="", help=f"comma list of: {', '.join(all_names)}")
    args = p.parse_args(argv)
    MAKE = ensure_make()
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or all_names
    unknown = set(chosen) - set(all_names)
    if unknown:
        p.error(f"unknown workload(s) {sorted(unknown)}; choose from {', '.join(all_names)}")
    results = []
    if "noop-1000-vs-doit" in chosen and not has_doit():
        chosen.remove("noop-1000-vs-doit")
        print("noop-1000-vs-doit: skipped, doit is not installed (pip install doit)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="targetrun-vs-make-") as root:
        for w in workloads():
            if w.name in chosen:
                results.append(measure(w, Path(root), args.pairs))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
