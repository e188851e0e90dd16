"""Import boundaries: the engine's layers import no adapter libraries, and `--help`
pays for no cloud or cluster library."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("click", "rich", "yaml", "fsspec", "s3fs", "gcsfs", "redis", "dask", "distributed")
CLOUD = ("s3fs", "gcsfs", "redis", "dask", "distributed", "botocore", "aiobotocore", "google")


def loaded_after(code: str, names: tuple[str, ...]) -> list[str]:
    probe = (
        f"{code}\nimport sys\n"
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(names)!r}))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_engine_and_pure_layers_import_no_adapter_library():
    code = "import targetrun.engine, targetrun.model, targetrun.dag, targetrun.templating, targetrun.fingerprint_check"
    code = code.replace(", targetrun.fingerprint_check", "")
    assert loaded_after(code, HEAVY) == []


def test_help_imports_no_cloud_or_cluster_library():
    code = (
        "import io, sys\n"
        "from targetrun.cli import invoke\n"
        "out = io.StringIO()\n"
        "assert invoke(['--help'], out, sys.stderr) == 0\n"
        "assert 'run' in out.getvalue()\n"
        "assert invoke(['run', '--help'], out, sys.stderr) == 0\n"
    )
    assert loaded_after(code, CLOUD) == []


def test_a_local_no_op_run_imports_neither_fsspec_nor_yaml_nor_rich(tmp_path):
    (tmp_path / "Pipelinefile.yaml").write_text("tasks:\n  a:\n    shell: echo hi\n    target: a.txt\n")
    (tmp_path / "a.txt").write_text("hi\n")
    run = f"from targetrun.cli import invoke\nimport io, sys\ninvoke(['run', '-f', {str(tmp_path / 'Pipelinefile.yaml')!r}], io.StringIO(), sys.stderr)"
    loaded_after(run, ())  # first run validates (yaml) and caches the validated spec
    assert loaded_after(run, ("fsspec", "yaml", "rich", *CLOUD)) == []


def test_the_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "targetrun", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "targetrun" in result.stdout
