"""Each file in tests/broken/ is a Pipelinefile with one mistake; `validate` must refuse it
with exit code 2 and one line naming the file, the line and what is wrong.

A file starts with comment lines: ``# expect-line: N`` (the line the message must name),
one or more ``# expect: TEXT`` (case-insensitive substrings of the message) and, for a
mistake targetrun does not catch yet, ``# xfail: REASON``.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from targetrun.cli import invoke

BROKEN = Path(__file__).parent / "broken"
FILES = sorted(BROKEN.glob("*.yaml"))


def header(path: Path) -> list[tuple[str, str]]:
    """The ``# key: value`` comment lines at the top of a corpus file."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"# ([\w-]+): (.*)$", line)
        if not match:
            break
        pairs.append((match[1], match[2].strip()))
    return pairs


def cases() -> list[object]:
    params = []
    for path in FILES:
        reasons = [value for key, value in header(path) if key == "xfail"]
        marks = [pytest.mark.xfail(reason=reasons[0], strict=True)] if reasons else []
        params.append(pytest.param(path, marks=marks, id=path.name))
    return params


def test_corpus_is_complete() -> None:
    assert len(FILES) >= 36
    for path in FILES:
        assert re.fullmatch(r"\d\d-[a-z0-9-]+\.yaml", path.name), path.name
        assert [key for key, _ in header(path)][:2] == ["expect-line", "expect"], path.name


@pytest.mark.parametrize("path", cases())
def test_broken_file_is_refused(path: Path) -> None:
    fields = header(path)
    line = int(dict(fields)["expect-line"])
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    code = invoke(["validate", "-f", str(path)], out, err)
    elapsed = time.perf_counter() - started
    message = err.getvalue()

    assert code == 2, message or out.getvalue()
    assert "Traceback" not in message + out.getvalue()
    assert message.startswith("targetrun: error: ") and message.endswith("\n") and message.count("\n") == 1, message
    assert path.name in message
    assert re.search(rf"\bline {line}\b", message), f"expected line {line}: {message}"
    for text in [value for key, value in fields if key == "expect"]:
        assert text.lower() in message.lower(), f"expected {text!r}: {message}"
    assert elapsed < 2.0, f"took {elapsed:.2f}s"


@pytest.mark.parametrize("name", ["02-unknown-task-key.yaml", "24-cycle-of-three.yaml", "40-python-object-tag.yaml"])
def test_cli_exit_status_end_to_end(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "targetrun", "validate", "-f", str(BROKEN / name)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert name in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
