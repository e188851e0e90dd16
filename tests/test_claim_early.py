"""Early claims: while a command runs, the inline engine stages and claims the task that
waits for it alone, so that task's start does not wait for that commit (engine/run.py
``_claim_early``). These tests look at the store from the commands themselves -- other
processes, as another run would see it -- with real SQLite files and real commands.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

LOOK = """
import json, sqlite3, sys, time
want = sys.argv[2]  # wait (up to 20 s) until the store shows a lock whose name ends so, or "none"
deadline = time.monotonic() + (20 if want != "none" else 0)
while True:
    with sqlite3.connect(sys.argv[1]) as other:
        locks = [name for (name,) in other.execute("SELECT name FROM locks")]
        pending = [location for (location,) in other.execute("SELECT location FROM pending")]
    if want == "none" or any(name.endswith(want) for name in locks) or time.monotonic() > deadline:
        break
    time.sleep(0.01)
print(json.dumps({"locks": sorted(name.rsplit("/", 1)[-1] for name in locks),
                  "pending": sorted(p.rsplit("/", 1)[-1] for p in pending)}))
"""


def _pipeline(root: Path, tasks: str) -> None:
    (root / "look.py").write_text(LOOK)
    (root / "Pipelinefile.yaml").write_text("name: early\ntasks:\n" + textwrap.indent(textwrap.dedent(tasks), "  "))


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as other:
        return other.execute(sql).fetchall()


def test_the_task_waiting_for_a_running_command_alone_is_claimed_while_it_runs(tmp_path: Path) -> None:
    look = f"{sys.executable} look.py .targetrun/state.db"
    _pipeline(tmp_path, f"""\
        a: {{shell: "{look} b.txt > {{output}}", target: out/a.txt}}
        b: {{shell: "cat {{needs.a}} > {{output}}", target: out/b.txt, needs: [a]}}
        """)
    done = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads((tmp_path / "out" / "a.txt").read_text())
    assert seen["locks"] == ["a.txt", "b.txt"]  # b's lock, taken while a ran
    assert len([p for p in seen["pending"] if p == "b.txt"]) == 1  # and the intent of its write, before it starts
    db = tmp_path / ".targetrun" / "state.db"
    assert _rows(db, "SELECT count(*) FROM pending") == [(0,)]
    assert _rows(db, "SELECT count(*) FROM locks") == [(0,)]
    assert (tmp_path / "out" / "b.txt").read_text() == (tmp_path / "out" / "a.txt").read_text()


def test_a_task_claimed_early_lets_go_when_its_upstream_fails(tmp_path: Path) -> None:
    """a fails; b, claimed while a ran, will not run: its lock and intent go at once, not
    at the end of the run -- c, running after a with --keep-going, finds neither."""
    look = f"{sys.executable} look.py .targetrun/state.db"
    _pipeline(tmp_path, f"""\
        a: {{shell: "{sys.executable} -c 'import time; time.sleep(0.3); raise SystemExit(3)' > {{output}}", target: out/a.txt}}
        b: {{shell: "cat {{needs.a}} > {{output}}", target: out/b.txt, needs: [a]}}
        c: {{shell: "{look} none > {{output}}", target: out/c.txt}}
        """)
    done = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q", "-k"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    seen = json.loads((tmp_path / "out" / "c.txt").read_text())
    assert seen == {"locks": ["c.txt"], "pending": ["c.txt"]}
    assert not (tmp_path / "out" / "b.txt").exists()
    db = tmp_path / ".targetrun" / "state.db"
    assert _rows(db, "SELECT count(*) FROM pending") == [(0,)]
    assert _rows(db, "SELECT count(*) FROM locks") == [(0,)]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no staging file left
