"""Staleness scenarios from the tenth sweep (DESIGN.md "Staleness"), with real files and
the CLI in-process: the faster walks of the code model take the same fingerprints, and
names set where the task's module does not show it (an alias of ``globals``, the
``builtins`` module, ``sys.modules["m"]``) count.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import pytest

from targetrun import staleness


def _sources() -> list[str]:
    """A few large modules of every shape: targetrun's own staleness model, the standard
    library's dataclasses (f-strings, nested functions, decorators) and ast (a match, walrus)."""
    return [Path(staleness.__file__).read_text(), Path(dataclasses.__file__).read_text(), Path(ast.__file__).read_text()]


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="ast.dump's own text is 3.11's")
def test_the_walks_the_code_model_takes_give_what_ast_gives():
    """The code model walks each project module several times: its own child iteration and
    dump (several times faster than ``ast``'s) must give exactly what ``ast`` gives, or the
    fingerprints of unchanged code would change without the model's number (the pin in
    test_stale_sweep9 holds for one module; this holds it for every node of three large ones)."""
    for source in _sources():
        tree = ast.parse(source)
        for node in ast.walk(tree):
            children = [c for c in ast.iter_child_nodes(node) if not isinstance(c, ast.expr_context)]
            assert staleness._children(node) == children, ast.dump(node)[:200]
        for node in tree.body:
            assert staleness._dump(node) == ast.dump(node)


def test_a_module_skipped_by_its_words_is_never_one_the_walk_finds_dynamic():
    """A module whose text names none of the words the dynamic check looks for is not
    walked for them: each statement of two large modules, and each way of setting names
    unseen, as a module of its own -- every one the walk finds dynamic names one of the
    words, and a name spelled in other Unicode characters (Python reads ``ｇｌｏｂａｌｓ``
    as ``globals``) is always walked."""
    sources = [ast.unparse(node) for source in _sources()[1:] for node in ast.parse(source).body]
    sources += ["g = globals()\n", "exec('X = 1')\n", "import sys\nsys.modules[__name__].X = 1\n",
                "ｇｌｏｂａｌｓ()['X'] = 1\n", "ｅｘｅｃ('X = 1')\n"]
    skipped = dynamic = 0
    for source in sources:
        if staleness._dynamic(ast.parse(source)):
            dynamic += 1
            assert staleness._may_be_dynamic(source.encode()), source
        skipped += not staleness._may_be_dynamic(source.encode())
    assert dynamic >= 5 and skipped > 50, (dynamic, skipped)
