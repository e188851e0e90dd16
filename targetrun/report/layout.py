"""A layered left-to-right layout of a DAG, for ``targetrun report`` and ``graph --format svg``.

The classic Sugiyama steps, small enough to own (no layout library on the package index
is pure Python, maintained and light; Graphviz would be a system dependency):

1. **layers** -- each task one column right of the furthest thing it needs (longest path);
2. **dummies** -- an edge spanning several columns gets a waypoint in each column it
   crosses, so it is routed between nodes and takes part in the ordering;
3. **order** -- within each column, nodes are reordered by the barycenter (mean position)
   of their neighbours, sweeping right then left; the order with the fewest crossings wins;
4. **coordinates** -- each node is pulled toward its neighbours' mean height, keeping the
   order and a minimum gap, so chains come out straight.

Pure: plain data in, plain data out, no I/O.

>>> box = layout({"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")})
>>> [box.nodes[n].layer for n in "abcd"]
[0, 1, 1, 2]
>>> box.nodes["a"].x < box.nodes["b"].x < box.nodes["d"].x
True
>>> box.crossings
0
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

NODE_HEIGHT = 30.0
ROW_GAP = 12.0  # vertical gap between two nodes of a column
COLUMN_GAP = 56.0  # horizontal gap between columns, where the edges run
MARGIN = 12.0
SWEEPS = 8  # barycenter passes (each: one rightward and one leftward sweep)
MAX_DUMMIES = 20_000  # beyond this, long edges are drawn straight (huge fan-ins)
MIN_WIDTH, MAX_WIDTH, CHAR_WIDTH = 90.0, 230.0, 7.0


@dataclass(frozen=True, slots=True)
class Box:
    """Where one task sits: its column, its rank in the column, and its top-left corner."""

    name: str
    layer: int
    rank: int
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Route:
    """One edge, from ``source`` (upstream) to ``target``, as points left to right."""

    source: str
    target: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Layout:
    nodes: dict[str, Box]
    edges: tuple[Route, ...]
    node_width: float
    node_height: float
    width: float
    height: float
    crossings: int = 0


@dataclass
class _Column:
    items: list[str] = field(default_factory=list)  # task names and dummy ids ("\0edge#i")


def node_width(labels: Sequence[str]) -> float:
    """A width that fits the longest label, within bounds (longer labels are cut with …).

    >>> node_width(["a"]), node_width(["x" * 100])
    (90.0, 230.0)
    """
    longest = max((len(label) for label in labels), default=0)
    return max(MIN_WIDTH, min(MAX_WIDTH, longest * CHAR_WIDTH + 34.0))


def layers(graph: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Longest-path layering: a node sits one column right of its furthest upstream.

    >>> layers({"a": (), "b": ("a",), "c": ("a", "b")})
    {'a': 0, 'b': 1, 'c': 2}
    """
    found: dict[str, int] = {}
    for name in _toposort(graph):
        found[name] = 1 + max((found[up] for up in graph[name] if up in found), default=-1)
    return found


def _toposort(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """Upstream first; keeps the given order among independent nodes (iterative DFS)."""
    done: set[str] = set()
    order: list[str] = []
    for root in graph:
        stack = [(root, iter(graph.get(root, ())))]
        if root in done:
            continue
        done.add(root)
        while stack:
            name, ups = stack[-1]
            for up in ups:
                if up in graph and up not in done:
                    done.add(up)
                    stack.append((up, iter(graph[up])))
                    break
            else:
                stack.pop()
                order.append(name)
    return order


def layout(graph: Mapping[str, Sequence[str]], labels: Mapping[str, str] | None = None) -> Layout:
    """Lay out ``graph`` (task -> the tasks it needs) from left (sources) to right (sinks)."""
    level = layers(graph)
    edges = [(up, name) for name in graph for up in dict.fromkeys(graph[name]) if up in graph]
    columns, chains = _columns(level, edges)
    up_of, down_of = _neighbours(columns, chains)
    crossings = _order(columns, up_of, down_of)
    width = node_width(list((labels or {}).get(n, n) for n in graph))
    ys = _heights(columns, up_of, down_of)
    nodes = {}
    for index, column in enumerate(columns):
        for rank, item in enumerate(column.items):
            if not item.startswith("\0"):
                nodes[item] = Box(item, index, rank, MARGIN + index * (width + COLUMN_GAP), ys[item])
    routes = []
    for (up, down), chain in chains.items():
        start = nodes[up]
        points = [(start.x + width, start.y + NODE_HEIGHT / 2)]
        for dummy in chain:
            layer_x = MARGIN + int(dummy.rsplit("#", 1)[1]) * (width + COLUMN_GAP)
            points.extend([(layer_x, ys[dummy] + NODE_HEIGHT / 2), (layer_x + width, ys[dummy] + NODE_HEIGHT / 2)])
        end = nodes[down]
        points.append((end.x, end.y + NODE_HEIGHT / 2))
        routes.append(Route(up, down, tuple(points)))
    total_w = MARGIN * 2 + max(len(columns), 1) * (width + COLUMN_GAP) - COLUMN_GAP
    total_h = MARGIN + max((y for y in ys.values()), default=0.0) + NODE_HEIGHT + MARGIN
    return Layout(nodes, tuple(routes), width, NODE_HEIGHT, total_w, total_h, crossings)


def _columns(level: dict[str, int], edges: list[tuple[str, str]]) -> tuple[list[_Column], dict[tuple[str, str], list[str]]]:
    """Nodes by column, plus one dummy per column a long edge crosses (unless there would
    be too many: then long edges go straight, across whatever lies between)."""
    columns = [_Column() for _ in range(max(level.values(), default=-1) + 1)]
    for name, index in level.items():
        columns[index].items.append(name)
    dummies = sum(max(0, level[down] - level[up] - 1) for up, down in edges)
    chains: dict[tuple[str, str], list[str]] = {}
    for number, (up, down) in enumerate(edges):
        chain = []
        if dummies <= MAX_DUMMIES:
            for index in range(level[up] + 1, level[down]):
                dummy = f"\0{number}#{index}"
                columns[index].items.append(dummy)
                chain.append(dummy)
        chains[(up, down)] = chain
    return columns, chains


def _neighbours(columns: list[_Column], chains: dict[tuple[str, str], list[str]]
                ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each item's neighbours one column left (``up_of``) and right (``down_of``); an edge
    that skips columns without dummies counts for the columns it joins only."""
    up_of: dict[str, list[str]] = {item: [] for column in columns for item in column.items}
    down_of: dict[str, list[str]] = {item: [] for item in up_of}
    for (up, down), chain in chains.items():
        path = [up, *chain, down]
        for left, right in zip(path, path[1:]):
            up_of[right].append(left)
            down_of[left].append(right)
    return up_of, down_of


def _order(columns: list[_Column], up_of: dict[str, list[str]], down_of: dict[str, list[str]]) -> int:
    """Barycenter sweeps; keep the best order seen. Returns its crossing count."""
    best = [list(c.items) for c in columns]
    best_count = _crossings(columns, down_of)
    for sweep in range(SWEEPS):
        rightward = sweep % 2 == 0
        indices = range(1, len(columns)) if rightward else range(len(columns) - 2, -1, -1)
        for index in indices:
            fixed = columns[index - 1] if rightward else columns[index + 1]
            position = {item: i for i, item in enumerate(fixed.items)}
            nearby = up_of if rightward else down_of
            _sort_by_barycenter(columns[index], nearby, position)
        count = _crossings(columns, down_of)
        if count < best_count:
            best, best_count = [list(c.items) for c in columns], count
        if best_count == 0:
            break
    for column, items in zip(columns, best):
        column.items = items
    return best_count


def _sort_by_barycenter(column: _Column, nearby: dict[str, list[str]], position: dict[str, int]) -> None:
    current = {item: i for i, item in enumerate(column.items)}

    def key(item: str) -> tuple[float, int]:
        spots = [position[n] for n in nearby[item] if n in position]
        return (sum(spots) / len(spots) if spots else float(current[item]), current[item])

    column.items.sort(key=key)


def _crossings(columns: list[_Column], down_of: dict[str, list[str]]) -> int:
    """Edge crossings between adjacent columns (inversions of the edge endpoints' ranks)."""
    total = 0
    for left, right in zip(columns, columns[1:]):
        rank = {item: i for i, item in enumerate(right.items)}
        ends = [rank[n] for item in left.items for n in sorted(down_of[item], key=lambda n: rank.get(n, -1))
                if n in rank]
        total += _inversions(ends)
    return total


def _inversions(values: list[int]) -> int:
    """Pairs i < j with values[i] > values[j]: crossings of a two-layer drawing.

    >>> _inversions([0, 2, 1, 3, 0])
    4
    """
    seen: list[int] = []
    count = 0
    for value in values:
        position = bisect_left(seen, value + 1)
        count += len(seen) - position
        seen.insert(position, value)
    return count


def _heights(columns: list[_Column], up_of: dict[str, list[str]], down_of: dict[str, list[str]]) -> dict[str, float]:
    """Top edge of each item: stacked in order, then pulled toward the neighbours' mean
    height in a few passes, never closer than a row to the item above or below."""
    step = NODE_HEIGHT + ROW_GAP
    tallest = max((len(c.items) for c in columns), default=0)
    ys: dict[str, float] = {}
    for column in columns:
        offset = (tallest - len(column.items)) * step / 2
        for rank, item in enumerate(column.items):
            ys[item] = MARGIN + offset + rank * step
    for sweep in range(4):
        nearby = up_of if sweep % 2 == 0 else down_of
        ordered = columns if sweep % 2 == 0 else list(reversed(columns))
        for column in ordered:
            wanted = []
            for item in column.items:
                spots = [ys[n] for n in nearby[item]]
                wanted.append(sum(spots) / len(spots) if spots else ys[item])
            for item, y in zip(column.items, _spread(wanted, step)):
                ys[item] = y
    low = min(ys.values(), default=MARGIN)
    return {item: y - low + MARGIN for item, y in ys.items()}


def _spread(wanted: list[float], step: float) -> list[float]:
    """Positions as close as possible to ``wanted`` (in order), at least ``step`` apart:
    push each down below the one above, then move each run of touching items back up
    toward its wanted mean.

    >>> _spread([0.0, 0.0, 100.0], 10.0)
    [-5.0, 5.0, 100.0]
    """
    placed: list[float] = []
    for y in wanted:
        placed.append(max(y, placed[-1] + step) if placed else y)
    # Balance each run of touching items around its wanted mean.
    out = list(placed)
    start = 0
    while start < len(out):
        end = start
        while end + 1 < len(out) and out[end + 1] - out[end] <= step + 1e-9:
            end += 1
        shift = sum(wanted[start:end + 1]) / (end - start + 1) - sum(out[start:end + 1]) / (end - start + 1)
        low_bound = out[start - 1] + step - out[start] if start > 0 else float("-inf")
        high_bound = out[end + 1] - step - out[end] if end + 1 < len(out) else float("inf")
        shift = max(low_bound, min(high_bound, shift))
        for i in range(start, end + 1):
            out[i] += shift
        start = end + 1
    return out
