"""Import boundaries: the engine's layers import no adapter libraries, and `--help`
pays for no cloud or cluster library."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("click", "rich", "yaml", "fsspec", "s3fs", "gcsfs", "redis", "dask", "distributed")
CLOUD = ("s3fs", "gcsfs", "redis", "dask", "distributed", "botocore", "aiobotocore", "google")
DATA = ("pandas", "pyarrow", "polars", "numpy", "zstandard")  # imported by a format when it writes or reads


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
    assert loaded_after(code, CLOUD + DATA) == []


def test_a_local_no_op_run_imports_neither_fsspec_nor_yaml_nor_rich(tmp_path):
    (tmp_path / "Pipelinefile.yaml").write_text("tasks:\n  a:\n    shell: echo hi\n    target: a.txt\n")
    (tmp_path / "a.txt").write_text("hi\n")
    run = f"from targetrun.cli import invoke\nimport io, sys\ninvoke(['run', '-f', {str(tmp_path / 'Pipelinefile.yaml')!r}], io.StringIO(), sys.stderr)"
    loaded_after(run, ())  # first run validates (yaml) and caches the validated spec
    assert loaded_after(run, ("fsspec", "yaml", "rich", *CLOUD, *DATA)) == []


def test_planning_table_targets_imports_no_data_library(tmp_path):
    """Suffix inference reads the serializer classes, not their libraries: validating and
    a no-op run over .parquet/.csv.gz/.npy targets import none of them."""
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        "  a: {run: 'm:f', target: a.parquet}\n"
        "  b: {run: 'm:f', target: b.csv.gz, serializer: {name: csv, options: {sep: ';'}}}\n"
        "  c: {run: 'm:f', target: c.npy}\n"
        "  d: {run: 'm:f', target: d.json}\n")
    (tmp_path / "m.py").write_text("def f(): raise AssertionError('must not run')\n")
    for name in ("a.parquet", "b.csv.gz", "c.npy", "d.json"):
        (tmp_path / name).write_bytes(b"made elsewhere")
    run = f"from targetrun.cli import invoke\nimport io, sys\nassert invoke(['run', '-f', {str(tmp_path / 'Pipelinefile.yaml')!r}], io.StringIO(), sys.stderr) == 0"
    assert loaded_after(run, DATA) == []
    assert loaded_after(run, DATA) == []  # and again from the validated-spec cache


def test_the_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "targetrun", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "targetrun" in result.stdout
