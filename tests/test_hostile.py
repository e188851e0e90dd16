"""Hostile input: generated Pipelinefiles and command lines end with exit 0, 1 or 2 and a
message -- never a traceback, a crash or a hang."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from targetrun.cli import invoke
from targetrun.pipelinefile.schema import TASK_KEYS, TOP_KEYS

# No "/", ":" or "." in generated text: no path leaves the temporary folder, no URL is
# fetched, so every failure is the input's fault, never the network's.
SAFE = st.characters(blacklist_categories=("Cs",), blacklist_characters="/:.\\~$\x00")
TEXT = st.text(SAFE, max_size=30) | st.sampled_from(["{today}", "{params.x}", "{item}", "{nope}", "{", "}", "{}",
                                                       "a" * 5000, "ünïcødé ✓", "{date:%Y}", "{params.x:d}"])
SCALAR = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | TEXT
VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                     max_leaves=12)
KEY = st.sampled_from(list(TASK_KEYS)) | TEXT
TASK = st.dictionaries(KEY, VALUE | st.sampled_from(["steps:const", "echo hi", "out/x.json", [], {}]), max_size=6)
PIPELINE = st.fixed_dictionaries(
    {"tasks": st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True) | TEXT, TASK | VALUE,
                              max_size=5)},
    optional={key: VALUE for key in TOP_KEYS if key not in ("tasks", "cache")},
)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    began = time.monotonic()
    code = invoke(argv, out, err)
    text = out.getvalue() + err.getvalue()
    assert code in (0, 1, 2), (code, argv, text)
    assert "Traceback" not in text and "targetrun: internal error" not in text, text
    if code == 2:
        assert err.getvalue().startswith("targetrun: error: ") or "Usage:" in text, text  # bare `targetrun`: the help, plainly
    assert time.monotonic() - began < 20
    return code, text


@FUZZ
@given(PIPELINE)
def test_generated_pipelinefiles(document):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Pipelinefile.yaml"
        path.write_text(yaml.safe_dump(document, allow_unicode=True))
        (Path(folder) / "steps.py").write_text("def const(value=1, **kw):\n    return value\n")
        check(["validate", "-f", str(path)])
        check(["run", "--dry-run", "-f", str(path)])
        check(["status", "--json", "-f", str(path)])


@FUZZ
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=400))
def test_arbitrary_text_as_a_pipelinefile(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Pipelinefile.yaml"
        path.write_text(text)
        check(["validate", "-f", str(path)])


ARGS = st.sampled_from(["run", "status", "graph", "show", "validate", "history", "cache", "list", "clear", "logs",
                        "invalidate", "--dry-run", "--json", "--check", "-p", "x=1", "-p", "--date", "2026-11-01",
                        "2026-13-01", "2026-11-01..2026-11-03", "--force", "--force-all", "-j", "0", "3", "--executor",
                        "threads", "nope", "--keep-going", "--resume", "--verify", "--format", "dot", "a", "b",
                        "a[0]", "--", "-q", "-v", "--run", "--task", "--expired"]) | TEXT


@FUZZ
@given(st.lists(ARGS, max_size=7))
def test_generated_command_lines(argv):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Pipelinefile.yaml"
        path.write_text("params: {x: 1}\ntasks:\n  a: {run: steps:const, target: out/a.json}\n"
                        "  b: {run: steps:const, needs: {value: a}, target: out/b.json}\n")
        (Path(folder) / "steps.py").write_text("def const(value=1):\n    return value\n")
        cwd = os.getcwd()
        os.chdir(folder)  # commands without -f find this Pipelinefile
        try:
            check(argv)
        finally:
            os.chdir(cwd)


DEEP = {
    "flow, 100,000 levels": "tasks: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "flow, 200 levels": "tasks: " + "[" * 200 + "]" * 200 + "\n",
    "block, 3,000 levels": "".join(" " * i + "k:\n" for i in range(3000)) + " " * 3000 + "v\n",
}


@pytest.mark.parametrize("text", list(DEEP.values()), ids=list(DEEP))
def test_deep_nesting_is_refused_without_crashing(tmp_path, text):
    # Behaviour, not a library's wording: exit 2 (a segfault would be -11), one paragraph
    # naming the file and targetrun's own limit, whatever limit the YAML library has.
    path = tmp_path / "Pipelinefile.yaml"
    path.write_text(text)
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "targetrun", "validate", "-f", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("targetrun: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert str(path) in result.stderr and "Traceback" not in result.stderr
    assert "nests deeper than 64 levels" in result.stderr
    assert time.monotonic() - began < 10


@pytest.mark.parametrize("loader", ["CSafeLoader", "SafeLoader"])
@pytest.mark.parametrize("text", list(DEEP.values()), ids=list(DEEP))
def test_depth_limit_is_targetrun_own_with_either_yaml_parser(monkeypatch, loader, text):
    from targetrun.errors import SpecError
    from targetrun.pipelinefile import yamlnodes

    if not hasattr(yaml, loader):
        pytest.skip(f"PyYAML has no {loader} here")
    monkeypatch.setattr(yamlnodes, "_Loader", getattr(yaml, loader))
    with pytest.raises(SpecError, match="nests deeper than 64 levels"):
        yamlnodes.load_document(text, "Pipelinefile.yaml")
    # A shallow file's syntax error is still reported as the syntax error, where it is.
    with pytest.raises(SpecError, match="not valid YAML.*line 1") as caught:
        yamlnodes.load_document("a: [1, 2\nb: 3\n", "Pipelinefile.yaml")
    assert "line 2" in str(caught.value)
