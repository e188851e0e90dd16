"""Shared fixtures: a pipeline folder factory and an in-process CLI runner.

Backend servers (S3, GCS, Redis, Dask) are started by fixtures in
``tests/backends.py`` on 127.0.0.1 with free ports, only by the tests that ask for them.
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from targetrun.cli import invoke

# Must be set before s3fs/gcsfs/botocore are imported (see shared/BACKENDS.md).
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("STORAGE_EMULATOR_HOST", None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
os.environ.pop("NO_COLOR", None)
os.environ.pop("FORCE_COLOR", None)
# The user's own cache folder (the spec cache's signing key, see targetrun/pipelinefile/signing.py):
# the tests', not the real home's, and gone when they end.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="targetrun-tests-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)

pytest_plugins = ["tests.backends"]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than this process may use cores (``--maxprocesses``
    caps it). Many tests wait on real processes, servers and signals rather than compute:
    with as many workers as cores, cores stood idle
    (3 workers on 2 cores: 412 s for the whole suite, ~87 % of both cores busy; 2 workers took
    534-561 s on an earlier CI machine)."""
    return len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) + 1
# The broken-Pipelinefile corpus's task modules are imported by `validate`, not collected.
collect_ignore_glob = ["broken/*"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Project:
    """A pipeline folder under tmp_path with helpers to run the CLI against it."""

    root: Path

    @property
    def file(self) -> Path:
        return self.root / "Pipelinefile.yaml"

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def cli(self, *args: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        argv = list(args)
        if argv and argv[0] in ("run", "status", "graph", "show", "validate", "history", "invalidate", "logs"):
            argv[1:1] = ["-f", str(self.file)]
        elif argv and argv[0] == "cache":  # a group: the option belongs to its subcommand
            argv[2:2] = ["-f", str(self.file)]
        code = invoke(argv, out, err)
        return Result(code, out.getvalue(), err.getvalue())

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def counts(self, name: str = "calls.log") -> dict[str, int]:
        """Task bodies append their name to calls.log: how often each ran."""
        path = self.root / name
        found: dict[str, int] = {}
        if path.exists():
            for line in path.read_text().split():
                found[line] = found.get(line, 0) + 1
        return found


@pytest.fixture(autouse=True)
def _no_secrets_from_earlier_tests() -> None:
    """Secrets registered by one in-process command must not mask the next test's output."""
    from targetrun import redact

    redact.forget_all()


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Project]:
    """``project(pipeline_yaml, **modules)`` writes a pipeline folder and returns it."""
    counter = iter(range(1000))

    def make(pipeline: str, **modules: str) -> Project:
        root = tmp_path / f"p{next(counter)}"
        root.mkdir()
        proj = Project(root)
        proj.write("Pipelinefile.yaml", pipeline)
        for name, source in modules.items():
            proj.write(f"{name}.py", source)
        return proj

    return make


# A task module most tests share: every body appends its name to calls.log.
STEPS = '''
import os, time

def _log(name):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write(name + "\\n")

def const(value=1, name="const"):
    _log(name)
    return value

def add(a=0, b=0, name="add"):
    _log(name)
    return a + b

def inc(x, name="inc"):
    _log(name)
    return x + 1

def total(name="total", **values):
    _log(name)
    return sum(values.values())

def text(value="hello", name="text"):
    _log(name)
    return str(value)

def fail(name="fail"):
    _log(name)
    raise RuntimeError("this task always fails")

def flaky(times=1, name="flaky"):
    """Fails `times` times (counted in calls.log), then returns 42."""
    _log(name)
    path = os.path.join(os.path.dirname(__file__), "calls.log")
    with open(path) as f:
        calls = f.read().split().count(name)
    if calls <= times:
        raise RuntimeError(f"flaky failure {calls}")
    return 42
'''


@pytest.fixture
def steps() -> str:
    return STEPS


def mount(*args: str) -> bool:
    """``mount ARGS`` (root only); whether it worked."""
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, str], None]]:
    """``tmpfs(path, options)`` mounts a real tmpfs there (skips where mounting is not
    allowed); each is detached at the end, lazily if a process still holds it."""
    mounted: list[Path] = []

    def attach(path: Path, options: str) -> None:
        if not mount("-t", "tmpfs", "-o", options, "tmpfs", str(path)):
            pytest.skip("this machine does not allow mounting a tmpfs")
        mounted.append(path)

    yield attach
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
