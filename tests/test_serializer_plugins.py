"""Serializers are plugins like the built-ins: the registry is the one source of names and
suffixes, so a serializer registered only through the ``targetrun.serializers`` entry
point works from a Pipelinefile by name and by the suffix it claims."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = '''
from targetrun.serializers.base import SerializationError, Serializer

class ShoutSerializer(Serializer):
    """A str, stored upper-cased with a marker line; read back lower-cased."""
    name = "shout"
    suffixes = (".shout",)
    executes_code = False
    takes = "a str"

    def accepts(self, value):
        return isinstance(value, str)

    def dump(self, value, f):
        if not isinstance(value, str):
            raise SerializationError("shout takes a str")
        f.write(b"SHOUT\\n" + value.upper().encode())

    def load(self, f):
        marker, _, body = f.read().partition(b"\\n")
        if marker != b"SHOUT":
            raise SerializationError("not a shout file")
        return body.decode().lower()
'''


def install_plugin(site: Path) -> None:
    """A tiny distribution, as pip would leave it: a module and a .dist-info folder whose
    entry_points.txt declares the serializer (importlib.metadata finds it on sys.path)."""
    (site / "shout_plugin.py").write_text(PLUGIN)
    info = site / "shout_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[targetrun.serializers]\nshout = shout_plugin:ShoutSerializer\n")


def run(folder: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.getcwd()])}
    return subprocess.run([sys.executable, "-m", "targetrun", *args, "-f", str(folder / "Pipelinefile.yaml")],
                          capture_output=True, text=True, env=env, timeout=120, cwd=folder)


def test_a_plugin_serializer_from_an_entry_point_works_end_to_end(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site)
    folder = tmp_path / "pipe"
    folder.mkdir()
    (folder / "steps.py").write_text(textwrap.dedent('''
        def greet():
            return "Hello"
        def both(by_suffix, by_name):
            return [by_suffix, by_name]
    '''))
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent('''
        tasks:
          by_suffix: {run: steps:greet, target: out/greeting.shout}
          by_name: {run: steps:greet, target: out/greeting.dat, serializer: shout}
          both: {run: steps:both, needs: [by_suffix, by_name], target: out/both.json}
    '''))
    result = run(folder, site, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "out/greeting.shout").read_bytes() == b"SHOUT\nHELLO"  # its suffix picked the plugin
    assert (folder / "out/greeting.dat").read_bytes() == b"SHOUT\nHELLO"  # named in the Pipelinefile
    assert (folder / "out/both.json").read_text().strip() == '["Hello", "Hello"]'  # passed in memory
    (folder / "out/both.json").unlink()
    result = run(folder, site, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "out/both.json").read_text().strip() == '["hello", "hello"]'  # read back by the plugin
    shown = run(folder, site, "show", "by_suffix")
    assert shown.returncode == 0 and "hello" in shown.stdout, shown.stdout + shown.stderr

    # Without the plugin installed, the name is unknown (exit 2) and the suffix means pickle.
    (site / "shout_plugin-0.1.dist-info" / "entry_points.txt").write_text("")
    result = run(folder, site, "validate")
    assert result.returncode == 2 and "unknown serializer 'shout'" in result.stderr, result.stderr
