"""Hostile sweep 5: each case reproduced with the real CLI in a subprocess, on real files,
before it was fixed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _targetrun(folder: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=folder, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def _write(folder: Path, pipelinefile: str, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pipelinefile.yaml").write_text(pipelinefile)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


# -- 1. a YAML key holding a line break cannot break the error's one line -----------------

@pytest.mark.parametrize("pipelinefile", [
    'tasks:\n  "a\\n::error::x":\n    shell: "echo > {output}"\n    target: o.txt\n',
    'params:\n  "a\\n::error::x": 1\ntasks:\n  a:\n    shell: "echo > {output}"\n    target: o.txt\n',
    'tasks:\n  a:\n    shell: "echo > {output}"\n    "tar\\n::error::get": o.txt\n',
])
def test_a_key_with_a_line_break_stays_on_the_errors_one_line(tmp_path: Path, pipelinefile: str) -> None:
    folder = _write(tmp_path / "p", pipelinefile)
    for command in (["validate"], ["run"]):
        done = _targetrun(folder, *command)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert "Pipelinefile.yaml, line " in lines[0] and "\\n::error::" in lines[0]
        assert "Traceback" not in done.stderr
