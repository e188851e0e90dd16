"""Findings of a fuzzer run over mutated Pipelinefiles and command lines (hostile input,
round 4). Each case was reproduced with real files before it was fixed; each fix is at
the one place the value is made, so every sibling input is covered too."""

from __future__ import annotations

import io

import pytest

from targetrun.cli import invoke
from tests.conftest import STEPS, Result


def _refused_plainly(result, *words: str) -> None:
    """Exit 2, one paragraph, no traceback, and each word somewhere in it."""
    assert result.code == 2, result.text
    assert "Traceback" not in result.text and "internal error" not in result.err, result.text
    assert result.err.startswith("targetrun: error: "), result.err
    for word in words:
        assert word in result.err, result.err


# -- 1. a format spec that makes text no file, command or store can hold ---------------------
# `{n:c}` turns an int into a character; 55296 (0xD800) is a lone surrogate, which is not
# UTF-8: the target's length check, the state store and subprocess each failed on it in
# their own way (a traceback, exit 4, or a "failed" task with a traceback, exit 1).

SURROGATE_SITES = {
    "target": "a: {run: steps:const, target: 'o/{params.n:c}.json'}",
    "cache_key": "a: {run: steps:const, cache_for: 1h, cache_key: 'k{params.n:c}'}",
    "shell": "a: {shell: 'echo {params.n:c}'}",
    "args": "a: {run: steps:const, args: {value: 'v{params.n:c}'}}",
    "mapped target": "a: {run: steps:const, foreach: '{params.ns}', target: 'o/{item:c}.json'}",
}


@pytest.mark.parametrize("command", [["validate"], ["run"], ["status"], ["run", "--dry-run"]])
@pytest.mark.parametrize("site", list(SURROGATE_SITES.values()), ids=list(SURROGATE_SITES))
def test_a_field_that_renders_to_a_lone_surrogate_is_refused(project, site, command):
    proj = project(f"params: {{n: 55296, ns: [55296]}}\ntasks:\n  {site}\n", steps=STEPS)
    result = proj.cli(*command)
    assert "Traceback" not in result.text and "internal error" not in result.text, result.text
    if site == SURROGATE_SITES["shell"] and command != ["run"]:
        assert result.code == 0, result.text  # a command is rendered only to run it
    elif site == SURROGATE_SITES["shell"]:
        assert result.code == 2 and "FAILED" in result.out and "not UTF-8" in result.out, result.text
    elif result.code == 0:  # validate cannot know every rendered value (foreach items come later)
        assert command == ["validate"], result.text
    else:
        _refused_plainly(result, "not UTF-8")


# -- 2. `-f ''`: an empty path -------------------------------------------------------------
# `validate -f ''` was an internal error (os.path.relpath('') raises ValueError); the other
# commands said "no such Pipelinefile: ." -- a path the user did not give.

@pytest.mark.parametrize("command", [["validate"], ["validate", "--json"], ["run"], ["run", "-q"], ["status"],
                                     ["graph"], ["show", "a"], ["history"], ["invalidate", "a"], ["gc"]])
def test_an_empty_pipelinefile_path_is_a_usage_error(project, monkeypatch, command):
    proj = project("tasks:\n  a: {run: steps:const}\n", steps=STEPS)
    monkeypatch.chdir(proj.root)  # a Pipelinefile is here: the empty path must not fall back to it
    out, err = io.StringIO(), io.StringIO()
    code = invoke([*command, "-f", ""], out, err)
    result = Result(code, out.getvalue(), err.getvalue())
    _refused_plainly(result, "-f", "empty")
