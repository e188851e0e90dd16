"""Hostile review, round 10: the HTML report under hostile values, and the trust
guarantees under faults (old state rows, killed writers, descriptor exhaustion)."""

from __future__ import annotations

import re

from tests.clirun import in_process, write_project

BIDI = "\u202e\u2066"  # right-to-left override, left-to-right isolate: text shown other than it is


def test_a_huge_or_bidi_error_is_bounded_and_escaped_in_record_report_and_console(tmp_path):
    """A task whose exception text was 3 MB with a right-to-left override in it: the state
    store kept all 3 MB, the console's FAILED line printed all of it, and the HTML report held
    it three times (9 MB, no longer one bounded file) with the override as it was -- which
    turns ``gnp.exe`` round in a browser. An error is now kept and shown to a bounded length
    (its start, then how much was cut), and the report escapes format characters as the
    console does."""
    steps = ("def evil(**up):\n"
             f"    raise RuntimeError('boom {BIDI}gnp.exe <img src=x onerror=alert(1)> ' + 'B' * 3_000_000)\n")
    root = write_project(tmp_path / "p", "tasks:\n  bad: {run: 'steps:evil', target: out/b.pkl}\n",
                         **{"steps.py": steps})
    ran = in_process(root, "run", "-q", "--json")
    assert ran.returncode == 1
    assert len(ran.stdout) + len(ran.stderr) < 100_000, (len(ran.stdout), len(ran.stderr))
    assert "characters cut" in ran.stdout
    import sqlite3

    with sqlite3.connect(root / ".targetrun" / "state.db") as db:
        (kept,), = db.execute("SELECT max(length(error)) FROM task_runs").fetchall()
    assert 1000 < kept < 20_000
    assert in_process(root, "report", "-o", "r.html").returncode == 0
    page = (root / "r.html").read_text()
    assert len(page) < 200_000
    assert not any(c in page for c in BIDI)
    assert "\\u202e\\u2066gnp.exe" in page
    assert "<img" not in page and "&lt;img src=x" in page
    assert re.search(r"[0-9,]+ characters cut", page)

