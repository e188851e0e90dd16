"""Executors and state stores are plugins like the built-ins: the registries are the one
list of names (and of `cache:` URL schemes), so a plugin registered only through an entry
point shows in ``run --help``, runs tasks from ``--executor NAME``, and serves `cache:`
URLs of its own name -- with no pip: a ``.dist-info`` folder on a subprocess's PYTHONPATH."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


PLUGIN = '''
from concurrent.futures import ThreadPoolExecutor

from targetrun.store.sqlite import SqliteStore


class CountingExecutor:
    """A thread pool that leaves a file per submission, to prove it was the one used."""

    in_process = True

    def __init__(self, max_workers=1):
        self.max_workers = max_workers
        self.max_in_flight = max_workers
        self._pool = ThreadPoolExecutor(max_workers)

    def submit(self, fn, *args):
        import os
        open(os.path.join("submitted", str(len(os.listdir("submitted")))), "w").close()
        return self._pool.submit(fn, *args)

    def shutdown(self, wait=True):
        self._pool.shutdown(wait=wait)


class NotedStore(SqliteStore):
    """A SQLite store behind ``noted://PATH``."""

    @classmethod
    def address(cls, url, root, *, file=None):
        import os
        return os.path.join(root, url.split("://", 1)[1])
'''


def install_plugin(site: Path) -> None:
    """A tiny distribution as pip would leave it: a module and a .dist-info folder whose
    entry_points.txt declares the executor and the state store."""
    (site / "counting_plugin.py").write_text(PLUGIN)
    info = site / "counting_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: counting-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[targetrun.executors]\ncounting = counting_plugin:CountingExecutor\n\n"
                                           "[targetrun.cache_stores]\nnoted = counting_plugin:NotedStore\n")


def targetrun(folder: Path, site: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    paths = ([str(site)] if site else []) + [os.getcwd()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run([sys.executable, "-m", "targetrun", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=folder)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    install_plugin(folder)
    return folder


def test_a_plugin_executor_is_listed_in_run_help(tmp_path, site):
    shown = targetrun(tmp_path, site, "run", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "[counting|dask|inline|processes|threads]" in " ".join(shown.stdout.split())
    without = targetrun(tmp_path, None, "run", "--help")
    assert "counting" not in without.stdout  # it comes from the entry point, nowhere else


def test_a_plugin_executor_runs_the_tasks(tmp_path, site):
    folder = tmp_path / "pipe"
    (folder / "submitted").mkdir(parents=True)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent('''
        tasks:
          a: {shell: 'echo a > {output}', target: out/a.txt}
          b: {shell: 'cat {needs.a} > {output}', needs: [a], target: out/b.txt}
    '''))
    result = targetrun(folder, site, "run", "--executor", "counting", "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "out/b.txt").read_text() == "a\n"
    assert len(os.listdir(folder / "submitted")) == 2  # both tasks went through the plugin
    refused = targetrun(folder, None, "run", "--executor", "counting")
    assert refused.returncode == 2 and "'counting' is not one of" in refused.stderr


def test_a_plugin_state_store_serves_urls_of_its_name(tmp_path, site):
    folder = tmp_path / "pipe"
    folder.mkdir()
    (folder / "Pipelinefile.yaml").write_text("cache: noted://state/noted.db\n"
                                              "tasks:\n  a: {shell: 'echo a > {output}', target: out/a.txt}\n")
    result = targetrun(folder, site, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "state/noted.db").is_file()  # the plugin's own address rule placed it
    history = targetrun(folder, site, "history", "--json")
    assert history.returncode == 0 and '"succeeded"' in history.stdout
