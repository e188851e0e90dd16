"""The items a mapped task (``foreach``) runs over.

``foreach`` is a YAML list, a template naming a list parameter (``"{params.cities}"``), or
``{needs: TASK}``: the value of an upstream task, known only once that task has run (or
read from its checkpoint when it is skipped). Each item becomes one child task.
"""

from __future__ import annotations

from collections.abc import Mapping

from targetrun import templating

MAX_CHILDREN = 100_000


def static_items(foreach: object, context: Mapping[str, object],
                 budget: templating.RenderBudget | None = None) -> list[object] | None:
    """The items of a list or template ``foreach``; None for ``{needs: TASK}``.

    >>> static_items(["a", "{params.x}"], {"params": templating.Namespace("params", {"x": 1})})
    ['a', 1]
    >>> static_items("{params.xs}", {"params": templating.Namespace("params", {"xs": [1, 2]})})
    [1, 2]
    >>> static_items({"needs": "up"}, {}) is None
    True
    """
    if isinstance(foreach, list):
        return [templating.render_value(item, context, budget) for item in foreach]
    if isinstance(foreach, str):
        return as_items(templating.render_value(foreach, context, budget), f"foreach {foreach!r}")
    return None


def as_items(value: object, source: str) -> list[object]:
    """Check that a value can be mapped over (ValueError says why not).

    >>> as_items((1, 2), "x")
    [1, 2]
    >>> as_items({"a": 1}, "the value of 'up'")
    Traceback (most recent call last):
    ...
    ValueError: the value of 'up' is a dict, not a list to map over
    """
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_CHILDREN:
            raise ValueError(f"{source} has {len(value):,} items, more than the {MAX_CHILDREN:,} a task may map over")
        return list(value)
    raise ValueError(f"{source} is a {type(value).__name__}, not a list to map over")
