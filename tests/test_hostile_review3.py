"""Hostile review, round 3: each case reproduced with real files and processes before it
was fixed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from targetrun import redact

GHP = "ghp_ApiP4thT0kenValue0123456789abcdef"
PLAIN = "plain-Env-Secret-77"  # no recognisable shape: only the environment says it is one


def _files_under(folder: Path) -> list[tuple[str, bytes]]:
    return [(str(path), path.read_bytes()) for path in folder.rglob("*") if path.is_file()]


# -- 1. the Python API masks the credentials of its environment, as the CLI does ----------

API_SCRIPT = '''
import sys
from targetrun import api
from targetrun.report.logs import LogFileReporter
spec = api.load(sys.argv[1])
summary = api.run(spec, keep_going=True, reporter=LogFileReporter(spec.root))
print(summary)
'''

TASKS = '''
import os

def leak():
    raise RuntimeError("python task failed with " + os.environ["GITHUB_TOKEN"] + " " + os.environ["CI_SECRET"])
'''
SHAPELESS = "xyz_ApiP4thT0kenValue0123456789"


def test_the_python_api_masks_environment_credentials_a_task_echoes(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "tasks.py").write_text(TASKS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        tasks:
          shell_leak:
            shell: 'echo "saw $GITHUB_TOKEN $CI_SECRET"; echo "saw $GITHUB_TOKEN $CI_SECRET" >&2; exit 3'
            target: out/leak.txt
          py_leak: {run: tasks:leak, target: out/p.txt}
    """).lstrip())
    result = subprocess.run([sys.executable, "-c", API_SCRIPT, str(folder / "Pipelinefile.yaml")],
                            capture_output=True, text=True, timeout=120, cwd=folder,
                            env={**os.environ, "GITHUB_TOKEN": SHAPELESS, "CI_SECRET": PLAIN})
    assert result.returncode == 0, result.stderr
    blobs = _files_under(folder / ".targetrun")  # the store and the task logs (what the API returns is the caller's)
    assert any(b"python task failed with ***" in blob for _, blob in blobs), "the error is in the store, masked"
    assert any(b"saw *** ***" in blob for _, blob in blobs), "the task's output is in its log, masked"
    for secret in (SHAPELESS, PLAIN):
        for where, blob in blobs:
            assert secret.encode() not in blob, f"{secret!r} in {where}"

