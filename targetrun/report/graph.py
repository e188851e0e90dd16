"""``targetrun graph``: the needs graph as a text tree, Graphviz dot, Mermaid or SVG."""

from __future__ import annotations

import json
from collections.abc import Sequence

from targetrun import dag
from targetrun.errors import check_known_tasks
from targetrun.model import PipelineSpec


def render_graph(spec: PipelineSpec, tasks: Sequence[str], fmt: str) -> str:
    graph = {name: task.upstream for name, task in spec.tasks.items()}
    check_known_tasks(tasks, graph)
    roots = list(tasks) or dag.sinks(graph)
    scope = dag.toposort(graph, dag.ancestors(graph, roots))
    if fmt == "dot":
        return _dot(spec, graph, scope)
    if fmt == "mermaid":
        return _mermaid(graph, scope)
    if fmt == "svg":  # the report's layout (report/layout.py), without states
        from targetrun.report.svg import graph_svg

        return graph_svg({name: tuple(dict.fromkeys(graph[name])) for name in scope}, standalone=True)
    return _tree(spec, graph, roots)


def _tree(spec: PipelineSpec, graph: dict[str, tuple[str, ...]], roots: list[str]) -> str:
    """Each requested task with what it needs below it; a task met again says so."""
    lines: list[str] = []
    shown: set[str] = set()
    stack: list[tuple[str, str, str]] = [(root, "", "") for root in reversed(roots)]  # (task, indent, branch)
    while stack:
        name, indent, branch = stack.pop()
        target = spec.tasks[name].target
        again = name in shown
        label = name + ("  (see above)" if again else f"  -> {target}" if target else "")
        lines.append(indent + branch + label)
        if again:
            continue
        shown.add(name)
        below = indent + ("" if not branch else "    " if branch == "└── " else "│   ")
        children = list(dict.fromkeys(graph[name]))
        for i in reversed(range(len(children))):
            stack.append((children[i], below, "└── " if i == len(children) - 1 else "├── "))
    return "\n".join(lines) + "\n"


def _dot(spec: PipelineSpec, graph: dict[str, tuple[str, ...]], scope: list[str]) -> str:
    lines = [f"digraph {json.dumps(spec.name)} {{", "  rankdir=LR;"]
    for name in scope:
        lines.append(f"  {json.dumps(name)};")
        lines.extend(f"  {json.dumps(up)} -> {json.dumps(name)};" for up in dict.fromkeys(graph[name]))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid(graph: dict[str, tuple[str, ...]], scope: list[str]) -> str:
    ids = {name: f"t{i}" for i, name in enumerate(scope)}
    lines = ["flowchart LR"]
    for name in scope:
        lines.append(f'  {ids[name]}["{name}"]')
        lines.extend(f"  {ids[up]} --> {ids[name]}" for up in dict.fromkeys(graph[name]))
    return "\n".join(lines) + "\n"
