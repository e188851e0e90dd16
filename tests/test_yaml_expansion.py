"""The alias-bomb guard refuses before building, at the very line the builder would have.

``yamlnodes._refuse_expansion`` sizes every node once (aliases share nodes) and walks the
build order to the value that crosses the limit; the builder counts as it builds. For any
document and any limit the two must agree: same refusal, same line; and under the limit
the guard must not refuse at all.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import yaml
from hypothesis import given, settings

from targetrun.errors import SpecError
from targetrun.pipelinefile import yamlnodes


@st.composite
def aliased_documents(draw: st.DrawFn) -> str:
    """A block mapping of anchored lists, each later one repeating earlier anchors."""
    lines = []
    for i in range(draw(st.integers(1, 6))):
        items = [f"'s{i}{j}'" for j in range(draw(st.integers(0, 3)))]
        items += [f"*a{draw(st.integers(0, i - 1))}" for _ in range(draw(st.integers(0, 4)))] if i else []
        items = draw(st.permutations(items))
        flow = draw(st.booleans())
        if flow or not items:
            lines.append(f"k{i}: &a{i} [{', '.join(items)}]")
        else:
            lines.append(f"k{i}: &a{i}")
            lines += [f"  - {item}" for item in items]
    return "\n".join(lines) + "\n"


def builder_verdict(text: str, limit: int) -> tuple[str, int | None]:
    """What building alone (no guard) says: ("ok", None) or ("refused", line)."""
    node = yaml.compose(text, Loader=yamlnodes._Loader)
    doc = yamlnodes.Document("P.yaml", None)
    try:
        yamlnodes._Builder(doc, limit).build(node, (), 0)
    except SpecError as exc:
        assert "expands to more than" in str(exc)
        return "refused", exc.line
    return "ok", None


def guard_verdict(text: str, limit: int) -> tuple[str, int | None]:
    node = yaml.compose(text, Loader=yamlnodes._Loader)
    try:
        yamlnodes._refuse_expansion(node, "P.yaml", limit)
    except SpecError as exc:
        return "refused", exc.line
    return "ok", None


@settings(max_examples=300, deadline=None)
@given(aliased_documents(), st.integers(1, 200))
def test_the_guard_refuses_exactly_where_the_builder_would(text: str, limit: int) -> None:
    assert guard_verdict(text, limit) == builder_verdict(text, limit), text


def test_a_billion_laughs_is_refused_without_building_it(monkeypatch: pytest.MonkeyPatch) -> None:
    levels = ["a: &a ['lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol']"]
    for prev, name in zip("abcdefghi", "bcdefghij"):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    built = []
    real_build = yamlnodes._Builder.build

    def counting_build(self, node, path, depth):  # counts the builder's work, changes nothing
        built.append(1)
        return real_build(self, node, path, depth)

    monkeypatch.setattr(yamlnodes._Builder, "build", counting_build)
    with pytest.raises(SpecError, match="expands to more than 1,000,000 values") as caught:
        yamlnodes.load_document("\n".join(levels) + "\n", "P.yaml")
    assert caught.value.line == 1  # the builder would cross the limit inside a's list
    assert built == []


def test_a_recursive_alias_is_still_refused_for_its_depth() -> None:
    with pytest.raises(SpecError, match="nests deeper than 64 levels"):
        yamlnodes.load_document("a: &a [*a]\n", "P.yaml")
