"""A small template that names a large value many times cannot take the machine's memory.

``{params.s} {params.s} ...`` three hundred times over a 1 MB parameter is a 1 KB line of
YAML (the 64 MiB limit on YAML aliases does not see it) that rendered to 300 MB -- and, for
a target, several copies of it -- before any check of the result refused it: a run took
2 GB, and a few more names took the machine's memory instead of giving an error. Rendering
stops at 64 MiB of text with exit 2 naming the file, line, key and field.

Each run here gets 1 GiB of address space (RLIMIT_AS): the render alone needed more, so
without the limit it died of MemoryError rather than with this message.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from targetrun import templating
from targetrun.errors import TemplateError

LARGE = "x" * 1_000_000
NAMED = " ".join(["{params.s}"] * 300)


def _in_a_gigabyte() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def _run(folder: Path, pipelinefile: str) -> subprocess.CompletedProcess[str]:
    (folder / "Pipelinefile.yaml").write_text(pipelinefile)
    return subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=folder, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, preexec_fn=_in_a_gigabyte)


# A target renders while the run is planned: refused at load, naming where. A command renders
# when its task starts (it names its inputs' paths): the task fails with it, exit 2, as a
# command too long for the system does.
@pytest.mark.parametrize("where, task", [
    ("Pipelinefile.yaml, line 6, tasks.a.target:", f"    shell: \"echo 1 > {{output}}\"\n    target: \"{NAMED}\"\n"),
    ("FAILED   a ", f"    shell: \"echo {NAMED} > {{output}}\"\n    target: a.txt\n"),
])
def test_a_template_naming_a_large_value_many_times_is_refused_not_built(tmp_path, where, task):
    done = _run(tmp_path, f"params:\n  s: {LARGE}\ntasks:\n  a:\n{task}")
    said = done.stdout + done.stderr
    assert done.returncode == 2, said[-2000:]
    assert "Traceback" not in said and "MemoryError" not in said
    assert where in said, said[:2000]
    limit = "more than a command line can hold on this system (ARG_MAX)" if "FAILED" in where \
        else "the template renders to more than 64 MiB of text"
    assert limit in said and "({params.s} is 1,000,000 characters, named 300 times)" in said, said[:2000]
    assert len(said) < 2000  # one paragraph, not the value
    assert not (tmp_path / "a.txt").exists()


def test_the_limit_is_on_the_rendered_text_not_on_a_value():
    context = {"s": "y" * (templating.MAX_RENDERED - 10)}
    assert len(templating.render("{s}", context)) == templating.MAX_RENDERED - 10  # one large value: as it is
    with pytest.raises(TemplateError, match=r"named 2 times"):
        templating.render("{s}{s}", context)
    with pytest.raises(TemplateError, match=r"named 1 time\)"):
        templating.render("x" * 11 + "{s}", context)  # the literal text counts as well


# Each template within its 64 MiB, but many of them -- several arguments, a mapped task's
# children, a foreach list -- together: 8 arguments of 60 names of a 1 MB value
# built 480 MB and ran; mapped over 20 items, 9.6 GB. What one run's templates render
# together is bounded too (templating.MAX_RENDERED_IN_ALL), with the key where it ran out.
SIXTY = " ".join(["{params.s}"] * 60)
ARGS = "\n".join(f"      a{i}: \"{SIXTY}\"" for i in range(8))


@pytest.mark.parametrize("key, task", [
    ("tasks.a.args.a4", f"    run: steps:f\n    args:\n{ARGS}\n"),
    ("tasks.a.args.x", f"    run: steps:f\n    foreach: [{', '.join(map(str, range(20)))}]\n"
                       f"    args:\n      x: \"{SIXTY} {{item}}\"\n"),
    ("tasks.a.foreach", f"    run: steps:f\n    foreach: [{', '.join([repr(SIXTY)] * 8)}]\n"
                        "    args:\n      x: \"{item}\"\n"),
])
def test_what_a_run_s_templates_render_together_is_bounded(tmp_path, key, task):
    (tmp_path / "steps.py").write_text("def f(**values):\n    return 1\n")
    done = _run(tmp_path, f"params:\n  s: {LARGE}\ntasks:\n  a:\n{task}")
    said = done.stdout + done.stderr
    assert done.returncode == 2, said[-2000:]
    assert "Traceback" not in said and "MemoryError" not in said
    assert "Pipelinefile.yaml, line " in said and key in said, said[:2000]
    assert "the run's templates together render to more than 256 MiB of text" in said, said[:2000]
    assert len(said) < 2000


def test_the_run_s_budget_counts_rendered_text_not_values_named_alone():
    budget = templating.RenderBudget(100)
    context = {"s": "y" * 60, "big": "z" * 10_000}
    assert templating.render_value({"a": "{big}", "b": ["{big}"]}, context, budget) == {"a": "z" * 10_000, "b": ["z" * 10_000]}
    assert budget.left == 100  # a lone field is the value itself: nothing was built
    assert templating.render("{s}", context, budget) == "y" * 60 and budget.left == 40
    with pytest.raises(TemplateError, match=r"together render to more than"):
        templating.render("-{s}", context, budget)
