"""TargetOwners (targetrun/resolve.py) lives as long as the plan: at 100,000 tasks every
byte it keeps per target is 100 KB of the no-op's peak (issue 13: under 300 MB). A
target whose case-folded spelling is itself (the usual lower-case path) is kept once, not
again as its folded copy with a (task, url) pair; the checks are those of
test_broken_corpus (77-targets-differ-only-by-case) and below."""

from __future__ import annotations

import tracemalloc

import pytest

from targetrun.errors import SpecError
from targetrun.model import Location, PipelineSpec
from targetrun.resolve import LOCAL, TargetOwners


def _owners() -> TargetOwners:
    return TargetOwners(PipelineSpec(name="p", tasks={}, path="Pipelinefile.yaml", root="."))


def test_lower_case_targets_are_kept_once() -> None:
    claims = [(f"t{i}", Location(LOCAL, f"/project/out/some-folder/t{i}.txt")) for i in range(20_000)]
    tracemalloc.start()
    try:
        owners = _owners()
        for task, target in claims:
            owners.claim(task, target, None)
        kept, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # two dict entries a target (~100 B with a dict's slack); with a folded copy and a (task, url) pair: ~180 B
    assert kept / len(claims) < 130, f"{kept / len(claims):.0f} bytes kept per target"


@pytest.mark.parametrize("first, second", [("out/Report.json", "out/report.json"),
                                           ("out/report.json", "out/Report.json"),
                                           ("out/caf\u00e9.txt", "out/cafe\u0301.txt")])
def test_targets_one_file_on_a_folding_disk_are_refused(first: str, second: str) -> None:
    owners = _owners()
    owners.claim("a", Location(LOCAL, first), None)
    owners.claim("a", Location(LOCAL, first), None)  # the same task again: not a duplicate
    with pytest.raises(SpecError, match="one file on a case-insensitive"):
        owners.claim("b", Location(LOCAL, second), None)


def test_the_same_target_twice_is_refused() -> None:
    owners = _owners()
    owners.claim("a", Location(LOCAL, "out/x.txt"), None)
    with pytest.raises(SpecError, match="both write the target"):
        owners.claim("b", Location(LOCAL, "out/x.txt"), None)
