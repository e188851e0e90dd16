"""Pure graph functions over ``{task: (upstream, ...)}`` mappings.

No I/O and no recursion (a chain of 10,000 tasks must not hit the recursion limit).
The engine asks: which tasks are sinks, is there a cycle (and where), in what order can
tasks run, and which tasks sit downstream of a forced one.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

Graph = Mapping[str, tuple[str, ...]]


def sinks(graph: Graph) -> list[str]:
    """Tasks nothing needs, in declaration order.

    >>> sinks({"a": (), "b": ("a",), "c": ("a",)})
    ['b', 'c']
    """
    needed = {up for ups in graph.values() for up in ups}
    return [name for name in graph if name not in needed]


def dependents(graph: Graph) -> dict[str, list[str]]:
    """Reverse edges: task -> tasks that need it.

    >>> dependents({"a": (), "b": ("a",), "c": ("a", "b")})
    {'a': ['b', 'c'], 'b': ['c'], 'c': []}
    """
    reverse: dict[str, list[str]] = {name: [] for name in graph}
    for name, ups in graph.items():
        for up in dict.fromkeys(ups):
            reverse[up].append(name)
    return reverse


def find_cycle(graph: Graph) -> list[str] | None:
    """A cycle as a path whose last element repeats the first, or None.

    >>> find_cycle({"a": ("c",), "b": ("a",), "c": ("b",)})
    ['a', 'c', 'b', 'a']
    >>> find_cycle({"a": (), "b": ("a",)}) is None
    True
    >>> find_cycle({"a": ("a",)})
    ['a', 'a']
    """
    done: set[str] = set()
    for root in graph:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(graph[root])]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if child in on_path:
                return path[path.index(child) :] + [child]
            if child in done:
                continue
            path.append(child)
            on_path.add(child)
            stack.append(iter(graph[child]))
    return None


def toposort(graph: Graph, only: Iterable[str] | None = None) -> list[str]:
    """Upstream before downstream, ties in declaration order (Kahn's algorithm).

    >>> toposort({"c": ("a", "b"), "a": (), "b": ("a",)})
    ['a', 'b', 'c']
    >>> toposort({"a": (), "b": ("a",), "x": ()}, only=["b", "a"])
    ['a', 'b']
    """
    scope = set(graph) if only is None else set(only)
    order = [name for name in graph if name in scope]
    position = {name: i for i, name in enumerate(order)}
    if _declared_in_order(graph, order, position):
        return order  # the smallest order by declaration is then the declaration order itself
    waiting = {name: len({up for up in graph[name] if up in scope}) for name in order}
    reverse = dependents({name: tuple(up for up in graph[name] if up in scope) for name in order})
    ready = [position[name] for name in order if waiting[name] == 0]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        name = order[heapq.heappop(ready)]
        result.append(name)
        for down in reverse[name]:
            waiting[down] -= 1
            if waiting[down] == 0:
                heapq.heappush(ready, position[down])
    if len(result) != len(order):
        raise ValueError("graph has a cycle")
    return result


def _declared_in_order(graph: Graph, order: list[str], position: Mapping[str, int]) -> bool:
    """Whether every task in scope is declared after each of its upstream tasks in scope
    (the usual file, and any set of independent tasks): one pass, no heap.

    >>> _declared_in_order({"a": (), "b": ("a",)}, ["a", "b"], {"a": 0, "b": 1})
    True
    >>> _declared_in_order({"b": ("a",), "a": ()}, ["b", "a"], {"b": 0, "a": 1})
    False
    """
    for index, name in enumerate(order):
        for up in graph[name]:
            at = position.get(up)
            if at is not None and at >= index:  # a later task, or itself (a cycle)
                return False
    return True


def ancestors(graph: Graph, roots: Iterable[str]) -> set[str]:
    """``roots`` and everything they need, transitively.

    >>> sorted(ancestors({"a": (), "b": ("a",), "c": ()}, ["b"]))
    ['a', 'b']
    """
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(graph[name])
    return seen


def downstream_within(graph: Graph, sources: Iterable[str], scope: set[str]) -> set[str]:
    """Tasks in ``scope`` that depend, transitively through ``scope``, on a source.

    Used for ``--force``: forcing ``a`` reruns ``a`` and every task from it up to the requested tasks.

    >>> sorted(downstream_within({"a": (), "b": ("a",), "c": ("b",), "d": ("a",)}, ["a"], {"a", "b", "c"}))
    ['b', 'c']
    """
    reverse = dependents(graph)
    found: set[str] = set()
    stack = [s for s in sources if s in scope]
    while stack:
        for down in reverse[stack.pop()]:
            if down in scope and down not in found:
                found.add(down)
                stack.append(down)
    return found
