"""The status certificate rests on what the run's certificate rests on: one policy check,
``certify.decided_by_existence``. After each kind of change a task may be stale by or
expire through -- its code, a deps file, a parameter, its cache entry's age, an input --
a repeated ``status`` either answers from its certificate with exactly what a fresh status
(no certificate) prints, or leaves it to the fresh status.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

import pytest

from tests.test_status_replay import PLAIN, full, replayed

TASKS = "def f():\n    return 1\n"


def _edit(rel: str, text: str) -> Callable[..., None]:
    def change(proj) -> None:
        proj.write(rel, text)
    return change


def _wait(seconds: float) -> Callable[..., None]:
    return lambda proj: time.sleep(seconds)


VARIANTS = {
    "code edit": ("  f: {run: tasks:f, target: out/f.pkl}\n", _edit("tasks.py", "def f():\n    return 2\n")),
    "code edit, code validator": ("  f: {run: tasks:f, target: out/f.pkl, cache_validator: [code]}\n",
                                  _edit("tasks.py", "def f():\n    return 2\n")),
    "deps file edit": ("  f: {shell: 'cat in.txt > {output}', deps: [in.txt], target: out/f.txt}\n",
                       _edit("in.txt", "changed\n")),
    "deps file edit, deps validator": ("  f: {shell: 'cat in.txt > {output}', deps: [in.txt], target: out/f.txt, "
                                       "cache_validator: [deps]}\n", _edit("in.txt", "changed\n")),
    "cache expiry": ("  f: {shell: 'echo f > {output}', target: out/f.txt, cache_for: 2s}\n", _wait(2.5)),
    "cache expiry, no target": ("  f: {shell: 'echo f', cache_for: 2s}\n", _wait(2.5)),
    "input rewritten, inputs validator": ("  f: {shell: 'cat {needs.a} > {output}', needs: [a], target: out/f.txt, "
                                          "cache_validator: [all_inputs]}\n", _edit("out/a.txt", "A\n")),
    "code validator on a shell task": ("  f: {shell: 'echo f > {output}', target: out/f.txt, "
                                       "cache_validator: [code, all_parameters]}\n", _wait(0.0)),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_after_each_kind_of_change_a_repeated_status_says_what_a_fresh_one_says(project, variant):
    task, change = VARIANTS[variant]
    proj = project(PLAIN + task)
    proj.write("tasks.py", TASKS)
    proj.write("in.txt", "in\n")
    assert proj.cli("run").code == 0
    for _ in range(2):  # the second may answer from the first's certificate, and leave one too
        assert proj.cli("status").code == 0
    change(proj)
    now = time.time()
    answer = replayed(proj, now=now)
    fresh = full(proj, now)
    if answer is not None:
        assert answer[1] == fresh, variant
    shutil.rmtree(proj.root / ".targetrun" / "replay", ignore_errors=True)
    assert replayed(proj, now=now) is None
    assert full(proj, now) == fresh


def test_a_task_a_validator_judges_leaves_no_status_certificate(project):
    """As the run leaves no certificate for it: the table rests on what the validator weighs."""
    for validator in ("[code]", "[all_inputs]", "[all_parameters]"):
        proj = project(PLAIN + f"  f: {{shell: 'cat {{needs.a}} > {{output}}', needs: [a], target: out/f.txt, "
                               f"cache_validator: {validator}}}\n")
        assert proj.cli("run").code == 0
        for _ in range(2):
            assert proj.cli("status").code == 0
        assert replayed(proj) is None, validator
