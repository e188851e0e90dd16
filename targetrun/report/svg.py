"""The task graph as SVG: the report's graph and ``targetrun graph --format svg``.

Nodes are coloured by state through CSS classes (``st-failed``, ...) defined in a
``<style>`` inside the SVG, so the drawing is the same standalone and inside the report.
Every text is escaped here, in :func:`esc`, the only way a value reaches the markup.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from targetrun.redact import redact, terminal_text
from targetrun.report.layout import Layout, layout

# state -> (label, fill, text colour); in order of precedence when one node stands for
# several tasks (a mapped task's children, or one task in several runs of a backfill).
STATES: dict[str, tuple[str, str, str]] = {
    "failed": ("failed", "#d63c3c", "#ffffff"),
    "upstream failed": ("upstream failed", "#f5b35c", "#3b2600"),
    "cancelled": ("cancelled", "#a391cc", "#1d1233"),
    "would run": ("would run", "#ffe08a", "#3b2f00"),
    "succeeded": ("ran", "#2f9e5b", "#ffffff"),
    "cached": ("cache hit", "#4a8fd6", "#ffffff"),
    "skipped": ("skipped: target exists", "#c4d0dc", "#1c2834"),
    "not needed": ("not needed", "#f1f3f5", "#5b6670"),
    "unknown": ("no record", "#ffffff", "#5b6670"),
}


FIT_WIDTH = 2400  # a graph up to this wide shrinks to the page; a wider one scrolls (its text stays legible)


def esc(value: object) -> str:
    """Text as HTML/SVG text or attribute value: nothing a task printed can become markup,
    and no credential reaches the file (it is written straight to disk, not through the
    command line's redacting streams): the one redaction, before escaping. Control and
    format characters other than line breaks and tabs are written as escapes, as the console
    shows them: a right-to-left override would turn ``gnp.exe`` round on the page.

    >>> esc('<script>alert("x")</script>')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
    >>> esc("dsn: postgres://app:hunter2@db/x")
    'dsn: postgres://***@db/x'
    >>> esc("a\\u202egnp.exe\\tb\\x1b[2J")
    'a\\\\u202egnp.exe\\tb\\\\x1b[2J'
    """
    return html.escape(terminal_text(redact(str(value))), quote=True)


def worst(states: Sequence[str]) -> str:
    """The state a node shows for several tasks: the first in :data:`STATES` order.

    >>> worst(["skipped", "succeeded", "skipped"]), worst([])
    ('succeeded', 'unknown')
    """
    rank = {state: i for i, state in enumerate(STATES)}
    return min(states, key=lambda s: rank.get(s, len(rank)), default="unknown")


def state_css() -> str:
    rules = [".node rect{stroke:#44505c;stroke-width:1}", ".node text{font:12px system-ui,sans-serif;pointer-events:none}",
             ".node .count{font-weight:600}", ".edge{fill:none;stroke:#98a4b0;stroke-width:1.2}",
             ".edge.blocked{stroke:#e0902e;stroke-dasharray:4 3}", ".node.st-failed rect{stroke:#8a1010;stroke-width:3}",
             ".node.st-unknown rect,.node.st-not-needed rect{stroke-dasharray:4 3}",
             ".node:hover rect,.node.sel rect{stroke:#111;stroke-width:3}", ".node a{cursor:pointer}",
             ".st-plain rect{fill:#e8eef5}.st-plain text{fill:#1c2834}"]  # a graph without a run (graph --format svg)
    for state, (_, fill, text) in STATES.items():
        rules.append(f".st-{slug(state)} rect{{fill:{fill}}}.st-{slug(state)} text{{fill:{text}}}")
    return "".join(rules)


def slug(state: str) -> str:
    return state.replace(" ", "-")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a node shows besides its name."""

    state: str = "unknown"
    tooltip: str = ""
    href: str | None = None  # where a click goes (a table row), without JS too
    count: int = 0  # a mapped task: how many children (folded into this node)
    parts: tuple[tuple[str, int], ...] = ()  # a mapped task: (state, children) for the strip under its name


def graph_svg(graph: Mapping[str, Sequence[str]], info: Mapping[str, NodeInfo] | None = None,
              *, standalone: bool = False) -> str:
    """The graph (task -> the tasks it needs) laid out left to right, as one ``<svg>``."""
    info = info or {name: NodeInfo("plain", name) for name in graph}
    labels = {name: _label(name, info.get(name, NodeInfo())) for name in graph}
    box = layout(graph, labels)
    ids = {name: f"n{i}" for i, name in enumerate(graph)}
    namespace = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""  # HTML needs none: no URL in a report
    fit = ' style="max-width:100%;height:auto"' if box.width <= FIT_WIDTH and not standalone else ""
    out = [f'<svg{namespace} class="graph"{fit} width="{box.width:.0f}" height="{box.height:.0f}" '
           f'viewBox="0 0 {box.width:.0f} {box.height:.0f}" role="img" aria-label="task graph">',
           f"<style>{state_css()}</style>"]
    out.extend(_edges(box, info))
    for name in graph:
        out.append(_node(box, name, ids[name], labels[name], info.get(name, NodeInfo())))
    out.append("</svg>")
    svg = "\n".join(out)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + svg + "\n") if standalone else svg


def _label(name: str, node: NodeInfo) -> str:
    return f"{name} ×{node.count}" if node.count else name


def _edges(box: Layout, info: Mapping[str, NodeInfo]) -> list[str]:
    blocked_from = ("failed", "upstream failed")
    out = []
    for route in box.edges:
        points = route.points
        d = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            if y0 == y1:
                d.append(f"L{x1:.1f},{y1:.1f}")
            else:
                mid = (x0 + x1) / 2
                d.append(f"C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
        up, down = info.get(route.source), info.get(route.target)
        blocked = up is not None and down is not None and up.state in blocked_from and down.state == "upstream failed"
        out.append(f'<path class="edge{" blocked" if blocked else ""}" d="{"".join(d)}"/>')
    return out


def _node(box: Layout, name: str, node_id: str, label: str, node: NodeInfo) -> str:
    where = box.nodes[name]
    w, h = box.node_width, box.node_height
    shown = _fit(label, w)
    tooltip = node.tooltip or f"{name}: {STATES.get(node.state, (node.state,))[0]}"
    parts = [f'<g class="node st-{slug(node.state)}" id="{node_id}" data-task="{esc(name)}" '
             f'transform="translate({where.x:.1f},{where.y:.1f})">']
    if node.href:
        parts.append(f'<a href="{esc(node.href)}">')
    parts.append(f"<title>{esc(tooltip)}</title>")
    parts.append(f'<rect width="{w:.0f}" height="{h:.0f}" rx="5"/>')
    parts.append(f'<text x="8" y="{h / 2 + 4:.0f}">{esc(shown)}</text>')
    if node.state == "failed":
        parts.append(f'<text x="{w - 14:.0f}" y="{h / 2 + 4:.0f}" class="count">!</text>')
    x = 0.0
    total = sum(n for _, n in node.parts)
    for state, n in node.parts if total else ():
        width = w * n / total
        fill = STATES.get(state, STATES["unknown"])[1]
        parts.append(f'<rect class="part" x="{x:.1f}" y="{h - 5:.0f}" width="{width:.1f}" height="5" '
                     f'style="fill:{fill};stroke:none"/>')
        x += width
    if node.href:
        parts.append("</a>")
    parts.append("</g>")
    return "".join(parts)


def _fit(label: str, width: float) -> str:
    room = int((width - 20) / 7)
    return label if len(label) <= room else label[: max(1, room - 1)] + "…"
