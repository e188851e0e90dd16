"""The seed example (Prefect 1's own: a task returning 99 to a ``.txt`` target) and the
rule it needs: a Python task's ``.txt`` target is text for a str and JSON text for any
other value, and the checkpoint records which, so reading never guesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SEED = Path(__file__).resolve().parent.parent / "examples" / "seed"


def _targetrun(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=folder, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_seed_example_runs_and_99_arrives_as_99(tmp_path, executor):
    folder = tmp_path / "seed"
    shutil.copytree(SEED, folder)
    done = _targetrun(folder, "run", "--date", "2026-11-02", "--json", "-j", "2", "--executor", executor)
    assert done.returncode == 0, done.stderr + done.stdout
    doc = json.loads(done.stdout)
    assert {t["task"]: t["checkpoint"]["serializer"] for t in doc["tasks"]} == {"answer": "json", "double": "json"}
    assert (folder / "build/Monday/answer.txt").read_text() == "99\n"  # readable text
    assert (folder / "build/Monday/double.txt").read_text() == "198\n"  # double got the int 99
    # A later run reads answer's checkpoint as recorded (json), not as its suffix suggests.
    (folder / "build/Monday/double.txt").unlink()
    again = _targetrun(folder, "run", "--date", "2026-11-02")
    assert again.returncode == 0 and "skipped  answer" in again.stdout, again.stderr + again.stdout
    assert (folder / "build/Monday/double.txt").read_text() == "198\n"
    shown = _targetrun(folder, "show", "answer", "--date", "2026-11-02")
    assert shown.returncode == 0 and shown.stdout == "99\n", shown.stderr


def test_txt_rule_writes_a_str_as_text_and_other_values_as_json(project):
    proj = project("""
        tasks:
          words: {run: steps:words, target: out/words.txt}
          nothing: {run: steps:nothing, target: out/nothing.txt}
          listed: {run: steps:listed, target: out/listed.txt}
          check: {run: steps:check, needs: [words, nothing, listed], target: out/check.txt}
        """, steps='''
def words():
    return "99 red balloons\\n"

def nothing():
    return None

def listed():
    return [1, "a", {"b": 2.5}]

def use(given):
    return {"type": type(given).__name__, "value": given}

def check(words, nothing, listed):
    assert (words, nothing, listed) == ("99 red balloons\\n", None, [1, "a", {"b": 2.5}]), (words, nothing, listed)
    return "ok"
''')
    result = proj.cli("run", "--json")
    assert result.code == 0, result.text
    assert proj.read("out/words.txt") == "99 red balloons\n"
    assert proj.read("out/nothing.txt") == "null\n"
    assert json.loads(proj.read("out/listed.txt")) == [1, "a", {"b": 2.5}]
    (proj.root / "out/check.txt").unlink()
    assert proj.cli("run").code == 0  # the upstreams are read back from their records
    assert proj.read("out/check.txt") == "ok"

    # A .txt file no run recorded (made by something else) is text; an explicit
    # `serializer: text` still takes only a str: a list there is a value/format mismatch (exit 2).
    proj.write("Pipelinefile.yaml", """
        tasks:
          given: {run: steps:words, target: in/given.txt}
          use: {run: steps:use, needs: [given], target: out/use.json}
          strict: {run: steps:listed, target: out/strict.txt, serializer: text}
        """)
    proj.write("in/given.txt", "[1, 2]\n")
    result = proj.cli("run", "--keep-going")
    assert result.code == 2 and "text takes a str" in result.text, result.text
    assert json.loads(proj.read("out/use.json")) == {"type": "str", "value": "[1, 2]\n"}
