"""The shipped pipelines run offline, and a second run skips everything."""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import pytest

from targetrun.cli import invoke

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [ROOT] + sorted(p for p in (ROOT / "examples").iterdir() if (p / "Pipelinefile.yaml").exists())
IGNORE = shutil.ignore_patterns(".targetrun", "build", "reports", "__pycache__", ".git", "tests", "benchmarks",
                                "targetrun", "examples", "*.egg-info", ".hypothesis")


def cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = invoke(list(argv), out, err)
    return code, out.getvalue() + err.getvalue()


@pytest.mark.parametrize("folder", EXAMPLES, ids=lambda p: p.name if p != ROOT else "root")
def test_example_runs_then_skips(folder, tmp_path, monkeypatch):
    # Shell tasks that run `python` (the tutorial's report) get this interpreter, as in a venv.
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    copy = tmp_path / "example"
    shutil.copytree(folder, copy, ignore=IGNORE)
    pipeline = str(copy / "Pipelinefile.yaml")
    date = ["--date", "2026-11-01"]
    code, text = cli("run", "-f", pipeline, *date)
    assert code == 0, text
    code, text = cli("run", "-f", pipeline, *date)
    assert code == 0, text
    assert " ran" not in text and "skipped" in text
    code, text = cli("status", "--check", "-f", pipeline, *date)
    assert code == 0, text
