"""The CLI as a user runs it: a real ``python -m targetrun`` process in a project folder."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path


def targetrun(folder: Path, *args: str, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``targetrun ARGS`` in ``folder`` (stdin closed), with ``env`` over this environment."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=folder, env=environment,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def in_process(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``targetrun ARGS`` as :func:`targetrun` runs it, in this process (the CLI's own
    ``invoke``, cwd ``folder`` meanwhile): for a test whose point is not the process --
    one on S3 saves the ~1 s an S3 client's imports cost a new process."""
    from targetrun.cli import invoke

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(folder)
    try:
        code = invoke(list(args), out, err)
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["targetrun", *args], code, out.getvalue(), err.getvalue())


def write_project(folder: Path, pipelinefile: str, **files: str) -> Path:
    """``folder`` with this ``Pipelinefile.yaml`` and these files (name=text) beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pipelinefile.yaml").write_text(pipelinefile)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder
