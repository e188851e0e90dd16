"""A spec read back from the spec cache (targetrun/pipelinefile/cachefile.py) holds one
string for a value many tasks share (a templated shell command, a serializer): at 100,000
tasks each copy was ~12 MB of the no-op's peak (issue 13: under 300 MB)."""

from __future__ import annotations

from pathlib import Path

from targetrun import api
from targetrun.pipelinefile import cachefile


def test_a_value_tasks_share_is_one_string(tmp_path: Path) -> None:
    tasks = "".join(f"  t{i}:\n    shell: \"echo 0 > {{output}}\"\n    target: out/t{i}.txt\n" for i in range(50))
    (tmp_path / "Pipelinefile.yaml").write_text(f"name: p\ndefaults: {{serializer: text}}\ntasks:\n{tasks}")
    spec = api.load(str(tmp_path / "Pipelinefile.yaml"), use_cache=False)
    back = cachefile.loads(cachefile.dumps(spec))
    assert back == spec
    loaded = list(back.tasks.values())
    assert len({id(task.shell) for task in loaded}) == 1
    assert len({id(task.default_serializer) for task in loaded}) == 1
    assert len({task.target for task in loaded}) == 50
