"""The README works as written: every code block in it is either a file of
``examples/tutorial/`` (checked identical), a command block run as shown in a copy of that
folder, or a Pipelinefile fragment run inside a small pipeline that gives it what it
needs (``FRAGMENTS``). A new block that none of these covers fails
``test_every_block_is_tested``.

The first block's two commands: ``targetrun run`` is run in a copy of the repository's
example; the install steps and the test command are what ``.ci/run`` runs, in a new
virtual environment, and ``test_ci_runs_exactly_the_readme_test_command`` checks it is
the same line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TUTORIAL = ROOT / "examples" / "tutorial"
IGNORE = shutil.ignore_patterns(".targetrun", "build", "reports", "__pycache__", ".git", "tests", "benchmarks",
                                "targetrun", "examples", "*.egg-info", ".hypothesis", "constraints", ".ci")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int

    @property
    def first(self) -> str:
        return self.text.splitlines()[0]

    @property
    def commands(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def readme_blocks() -> list[Block]:
    blocks, lines = [], README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^```(\w*)\s*$", lines[i])
        if match:
            end = lines.index("```", i + 1)
            blocks.append(Block(match[1], "\n".join(lines[i + 1:end]) + "\n", i + 1))
            i = end
        i += 1
    return blocks


BLOCKS = readme_blocks()
INSTALL = BLOCKS[0]
TUTORIAL_FILES = {"yaml": TUTORIAL / "Pipelinefile.yaml", "python": TUTORIAL / "tasks.py"}
SHELL_BLOCKS = [b for b in BLOCKS[1:] if b.lang == "sh"]


def _env() -> dict[str, str]:
    """This interpreter's bin folder first on PATH: `targetrun` and `python` are this venv's."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return env


def _sh(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=300)


# -- the first block ---------------------------------------------------------------------


def test_first_block_installs_only_the_base_and_runs_the_demo(tmp_path):
    install, test = INSTALL.commands
    assert INSTALL.lang == "sh" and install == "pip install -e . && targetrun run"
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=IGNORE)
    done = _sh(install.split(" && ", 1)[1], copy)
    assert done.returncode == 0, done.stderr + done.stdout
    assert list((copy / "reports").glob("*-report.txt"))


def test_ci_runs_exactly_the_readme_test_command():
    test = INSTALL.commands[1]
    assert test == "pip install -c constraints/test.txt -e '.[test]' && python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test in ci, "the README's test command and .ci/run must be the same line"
    assert any(re.search(r'python3? -m venv "\$\S*"', line) for line in ci), "CI makes a new venv each run"
    assert (ROOT / "constraints" / "test.txt").exists()


def test_constraints_pin_what_the_suite_depends_on():
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints" / "test.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    for name in ("pytest", "PyYAML", "hypothesis", "mypy", "moto", "click", "fsspec", "luigi"):
        assert name in pins, f"{name} is not pinned"
    assert not any(name.lower() == "targetrun" for name in pins)


# -- the tutorial's files ----------------------------------------------------------------


@pytest.mark.parametrize("lang", ["yaml", "python"])
def test_tutorial_blocks_are_the_example_files(lang):
    block = next(b for b in BLOCKS if b.lang == lang)  # the first of each: the tutorial's
    assert block.text == TUTORIAL_FILES[lang].read_text(encoding="utf-8"), (
        f"README line {block.line} differs from {TUTORIAL_FILES[lang].relative_to(ROOT)}: change both")


# -- command blocks ----------------------------------------------------------------------


def _fail_one_run(folder: Path) -> None:
    """A failed run for `--resume` to resume: report.py fails once, then is restored."""
    script = folder / "report.py"
    good = script.read_text()
    script.write_text("raise SystemExit('report failed on purpose')\n")
    try:
        assert _sh("targetrun run --force report", folder).returncode == 1
    finally:
        script.write_text(good)


def test_command_blocks_run_as_shown_in_the_tutorial(tmp_path):
    folder = tmp_path / "tutorial"
    shutil.copytree(TUTORIAL, folder)
    ran = []
    for block in SHELL_BLOCKS:
        if any("--resume" in command for command in block.commands):
            _fail_one_run(folder)
        for command in block.commands:
            done = _sh(command, folder)
            assert done.returncode == 0, f"README line {block.line}: `{command}` exited {done.returncode}:\n" \
                                         f"{done.stderr}{done.stdout}"
            ran.append(command)
    assert len(ran) >= 18
    assert any(path.read_text().startswith("berlin: mean 4.0") for path in (folder / "reports").glob("*.txt"))


# -- Pipelinefile fragments ----------------------------------------------------------------


def _fragment(first: str) -> Block:
    return next(b for b in BLOCKS if b.lang == "yaml" and b.first == first)


def _write(folder: Path, pipeline: str, **modules: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pipelinefile.yaml").write_text(pipeline)
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return folder


def _run(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "targetrun", "run", *args], cwd=folder, capture_output=True,
                          text=True, timeout=300, env={**_env(), **(env or {})})


def test_fragment_shell_task(tmp_path):
    block = _fragment("  words:")
    folder = _write(tmp_path / "p", "tasks:\n  text:\n    shell: \"printf 'a b a' > {output}\"\n"
                                    "    target: out/text.txt\n" + block.text)
    done = _run(folder)
    assert done.returncode == 0, done.stderr
    assert (folder / "out/counts.txt").read_text().split() == ["2", "a", "1", "b"]


def test_fragment_output_caching(tmp_path):
    block = _fragment("  report:")
    folder = _write(tmp_path / "p", (TUTORIAL / "Pipelinefile.yaml").read_text().split("  report:")[0] + block.text,
                    tasks=(TUTORIAL / "tasks.py").read_text() + "\ndef report(clean):\n    return clean['mean']\n")
    first, second = _run(folder), _run(folder)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "ran      report" in first.stdout and "1 cached" in second.stdout and "cache hit" in second.stdout, second.stdout


def test_fragment_mapping(tmp_path):
    block = _fragment("  per_city:")
    folder = _write(tmp_path / "p", "params: {cities: [berlin, paris]}\ntasks:\n"
                                    "  numbers: {run: tasks:numbers, target: numbers.json}\n" + block.text,
                    tasks="""
                    def fetch(city):
                        return {"city": city}

                    def numbers():
                        return [1, 2, 3]

                    def square(x):
                        return x * x
                    """)
    done = _run(folder)
    assert done.returncode == 0, done.stderr
    assert (folder / "raw/paris.json").exists() and (folder / "sq/2.json").read_text() == "9\n"


def test_fragment_redis_cache_unreachable_is_exit_3_with_the_password_masked(tmp_path):
    block = _fragment("cache: redis://:${REDIS_PASSWORD}@cache.internal:6379/0   # rediss:// for TLS")
    folder = _write(tmp_path / "p", block.text + "tasks:\n  a: {shell: \"echo hi > {output}\", target: a.txt}\n")
    done = _run(folder, env={"REDIS_PASSWORD": "s3cret-in-readme-test"})
    assert done.returncode == 3, done.stderr
    assert "cache.internal" in done.stderr and "s3cret-in-readme-test" not in done.stderr


def test_fragment_s3_results(tmp_path, s3, s3_server, monkeypatch, project):
    block = _fragment("results:")
    s3.mkdir("my-bucket")
    monkeypatch.setenv("S3_ENDPOINT_URL", s3_server.endpoint)
    proj = project(block.text + "tasks:\n  hello: {run: tasks:hello, target: hello.json}\n",
                   tasks="def hello():\n    return {'hello': 'lake'}\n")
    result = proj.cli("run")
    assert result.code == 0, result.text
    assert s3.cat("my-bucket/weather/hello.json") == b'{"hello": "lake"}\n'


def test_fragment_csv_options(tmp_path):
    pytest.importorskip("pandas")
    block = _fragment("  export: {run: tasks:export, target: out/export.csv, serializer: {name: csv, options: {sep: \";\"}}}")
    folder = _write(tmp_path / "p", "tasks:\n" + block.text + "  back: {run: tasks:back, needs: [export], target: out/back.json}\n",
                    tasks="""
                    import pandas as pd

                    def export():
                        return pd.DataFrame({"city": ["paris", "lyon"], "n": [1, 2]})

                    def back(export):
                        return export.to_dict("list")
                    """)
    done = _run(folder)
    assert done.returncode == 0, done.stderr
    assert (folder / "out/export.csv").read_text() == "city;n\nparis;1\nlyon;2\n"
    assert (folder / "out/back.json").read_text() == '{"city": ["paris", "lyon"], "n": [1, 2]}\n'


def test_fragment_staleness(tmp_path):
    block = _fragment("  clean:")
    tutorial = (TUTORIAL / "Pipelinefile.yaml").read_text()
    pipeline = tutorial.split("  clean:")[0] + block.text + "  report:" + tutorial.split("  report:")[1]
    folder = _write(tmp_path / "p", pipeline, tasks=(TUTORIAL / "tasks.py").read_text())
    shutil.copy(TUTORIAL / "report.py", folder / "report.py")
    (folder / "config").mkdir()
    (folder / "config/units.csv").write_text("unit\nC\n")
    assert _run(folder).returncode == 0
    (folder / "tasks.py").write_text((folder / "tasks.py").read_text() + "# a comment changes nothing\n")
    assert "ran" not in _run(folder).stdout
    (folder / "config/units.csv").write_text("unit\nF\n")
    done = _run(folder)
    assert done.returncode == 0 and "ran      clean" in done.stdout and "ran      fetch" not in done.stdout, done.stdout


FRAGMENT_TESTS = {
    "  clean:": test_fragment_staleness,
    "  export: {run: tasks:export, target: out/export.csv, serializer: {name: csv, options: {sep: \";\"}}}":
        test_fragment_csv_options,
    "  words:": test_fragment_shell_task,
    "  report:": test_fragment_output_caching,
    "  per_city:": test_fragment_mapping,
    "cache: redis://:${REDIS_PASSWORD}@cache.internal:6379/0   # rediss:// for TLS":
        test_fragment_redis_cache_unreachable_is_exit_3_with_the_password_masked,
    "results:": test_fragment_s3_results,
}


def test_every_block_is_tested():
    assert INSTALL.lang == "sh"
    tutorial = [next(b for b in BLOCKS if b.lang == lang) for lang in TUTORIAL_FILES]
    fragments = [b for b in BLOCKS if b.lang == "yaml" and b not in tutorial]
    assert sorted(b.first for b in fragments) == sorted(FRAGMENT_TESTS), "a README yaml block has no test here"
    others = [b for b in BLOCKS if b is not INSTALL and b not in tutorial and b not in fragments]
    assert all(b.lang == "sh" for b in others), [(b.lang, b.line) for b in others if b.lang != "sh"]
    assert len(SHELL_BLOCKS) == len(others) >= 4


def test_readme_names_no_file_users_do_not_have():
    text = README.read_text(encoding="utf-8")
    for name in re.findall(r"`([\w./-]+\.(?:md|py|txt|yaml))`", text):
        if "<" in name or name.startswith(("raw/", "clean/", "reports/", "sq/", "out/", ".targetrun/")) or "/" not in name and (
                name in ("tasks.py", "report.py", "Pipelinefile.yaml")):
            continue
        places = (ROOT, ROOT / "examples", TUTORIAL, ROOT / "targetrun")
        assert any((place / name).exists() for place in places), f"the README names {name}, which does not exist"
    assert "DESIGN.md" not in text and "ANCHORS.md" not in text
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "the targetrun authors" in (ROOT / "LICENSE").read_text()
