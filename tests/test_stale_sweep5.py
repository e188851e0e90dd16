"""Staleness scenarios from the fifth sweep (DESIGN.md "Staleness"), each through the CLI
in-process with real files: what ``status --json``, ``run --dry-run --json`` and
``run --rebuild-stale`` say and do after one change.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Project

CHAIN = """
name: chain
params: {n: 3}
tasks:
  up:
    shell: "test {params.n} -gt 0 && echo positive > {output}"
    target: out/up.txt
  down:
    shell: "cat {needs.up} > {output}; echo down >> {output}"
    needs: [up]
    target: out/down.txt
  last:
    shell: "cat {needs.down} > {output}; echo last >> {output}"
    needs: [down]
    target: out/last.txt
"""


def stale_of(out: str) -> dict[str, list[dict[str, str]]]:
    return {row["task"]: row["stale"] for row in json.loads(out)["tasks"]}


def ran(out: str) -> list[str]:
    return sorted(row["task"] for row in json.loads(out)["tasks"] if row["state"] == "succeeded")


def test_an_upstream_rebuilt_for_a_new_parameter_into_the_same_bytes_leaves_its_dependents_fresh(project):
    """``n`` only reaches ``down`` and ``last`` through ``up``'s value. Before ``up`` is
    rebuilt they say so (made with n=3); once it is rebuilt for n=4 into the same bytes,
    early cutoff holds: they are not rebuilt, and nothing is stale afterwards."""
    p: Project = project(CHAIN)
    assert p.cli("run").code == 0
    before = stale_of(p.cli("status", "--json", "-p", "n=4").out)
    assert {task: [s["what"] for s in stale] for task, stale in before.items()} == \
        {"up": ["parameters"], "down": ["parameters"], "last": ["parameters"]}  # made with n=3, all of them
    rebuilt = p.cli("run", "--rebuild-stale", "--json", "-p", "n=4")
    assert rebuilt.code == 0, rebuilt.err
    assert ran(rebuilt.out) == ["up"]
    assert stale_of(p.cli("status", "--json", "-p", "n=4").out) == {"up": [], "down": [], "last": []}
    assert stale_of(p.cli("run", "--dry-run", "--json", "-p", "n=4").out) == {"up": [], "down": [], "last": []}
    again = p.cli("run", "--rebuild-stale", "--json", "-p", "n=4")
    assert ran(again.out) == []


ORDERED = """
name: ordered
tasks:
  up:
    shell: "echo up > {output}"
    target: out/up.txt
  other:
    shell: "echo other > {output}"
    target: out/other.txt
  down:
    shell: "cat out/up.txt out/other.txt > {output}"
    needs: [up]
    target: out/down.txt
"""


def test_an_upstream_added_to_or_dropped_from_needs_makes_the_target_stale_by_its_inputs(project):
    """The set of inputs is part of what made a target (Snakemake: "input set changed";
    DVC: a changed ``deps`` list): an upstream added to ``needs`` (a shell command that
    reads it by path) or dropped from it is stale by inputs, named, in every view, and
    ``--rebuild-stale`` rebuilds exactly that target once."""
    p: Project = project(ORDERED)
    assert p.cli("run", "up", "other").code == 0
    assert p.cli("run", "down").code == 0
    p.write("Pipelinefile.yaml", ORDERED.replace("needs: [up]", "needs: [up, other]"))
    expected = [{"what": "inputs", "detail": "new input other"}]
    assert stale_of(p.cli("status", "--json").out)["down"] == expected
    assert stale_of(p.cli("run", "--dry-run", "--json", "down").out)["down"] == expected
    assert ran(p.cli("run", "--rebuild-stale", "--json").out) == ["down"]
    assert ran(p.cli("run", "--rebuild-stale", "--json").out) == []
    p.write("Pipelinefile.yaml", ORDERED)
    assert stale_of(p.cli("status", "--json").out)["down"] == [{"what": "inputs", "detail": "input other is gone"}]
    assert ran(p.cli("run", "--rebuild-stale", "--json").out) == ["down"]
    assert stale_of(p.cli("status", "--json").out)["down"] == []


def _other_pythons() -> list[str]:
    """Python 3.12 and 3.13 interpreters that run here (on PATH, or pyenv's), one of each."""
    found: dict[str, str] = {}
    for minor in ("3.12", "3.13"):
        candidates = [shutil.which(f"python{minor}"), *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{minor}*/bin/python")))]
        for python in filter(None, candidates):
            if subprocess.run([python, "-c", "pass"], capture_output=True).returncode == 0:
                found[minor] = python
                break
    return list(found.values())


FINGERPRINT = """
import json, sys
from targetrun.staleness import CodeIndex
print(json.dumps(CodeIndex(sys.argv[1]).of_callable("tasks:clean"), sort_keys=True))
"""


def test_the_code_fingerprint_of_unchanged_code_is_the_same_on_every_python(project):
    """Python 3.12 writes ``type_params=[]`` into every function's ``ast.dump`` and an empty
    string into nested f-string format specs, 3.13 leaves empty lists out: the same source
    digested differently on each, so a Python upgrade -- or a 3.11 laptop and a 3.12 CI job
    sharing one Redis store -- said "code changed — tasks.py: clean, helper norm" for code
    nobody touched (and a ``code`` validator rebuilt everything, back and forth)."""
    interpreters = _other_pythons()
    if not interpreters:
        pytest.skip("no Python 3.12 or 3.13 here to compare with")
    p: Project = project("name: py\ntasks: {clean: {run: 'tasks:clean', target: out.json}}\n", tasks='''
        from helpers import norm

        def clean(n=2):
            return {"v": norm(f"{n:>{n}}"), "w": [x for x in range(n) if x]}
        ''', helpers='''
        class Box:
            size: int = 1

        def norm(text):
            return text.strip()
        ''')
    digests = {subprocess.run([python, "-c", FINGERPRINT, str(p.root)], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}).stdout
               for python in [sys.executable, *interpreters]}
    assert len(digests) == 1, digests


def test_an_argument_renamed_for_the_same_upstream_is_not_a_new_input(project):
    """``needs: {d: up}`` -> ``needs: {days: up}`` on a shell task that reads the file by path:
    the same value under another name, nothing stale."""
    mapped = ORDERED.replace("needs: [up]", "needs: {d: up}")
    p: Project = project(mapped)
    assert p.cli("run", "up", "other", "down").code == 0
    p.write("Pipelinefile.yaml", mapped.replace("needs: {d: up}", "needs: {days: up}"))
    assert stale_of(p.cli("status", "--json").out)["down"] == []


def test_early_cutoff_for_a_parameter_holds_down_a_chain_of_any_depth(project):
    """Forty tasks below the one that names ``n``: each is judged from the answer for the
    one above it, never by a walk up the whole chain (nor a guess past some depth)."""
    lines = ["name: deep", "params: {n: 3}", "tasks:",
             "  t0: {shell: 'test {params.n} -gt 0 && echo ok > {output}', target: out/t0.txt}"]
    lines += [f"  t{i}: {{shell: 'cat {{needs.t{i - 1}}} > {{output}}', needs: [t{i - 1}], target: out/t{i}.txt}}"
              for i in range(1, 41)]
    p: Project = project("\n".join(lines) + "\n")
    assert p.cli("run").code == 0
    assert ran(p.cli("run", "--rebuild-stale", "--json", "-p", "n=4").out) == ["t0"]
    assert not any(stale_of(p.cli("status", "--json", "-p", "n=4").out).values())
    assert ran(p.cli("run", "--rebuild-stale", "--json", "-p", "n=4").out) == []


MAPPED = """
name: mapped
params: {cities: [berlin, paris], k: 2}
tasks:
  per_city:
    shell: "test {params.k} -gt 0 && echo {item} > {output}"
    foreach: "{params.cities}"
    target: "out/city/{item}.txt"
  summary:
    run: sweep5_mapped:summary
    needs: [per_city]
    target: out/summary.json
"""


def test_a_reader_of_a_mapped_task_rebuilt_into_the_same_bytes_is_fresh_in_every_view(project):
    """``k`` reaches ``summary`` only through ``per_city``'s children; once they are rebuilt
    for k=5 into the same bytes, ``status`` and ``run --dry-run`` (which do not walk up to
    the mapped task) say what ``run --rebuild-stale`` (which does) then does: nothing."""
    p: Project = project(MAPPED, sweep5_mapped="def summary(per_city):\n    return sorted(per_city)\n")
    assert p.cli("run").code == 0
    assert ran(p.cli("run", "--rebuild-stale", "--json", "-p", "k=5").out) == ["per_city", "per_city[0]", "per_city[1]"]  # the mapped task reports "succeeded" too
    assert stale_of(p.cli("status", "--json", "-p", "k=5").out)["summary"] == []
    assert stale_of(p.cli("run", "--dry-run", "--json", "-p", "k=5").out)["summary"] == []
    assert ran(p.cli("run", "--rebuild-stale", "--json", "-p", "k=5").out) == []


def test_a_parameter_through_an_upstream_without_a_target_is_judged_alike_by_status_and_run(project):
    """``mid`` has no target: ``status`` cannot know its value without running it, so the
    parameter it passes on stays a change for ``last``; ``--rebuild-stale`` rebuilds ``last``
    (it does not keep it while ``status`` calls it stale), and then both say it is fresh."""
    p: Project = project(CHAIN.replace("    target: out/down.txt\n", "").replace(
        'shell: "cat {needs.up} > {output}; echo down >> {output}"', "run: sweep5_mid:down").replace(
        'shell: "cat {needs.down} > {output}; echo last >> {output}"', "run: sweep5_mid:last"),
        sweep5_mid="def down(up):\n    return up\n\n\ndef last(down):\n    return down\n")
    assert p.cli("run").code == 0
    assert ran(p.cli("run", "--rebuild-stale", "--json", "-p", "n=4").out) == ["down", "last", "up"]
    assert stale_of(p.cli("status", "--json", "-p", "n=4").out)["last"] == []
    assert ran(p.cli("run", "--rebuild-stale", "--json", "-p", "n=4").out) == ["down"]  # no target: it runs
