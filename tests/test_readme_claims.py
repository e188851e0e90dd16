"""What the README and ``--help`` promise a newcomer, checked as a newcomer meets it: the
real command in a subprocess, on a base install.

A base install (``pip install -e .``) lacks the extras' libraries; the suite's venv has
them all, so :func:`_base_cli` hides the ones named from the import system (as if never
installed: ``find_spec`` finds nothing, ``import`` fails) and then runs targetrun's
console entry point unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from targetrun import errors
from tests.clirun import in_process

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXTRA_LIBRARIES = ("s3fs", "gcsfs", "redis", "dask", "distributed", "pandas", "pyarrow", "polars", "numpy", "zstandard")

_LAUNCH = """
import sys
for name in sys.argv.pop(1).split(","):
    if name:
        sys.modules[name] = None  # not installed, as on a base install
from targetrun._entry import main
sys.argv[0] = "targetrun"
main()
"""


def _base_cli(folder: Path, *args: str, hide: tuple[str, ...] = EXTRA_LIBRARIES) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _LAUNCH, ",".join(hide), *args], cwd=folder, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "80"})


def _one_paragraph_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.startswith("targetrun: error: ") and done.stderr.count("\n") == 1, done.stderr
    return done.stderr


def _pipeline(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pipelinefile.yaml").write_text(text)
    (folder / "tasks.py").write_text("def hello():\n    return {'hello': 1}\n")
    return folder


LOCAL = "tasks:\n  hello: {run: tasks:hello, target: out/hello.json}\n"


# -- "without it, targetrun says so and exits 2": every extra, every command that meets it --


@pytest.mark.parametrize("pipeline, extra", [
    ("results:\n  lake: {url: s3://my-bucket/weather}\ndefaults: {result: lake}\n" + LOCAL, "s3"),
    ("tasks:\n  hello: {run: tasks:hello, target: 'gs://my-bucket/hello.json'}\n", "gcs"),
    ("cache: redis://:${REDIS_PASSWORD}@cache.internal:6379/0\n" + LOCAL, "redis"),
])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_location_or_store_without_its_extra_names_the_pip_command(tmp_path, pipeline, extra, command):
    folder = _pipeline(tmp_path / "p", pipeline)
    message = _one_paragraph_error(_base_cli(folder, command), errors.EXIT_USAGE)
    assert f"Install it with: pip install 'targetrun[{extra}]'" in message
    assert "Pipelinefile.yaml, line " in message  # the line that asks for it
    assert not (folder / "out").exists()


@pytest.mark.parametrize("args", [["-j", "2", "--executor", "dask"], ["--executor", "dask"]])
def test_the_dask_executor_without_its_extra_names_the_pip_command(tmp_path, args):
    """It used to be an internal error (exit 4, a traceback from ``import distributed``)."""
    folder = _pipeline(tmp_path / "p", LOCAL)
    message = _one_paragraph_error(_base_cli(folder, "run", *args), errors.EXIT_USAGE)
    assert "the dask executor needs the dask library" in message
    assert "Install it with: pip install 'targetrun[dask]'" in message
    assert not (folder / "out").exists()


def test_a_half_installed_dask_names_the_pip_command_too(tmp_path):
    """dask present, distributed not: refused before the executor starts, not inside it."""
    folder = _pipeline(tmp_path / "p", LOCAL)
    message = _one_paragraph_error(_base_cli(folder, "run", "--executor", "dask", hide=("distributed",)), 2)
    assert "needs the distributed library" in message and "pip install 'targetrun[dask]'" in message


def test_a_format_without_its_extra_names_the_pip_command(tmp_path):
    folder = _pipeline(tmp_path / "p", "tasks:\n  hello: {run: tasks:hello, target: out/hello.json.zst}\n")
    done = _base_cli(folder, "run")
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "Install it with: pip install 'targetrun[zstd]'" in done.stdout


# -- the exit-code table -----------------------------------------------------------------


def test_the_exit_code_table_is_the_one_in_errors_py():
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", README, re.M))
    assert sorted(map(int, table)) == sorted(
        [errors.EXIT_OK, errors.EXIT_TASK_FAILED, errors.EXIT_USAGE, errors.EXIT_BACKEND, errors.EXIT_INTERNAL,
         errors.EXIT_HANGUP, errors.EXIT_INTERRUPTED, errors.EXIT_QUIT, errors.EXIT_OUTPUT_CLOSED,
         errors.EXIT_TERMINATED])
    assert "an extra's library is missing" in table[str(errors.MissingExtraError.exit_code)]
    assert "could not be reached" in table[str(errors.BackendError.exit_code)]


def test_every_command_help_lists_every_exit_code(tmp_path):
    for command in ([], ["run"], ["status"], ["validate"], ["show"], ["cache", "list"]):
        done = in_process(tmp_path, *command, "--help")
        assert done.returncode == 0, done.stderr
        text = " ".join(done.stdout.split())
        for code in ("0 ok", "1 a task failed", "2 ", "3 ", "4 ", "129 ", "130 ", "131 ", "141 ", "143 "):
            assert f" {code}" in text.split("Exit codes:")[1], (command, code, text)


def test_each_kind_of_failure_has_its_own_exit_code(tmp_path):
    folder = _pipeline(tmp_path / "p", "tasks:\n  bad: {shell: 'exit 7', target: out/bad.txt}\n"
                                       "  hello: {run: tasks:hello, target: out/hello.json}\n")
    assert in_process(folder, "run", "hello").returncode == errors.EXIT_OK
    assert in_process(folder, "run", "bad").returncode == errors.EXIT_TASK_FAILED
    assert in_process(folder, "run", "--date", "soon").returncode == errors.EXIT_USAGE
    os.symlink("loop", folder / "loop")  # README: a symlink loop is "cannot tell", never "missing"
    (folder / "Pipelinefile.yaml").write_text("tasks:\n  hello: {run: tasks:hello, target: loop/hello.json}\n")
    message = _one_paragraph_error(in_process(folder, "run"), errors.EXIT_BACKEND)
    assert "cannot tell whether" in message and "never treats this as missing" in message


# -- a newcomer's first mistakes ---------------------------------------------------------


def test_bare_targetrun_prints_its_help_plainly(tmp_path):
    """No command: the help, as click gives it (exit 2) -- not every line of it prefixed
    "targetrun: error:"."""
    done = _base_cli(tmp_path)
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert done.stderr.startswith("Usage: targetrun [OPTIONS] COMMAND"), done.stderr
    assert "targetrun: error" not in done.stderr and "Commands:" in done.stderr


def test_no_pipelinefile_says_where_it_looked(tmp_path):
    message = _one_paragraph_error(in_process(tmp_path, "run"), 2)
    assert f"no Pipelinefile.yaml in {tmp_path} or its parents" in message and "-f PATH" in message


@pytest.mark.parametrize("args, says", [
    (["run", "helo"], "unknown task 'helo'; did you mean 'hello'?"),
    (["run", "--force", "helo"], "did you mean 'hello'?"),
    (["show", "helo"], "did you mean 'hello'?"),
    (["run", "-p", "city"], "-p 'city' is not NAME=VALUE"),
    (["run", "-p", "town=x"], "unknown parameter 'town'. Declared parameters: city"),
    (["run", "--date", "2026-13-01"], "--date '2026-13-01' is not a date. Write it as YYYY-MM-DD"),
    (["run", "--date", "2026-11-05..2026-11-01"], "ends before it starts"),
    (["run", "-j", "0"], "0 is not in the range 1<=x<=1024"),
    (["run", "--executor", "dsak"], "'dsak' is not one of"),
])
def test_first_mistakes_are_one_paragraph_exit_2(tmp_path, args, says):
    folder = _pipeline(tmp_path / "p", "params: {city: berlin}\n" + LOCAL)
    message = _one_paragraph_error(in_process(folder, *args), errors.EXIT_USAGE)
    assert says in message
    assert not (folder / "out").exists()


# -- README promises in prose ------------------------------------------------------------


def test_running_again_runs_nothing_and_the_final_task_is_skipped(tmp_path):
    """README, under the first commands: run `targetrun run` again and nothing runs."""
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "Pipelinefile.yaml").write_text((ROOT / "Pipelinefile.yaml").read_text())
    os.symlink(ROOT / "pipeline_tasks", folder / "pipeline_tasks")
    first, again = _base_cli(folder, "run"), _base_cli(folder, "run")
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert "6 ran" in first.stdout
    assert "ran " not in again.stdout and "skipped  report       target exists" in again.stdout, again.stdout


def test_j_without_an_executor_runs_on_threads_as_help_says(tmp_path):
    """README: `targetrun run -j 4  # 4 tasks at once (a thread pool)`; --help says the
    default executor is inline, threads with -j above 1."""
    help_text = " ".join(in_process(tmp_path, "run", "--help").stdout.split())
    assert "inline (one task at a time), threads when -j is above 1" in help_text
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "tasks.py").write_text("import threading\n\ndef where(i):\n    return threading.current_thread().name\n")
    (folder / "Pipelinefile.yaml").write_text(
        "tasks:\n" + "".join(f"  t{i}: {{run: tasks:where, args: {{i: {i}}}, target: 'out/{i}.json'}}\n" for i in range(2)))
    assert in_process(folder, "run", "-j", "2").returncode == 0
    names = {(folder / f"out/{i}.json").read_text() for i in range(2)}
    assert all("MainThread" not in name for name in names), names


def test_trust_help_names_its_environment_variable(tmp_path):
    for command in ("run", "status", "show"):
        assert "TARGETRUN_TRUST=1" in " ".join(in_process(tmp_path, command, "--help").stdout.split()), command


def test_the_pandas_example_on_a_base_install_names_the_extra(tmp_path):
    """examples/README: sales-parquet needs `pip install 'targetrun[pandas]'`; a base
    install is told exactly that when the task module imports pandas."""
    import shutil

    folder = tmp_path / "sales-parquet"
    shutil.copytree(ROOT / "examples" / "sales-parquet", folder)
    message = _one_paragraph_error(_base_cli(folder, "run"), errors.EXIT_USAGE)
    assert "it imports 'pandas', which is not installed. Install it with: pip install 'targetrun[pandas]'" in message


# -- --help's defaults and environment variables -------------------------------------------


def test_the_pipelinefile_is_found_in_a_parent_folder_as_help_says(tmp_path):
    """... and from there, as the README says, targets are relative to the Pipelinefile's
    folder and shell commands run in it."""
    folder = _pipeline(tmp_path / "p", LOCAL + "  where: {shell: 'pwd > {output}', target: out/where.txt}\n")
    (folder / "sub" / "deeper").mkdir(parents=True)
    done = in_process(folder / "sub" / "deeper", "run")
    assert done.returncode == 0, done.stderr
    assert (folder / "out" / "hello.json").exists()
    assert (folder / "out" / "where.txt").read_text().strip() == str(folder)


def test_the_scheduler_comes_from_the_environment_as_help_says(tmp_path, monkeypatch):
    """--help: --scheduler "also TARGETRUN_SCHEDULER": a run then goes to that cluster, and
    local targets are refused before anything runs, the hint naming where it came from."""
    folder = _pipeline(tmp_path / "p", LOCAL)
    monkeypatch.setenv("TARGETRUN_SCHEDULER", "tcp://127.0.0.1:1")
    message = _one_paragraph_error(in_process(folder, "run"), errors.EXIT_USAGE)
    assert "remote Dask scheduler cannot reach" in message and "TARGETRUN_SCHEDULER" in message
    assert not (folder / "out").exists()


def test_the_first_run_of_the_example_imports_no_extra(tmp_path):
    """README: the first command runs the example with only the base dependencies. Even
    where every extra is installed (this venv), a cold run of it imports none of them."""
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "Pipelinefile.yaml").write_text((ROOT / "Pipelinefile.yaml").read_text())
    os.symlink(ROOT / "pipeline_tasks", folder / "pipeline_tasks")
    probe = (
        "import io, sys\nfrom targetrun.cli import invoke\n"
        "assert invoke(['run'], io.StringIO(), sys.stderr) == 0\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert (folder / "reports").is_dir()
    assert loaded & {*EXTRA_LIBRARIES, "botocore", "aiobotocore", "google"} == set()


# -- examples/README.md's commands ---------------------------------------------------------


def _example_blocks() -> list[tuple[str, list[str]]]:
    """Each indented block: ``cd FOLDER`` then commands, each with its ``# comment`` if any."""
    text = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    blocks = []
    for block in re.findall(r"\n\n((?:    .+\n)+)", text):
        lines = [line[4:].strip() for line in block.splitlines()]
        assert lines[0].startswith("cd "), lines
        blocks.append((lines[0][3:], lines[1:]))
    return blocks


@pytest.mark.parametrize("folder, commands", _example_blocks(), ids=lambda value: value if isinstance(value, str) else "")
def test_examples_readme_commands_run_as_shown(tmp_path, monkeypatch, folder, commands):
    import glob
    import shlex
    import shutil

    if folder == "sales-parquet":
        pytest.importorskip("pandas")
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    copy = tmp_path / folder
    shutil.copytree(ROOT / "examples" / folder, copy)
    for line in commands:
        command, _, comment = (part.strip() for part in line.partition("  #"))
        for step in command.split(" && "):
            program, *args = shlex.split(step)
            if program == "cat":  # what the README tells the reader to look at exists and says something
                files = [path for arg in args for path in glob.glob(str(copy / arg))]
                assert files and all(Path(path).read_text().strip() for path in files), step
                continue
            assert program == "targetrun", step
            done = in_process(copy, *args)
            assert done.returncode == 0, f"examples/README.md, {folder}: `{step}` exited {done.returncode}:\n" \
                                         f"{done.stdout}{done.stderr}"
        said = re.fullmatch(r"(\w+): target exists", comment)
        if said:  # the comment says what the reader sees
            assert re.search(rf"^skipped +{said[1]} +target exists$", done.stdout, re.M), done.stdout


def test_help_and_readme_name_every_environment_variable(tmp_path):
    """settings.py is the one list of TARGETRUN_* variables; `targetrun --help` and the
    README name each (TARGETRUN_SCHEDULER_TIMEOUT was in neither)."""
    from targetrun import settings

    names = {value for key, value in vars(settings).items() if key.isupper() and str(value).startswith("TARGETRUN_")}
    assert len(names) >= 6
    help_text = in_process(tmp_path, "--help").stdout
    for name in names:
        assert name in help_text and name in README, name


def test_every_option_of_every_command_says_what_it_does():
    """--help is where a newcomer looks: no option is listed without a sentence."""
    import click

    from targetrun.cli import cli

    def commands(group: click.Group, path: str):
        for name, command in group.commands.items():
            yield f"{path} {name}", command
            if isinstance(command, click.Group):
                yield from commands(command, f"{path} {name}")

    bare = [f"{path} {param.opts[0]}" for path, command in commands(cli, "targetrun") for param in command.params
            if isinstance(param, click.Option) and not (param.help or "").strip()]
    assert bare == []


def test_validate_status_and_graph_of_table_targets_import_no_data_library(tmp_path):
    """README §6: no format library "is imported by --help, validate or a run that writes
    none of these formats" -- nor by status or graph, which only plan."""
    (tmp_path / "Pipelinefile.yaml").write_text("tasks:\n  a: {run: 'm:f', target: a.parquet}\n"
                                                "  b: {run: 'm:f', target: b.csv.zst}\n  c: {run: 'm:f', target: c.npy}\n")
    (tmp_path / "m.py").write_text("def f():\n    return 1\n")
    probe = (
        "import io, sys\nfrom targetrun.cli import invoke\n"
        "for argv in (['validate'], ['status'], ['graph', '--format', 'svg'], ['run', '--dry-run']):\n"
        "    assert invoke(argv, io.StringIO(), sys.stderr) == 0, argv\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) & set(EXTRA_LIBRARIES) == set()


@pytest.mark.parametrize("command, says", [(["history"], "no runs recorded yet"), (["cache", "list"], "no cache entries")])
def test_an_empty_store_says_so(tmp_path, command, says):
    """A newcomer's first `history` or `cache list` gets a sentence, not a bare header."""
    folder = _pipeline(tmp_path / "p", LOCAL)
    done = in_process(folder, *command)
    assert done.returncode == 0 and says in done.stdout, done.stdout + done.stderr
    assert in_process(folder, "run").returncode == 0
    assert says not in in_process(folder, "history").stdout
