"""``targetrun report``: one self-contained HTML file a person opens to see a run.

Top to bottom: what happened (status, counts, the failures with their error and last
log lines), the history of recent runs, the graph coloured by state, a timeline of the
tasks that ran (one lane per worker, or per date for a backfill; the critical path
outlined) and a table of every task.

Self-contained and safe to open: no URL at all (styles and script inline, system fonts),
the graph and the table are plain SVG and HTML that work without JavaScript (a node is a
link to its table row); the script only sorts, filters and shows details. Every value goes
through :func:`~targetrun.report.svg.esc`, so a task name or an error containing
``<script>`` is shown as text.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from targetrun.durations import format_duration
from targetrun.runview import ReportData, RunView, TaskRow
from targetrun.report.status import size_text
from targetrun.report.svg import STATES, NodeInfo, esc, graph_svg, slug, state_css, worst
from targetrun.store.base import RunStatus

RUN_COLOURS = {
    RunStatus.SUCCEEDED: "#2f9e5b", RunStatus.FAILED: "#d63c3c", RunStatus.BROKEN: "#8a1010",
    RunStatus.INTERRUPTED: "#f5b35c", RunStatus.DIED: "#a391cc", RunStatus.RUNNING: "#4a8fd6",
}
TIMELINE_WIDTH = 1000.0
LANE_LABEL = 190.0
BAR_ROW = 20.0


def render_report(data: ReportData) -> str:
    rows = [row for view in data.runs for row in view.rows]
    ids = _row_ids(data.runs)
    parts = [
        _head(data),
        '<body><div class="page">',
        _summary(data, ids),
        _history(data),
        _section("Graph", _graph(data, ids), "graph", _legend(rows)),
        _section("Timeline", _timeline(data, ids), "timeline",
                 '<span class="hint">bars outlined in black: the critical path (what the run waited for)</span>'),
        _section("Tasks", _table(data, rows, ids), "tasks", ""),
        f'<footer>targetrun report · generated {esc(_when(data.generated))} from the state store and task logs '
        f'of {esc(data.root)}</footer>',
        '<aside id="panel" hidden><button type="button" id="panel-close" aria-label="close">×</button>'
        '<div id="panel-body"></div></aside>',
        f"</div><script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts)


# -- pieces ------------------------------------------------------------------------


def _head(data: ReportData) -> str:
    title = f"{data.pipeline} · " + (_status_of(data.runs).value if data.runs else "no run")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)} · targetrun report</title><style>{CSS}{state_css()}{_pill_css()}</style></head>")


def _status_of(runs: Sequence[RunView]) -> RunStatus:
    order = [RunStatus.BROKEN, RunStatus.FAILED, RunStatus.DIED, RunStatus.INTERRUPTED, RunStatus.RUNNING,
             RunStatus.SUCCEEDED]
    return min((v.run.status for v in runs), key=order.index, default=RunStatus.SUCCEEDED)


def _summary(data: ReportData, ids: dict[tuple[str, str], str]) -> str:
    if not data.runs:
        return f"<header><h1>{esc(data.pipeline)}</h1><p>No run.</p></header>"
    status = _status_of(data.runs)
    first, last = data.runs[0].run, data.runs[-1].run
    ended = max((v.run.finished or v.run.heartbeat or v.run.started) for v in data.runs)
    counts = Counter(row.state for view in data.runs for row in view.rows)
    what = (f"run <code>{esc(last.run_id)}</code>" if len(data.runs) == 1
            else f"{len(data.runs)} runs (a backfill: {esc(data.runs[0].date or first.run_id)} … "
                 f"{esc(data.runs[-1].date or last.run_id)})")
    date = data.runs[0].date if len(data.runs) == 1 and data.runs[0].date else ""
    facts = [what, f"started {esc(_when(first.started))}", f"took {esc(format_duration(max(0.0, ended - first.started)))}"]
    if date:
        facts.append(f"run date {esc(date)}")
    chips = "".join(f'<button type="button" class="chip pill st-{slug(state)}" data-filter="{esc(state)}">'
                    f'<b>{counts[state]}</b> {esc(STATES[state][0])}</button>'
                    for state in STATES if counts.get(state))
    out = [f'<header id="summary"><h1><span class="badge" style="background:{RUN_COLOURS[status]}">{esc(status.value)}</span> '
           f"{esc(data.pipeline)}</h1><p class=\"facts\">{' · '.join(facts)}</p>"
           f'<p class="chips">{chips}</p>']
    if any(not view.summarised for view in data.runs):
        out.append('<p class="note">This run left no outcome summary (it was killed, or an older targetrun ran it): '
                   "only the tasks that ran are known.</p>")
    failures = [row for view in data.runs for row in view.rows if row.state == "failed"]
    if failures:
        out.append(f'<section class="failures"><h2>{len(failures)} failed</h2>')
        for row in failures[:50]:
            when = _run_label(data, row.run_id) if len(data.runs) > 1 else ""
            out.append(f'<div class="failure"><a href="#{ids[(row.run_id, row.task)]}"><b>{esc(row.task)}</b></a>'
                       f"{' · ' + esc(when) if when else ''}"
                       f"{' · attempt ' + str(row.attempts) if row.attempts > 1 else ''}"
                       f'<pre class="error">{esc(row.error or "")}</pre>'
                       + (f'<details open><summary>last lines it printed</summary><pre class="log">{esc(row.log)}</pre>'
                          f"</details>" if row.log else "") + "</div>")
        if len(failures) > 50:
            out.append(f"<p>… and {len(failures) - 50} more (see the table).</p>")
        out.append("</section>")
    out.append("</header>")
    return "".join(out)


def _history(data: ReportData) -> str:
    if not data.history:
        return ""
    shown = {view.run.run_id for view in data.runs}
    longest = max(((r.finished or r.started) - r.started for r in data.history), default=0.0) or 1.0
    cells = []
    for run in reversed(data.history):  # oldest left
        took = (run.finished - run.started) if run.finished else None
        height = 8 + 28 * ((took or 0.0) / longest) ** 0.5
        tip = (f"{run.run_id} · {run.status.value} · started {_when(run.started)}"
               + (f" · took {format_duration(took)}" if took is not None else "") + (f" · {run.counts}" if run.counts else ""))
        bar = (f'<span class="bar" style="height:{height:.0f}px;background:{RUN_COLOURS.get(run.status, "#999")}">'
               f"</span>")
        if run.run_id in shown:
            cells.append(f'<a class="run here" href="#summary" title="{esc(tip + " (this report)")}">{bar}</a>')
        else:
            cells.append(f'<span class="run" title="{esc(tip + " · targetrun report --run " + run.run_id)}">{bar}</span>')
    statuses = Counter(r.status.value for r in data.history)
    words = ", ".join(f"{n} {s}" for s, n in statuses.most_common())
    heading = "The last run" if len(data.history) == 1 else f"The last {len(data.history)} runs"
    return (f'<section class="history"><h2>{heading}</h2><div class="strip">{"".join(cells)}</div>'
            f'<p class="hint">oldest left, newest right; height: duration; outlined: shown here. {esc(words)}</p></section>')


def _section(title: str, body: str, anchor: str, extra: str) -> str:
    return f'<section id="sec-{anchor}"><h2>{esc(title)} {extra}</h2><div class="scroll">{body}</div></section>'


def _legend(rows: list[TaskRow]) -> str:
    present = {row.state for row in rows}
    return "".join(f'<span class="pill st-{slug(s)}">{esc(label)}</span>' for s, (label, _, _) in STATES.items()
                   if s in present) + '<span class="hint">click a task for its details</span>'



# -- graph -------------------------------------------------------------------------


def _graph(data: ReportData, ids: dict[tuple[str, str], str]) -> str:
    by_node: dict[str, list[TaskRow]] = defaultdict(list)
    for view in data.runs:
        for row in view.rows:
            by_node[row.node].append(row)
    info = {}
    for name in data.graph:
        rows = by_node.get(name, [])
        children = [r for r in rows if r.task != name] if name in data.mapped else []
        own = [r for r in rows if r.task == name]
        states = [r.state for r in (children or own)]
        state = worst(states)
        counts = Counter(states)
        tip = [name, ", ".join(f"{n} {STATES.get(s, (s,))[0]}" for s, n in counts.most_common()) or "no record"]
        for r in (own or children)[-1:]:
            if r.reason:
                tip.append(f"reason: {r.reason}")
            if r.target:
                tip.append(f"target: {r.target}")
            if r.size is not None:
                tip.append(f"size {size_text(r.size)}" + (f", written {format_duration(max(0.0, data.generated - r.written))} "
                                                           "ago" if r.written else ""))
            if r.duration is not None:
                tip.append(f"took {format_duration(r.duration)}" + (f" on {r.worker}" if r.worker else ""))
        errors = [r for r in rows if r.error]
        if errors:
            tip.append(f"error: {errors[0].error}")
            if errors[0].log:
                tip.append("last lines printed:\n" + "\n".join(errors[0].log.splitlines()[-8:]))
        candidates = errors or own or children
        focus = candidates[-1] if candidates and not errors else candidates[0] if candidates else None
        href = f"#{ids[(focus.run_id, focus.task)]}" if focus is not None else None
        parts = tuple((s, counts[s]) for s in STATES if counts.get(s)) if children else ()
        mapped_count = len({r.task for r in children})
        info[name] = NodeInfo(state, "\n".join(tip), href, mapped_count, parts)
    return graph_svg(data.graph, info)


# -- timeline ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bar:
    row: TaskRow
    start: float
    end: float
    lane: str


def _timeline(data: ReportData, ids: dict[tuple[str, str], str]) -> str:
    bars = _bars(data)
    if not bars:
        return '<p class="empty">No task ran (everything was skipped, or the run stopped before any task finished).</p>'
    t0 = min(b.start for b in bars)
    span = max(max(b.end for b in bars) - t0, 1e-3)
    scale = TIMELINE_WIDTH / span
    critical = _critical_path(data, bars)
    lanes: dict[str, list[list[_Bar]]] = {}
    for bar in sorted(bars, key=lambda b: (b.start, b.end)):
        rows = lanes.setdefault(bar.lane, [])
        for packed in rows:  # first row where it fits: overlapping bars of one lane stack up
            if packed[-1].end <= bar.start + 1e-6:
                packed.append(bar)
                break
        else:
            rows.append([bar])
    height = 26 + sum(len(rows) * BAR_ROW + 6 for rows in lanes.values())
    width = LANE_LABEL + TIMELINE_WIDTH + 20
    out = [f'<svg class="timeline" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
           'role="img" aria-label="timeline of the tasks that ran">']
    for tick in _ticks(span):
        x = LANE_LABEL + tick * scale
        out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="16" y2="{height:.0f}"/>'
                   f'<text class="axis" x="{x + 2:.1f}" y="12">+{esc(_short(tick))}</text>')
    y = 22.0
    for lane, rows in lanes.items():
        out.append(f'<rect class="lane" x="0" y="{y - 2:.1f}" width="{width:.0f}" height="{len(rows) * BAR_ROW + 4:.0f}"/>'
                   f'<text class="lanelabel" x="6" y="{y + 14:.1f}"><title>{esc(lane)}</title>{esc(_cut(lane, 26))}</text>')
        for packed in rows:
            for bar in packed:
                x = LANE_LABEL + (bar.start - t0) * scale
                w = max(2.0, (bar.end - bar.start) * scale)
                crit = " crit" if bar.row in critical else ""
                tip = (f"{bar.row.task}: {STATES.get(bar.row.state, (bar.row.state,))[0]}, took "
                       f"{format_duration(bar.end - bar.start)}, from +{_short(bar.start - t0)}"
                       + (f" on {bar.row.worker}" if bar.row.worker else ""))
                label = f'<text x="{x + 4:.1f}" y="{y + 13:.1f}">{esc(_cut(bar.row.task, int((w - 6) / 6.5)))}</text>' \
                    if w > 40 else ""
                out.append(f'<a href="#{ids[(bar.row.run_id, bar.row.task)]}"><g class="tbar st-{slug(bar.row.state)}{crit}">'
                           f"<title>{esc(tip)}</title>"
                           f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{BAR_ROW - 4:.0f}" rx="3"/>{label}</g></a>')
            y += BAR_ROW
        y += 6
    out.append("</svg>")
    return "".join(out)


def _bars(data: ReportData) -> list[_Bar]:
    several = len(data.runs) > 1
    workers = {row.worker for view in data.runs for row in view.rows if row.worker}
    hosts = {w.split(":", 1)[0] for w in workers}
    bars = []
    for view in data.runs:
        for row in view.rows:
            if row.started is None or row.duration is None:
                continue
            if several:
                lane = f"{view.date or view.run.run_id}"
            else:
                lane = _worker_label(row.worker, strip_host=len(hosts) == 1)
            bars.append(_Bar(row, row.started, row.started + row.duration, lane))
    return bars


def _worker_label(worker: str, *, strip_host: bool) -> str:
    """ "host:123/targetrun_0" -> "pid 123, thread 0" (the host only when there are several).

    >>> _worker_label("ci-7:4242/targetrun_1", strip_host=True), _worker_label("", strip_host=True)
    ('pid 4242 thread 1', 'worker not recorded')
    """
    if not worker:
        return "worker not recorded"
    host, _, rest = worker.partition(":")
    pid, _, thread = rest.partition("/")
    label = f"pid {pid}" + (f" thread {thread.removeprefix('targetrun_')}" if thread else "")
    return label if strip_host else f"{host} {label}"


def _critical_path(data: ReportData, bars: list[_Bar]) -> set[TaskRow]:
    """From the bar that ended last, back through the upstream each one waited for last."""
    path: set[TaskRow] = set()
    for view in data.runs:
        mine = [b for b in bars if b.row.run_id == view.run.run_id]
        if not mine:
            continue
        bar: _Bar | None = max(mine, key=lambda b: b.end)
        while bar is not None and bar.row not in path:
            path.add(bar.row)
            ups = data.graph.get(bar.row.node, ())
            candidates = [b for b in mine if b.row.node in ups and b.end <= bar.start + 0.05]
            bar = max(candidates, key=lambda b: b.end, default=None)
    return path


def _ticks(span: float) -> list[float]:
    """About eight round tick positions over ``span`` seconds.

    >>> _ticks(10.0)[:4], len(_ticks(3600))
    ([0, 1, 2, 3], 7)
    """
    for step in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900,
                 1800, 3600, 7200, 14400, 43200, 86400):
        if span / step <= 10:
            break
    count = int(span / step + 1e-9)
    return [round(i * step, 6) for i in range(count + 1)]


def _short(seconds: float) -> str:
    """Tick labels: ``0s``, ``0.5s``, ``1m30s``.

    >>> _short(0), _short(0.25), _short(2), _short(90)
    ('0s', '0.25s', '2s', '1m30s')
    """
    if seconds < 60:
        return f"{seconds:g}s"
    return format_duration(seconds)


# -- table -------------------------------------------------------------------------


def _table(data: ReportData, rows: list[TaskRow], ids: dict[tuple[str, str], str]) -> str:
    several = len(data.runs) > 1
    heads = ["task", *(["date"] if several else []), "state", "reason / error", "target", "size", "age", "took",
             "attempts", "worker"]
    out = ['<div class="controls" hidden><input type="search" id="q" placeholder="filter tasks, targets, errors…">'
           '<span class="hint">click a state above to show only those; click a column to sort</span></div>',
           '<table id="tasks"><thead><tr>']
    out.extend(f'<th data-col="{i}" tabindex="0">{esc(h)}</th>' for i, h in enumerate(heads))
    out.append("</tr></thead><tbody>")
    for row in rows:
        label = STATES.get(row.state, (row.state,))[0]
        why = esc(row.reason)
        if row.error:
            first = row.error.splitlines()[0] if row.error.strip() else row.error
            why = (f'<details><summary class="err">{esc(_cut(first, 140))}</summary><pre class="error">{esc(row.error)}</pre>'
                   + (f'<pre class="log">{esc(row.log)}</pre>' if row.log else "") + "</details>")
        cells = [f"<td><b>{esc(row.task)}</b></td>"]
        if several:
            cells.append(f"<td>{esc(_run_label(data, row.run_id))}</td>")
        cells += [
            f'<td><span class="pill st-{slug(row.state)}">{esc(label)}</span></td>',
            f"<td>{why}</td>",
            f'<td class="path">{esc(_relative(row.target, data.root))}</td>',
            _num(row.size, size_text(row.size)),
            _num(data.generated - row.written if row.written else None,
                 format_duration(max(0.0, data.generated - row.written)) if row.written else ""),
            _num(row.duration, format_duration(row.duration) if row.duration is not None else ""),
            _num(row.attempts or None, str(row.attempts) if row.attempts else ""),
            f'<td class="small">{esc(row.worker)}</td>',
        ]
        out.append(f'<tr id="{ids[(row.run_id, row.task)]}" data-state="{esc(row.state)}">{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _num(value: float | int | None, text: str) -> str:
    return f'<td class="num" data-v="{value if value is not None else ""}">{esc(text)}</td>'


def _relative(target: str | None, root: str) -> str:
    if not target:
        return ""
    prefix = root.rstrip("/") + "/"
    return target[len(prefix):] if target.startswith(prefix) else target


def _row_ids(runs: Iterable[RunView]) -> dict[tuple[str, str], str]:
    ids: dict[tuple[str, str], str] = {}
    for r, view in enumerate(runs):
        for i, row in enumerate(view.rows):
            ids[(row.run_id, row.task)] = f"t{r}-{i}"
    return ids


def _run_label(data: ReportData, run_id: str) -> str:
    for view in data.runs:
        if view.run.run_id == run_id:
            return view.date or run_id
    return run_id


def _when(ts: float) -> str:
    try:
        return f"{dt.datetime.fromtimestamp(ts, dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
    except (ValueError, OverflowError, OSError):  # beyond what a date can hold (a clock near year 9999)
        return "after 9999-12-31 23:59:59 UTC" if ts > 0 else "before 1970-01-01 UTC"


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(1, room - 1)] + "…"


def _pill_css() -> str:
    return "".join(f".pill.st-{slug(s)}{{background:{fill};color:{fg}}}" for s, (_, fill, fg) in STATES.items()) + \
        "".join(f".tbar.st-{slug(s)} rect{{fill:{fill}}}.tbar.st-{slug(s)} text{{fill:{fg}}}"
                for s, (_, fill, fg) in STATES.items())


CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1c2834;
background:#f6f8fa}.page{max-width:1400px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:4px 0}h2{font-size:16px;margin:0 0 8px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
header,section{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:12px 16px;margin:0 0 14px}
.badge{color:#fff;border-radius:4px;padding:2px 8px;font-size:15px;text-transform:uppercase;letter-spacing:.03em;
vertical-align:2px}.facts{margin:4px 0;color:#44505c}.chips{margin:6px 0 0}.note{color:#8a5a00}
.pill{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;margin:1px 2px;border:1px solid #0002}
button.chip{font:inherit;font-size:13px;cursor:pointer}button.chip.off{opacity:.35}
.failures{border-color:#d63c3c;background:#fff6f6;margin:10px 0 0}.failures h2{color:#a11}
.failure{margin:6px 0 10px}pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;padding:6px 8px;border-radius:4px;
font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;max-height:320px;overflow:auto}
pre.error{background:#fde8e8;color:#7a0c0c}pre.log{background:#1e2329;color:#e6e6e6}
.strip{display:flex;align-items:flex-end;gap:3px;height:40px}.run{display:inline-flex;align-items:flex-end}
.run .bar{display:inline-block;width:12px;border-radius:2px}.run.here .bar{outline:2px solid #111;outline-offset:1px}
.hint{color:#6a737d;font-size:12px;font-weight:normal}.scroll{overflow:auto;max-height:80vh}
.timeline .tick{stroke:#e3e7eb}.timeline .axis{font:11px system-ui,sans-serif;fill:#6a737d}
.timeline .lane:nth-of-type(odd){fill:#f6f8fa}.timeline .lane{fill:#fff}
.timeline .lanelabel{font:12px system-ui,sans-serif;fill:#44505c}.tbar text{font:11px system-ui,sans-serif}
.tbar rect{stroke:#0003}.tbar.crit rect{stroke:#111;stroke-width:2}
table{border-collapse:collapse;width:100%;font-size:13px}th{position:sticky;top:0;background:#eef1f4;text-align:left;
cursor:pointer;user-select:none;padding:5px 8px;white-space:nowrap}td{padding:4px 8px;border-top:1px solid #e3e7eb;
vertical-align:top}td.num{text-align:right;white-space:nowrap}td.path,td.small{font-size:12px;color:#44505c;
word-break:break-all}tr:target,tr.sel{background:#fff3bf}summary.err{color:#a11;cursor:pointer}
.controls{margin:0 0 8px}.controls input{width:320px;padding:4px 8px;font:inherit}
#panel{position:fixed;right:16px;top:16px;width:420px;max-height:90vh;overflow:auto;background:#fff;
border:1px solid #8a96a3;border-radius:8px;box-shadow:0 6px 24px #0003;padding:12px 14px;font-size:13px}
#panel dt{font-weight:600;color:#44505c}#panel dd{margin:0 0 6px}#panel-close{float:right;font-size:18px;border:0;
background:none;cursor:pointer}footer{color:#6a737d;font-size:12px;text-align:center}
"""

# Interactivity only: sorting, filtering, the detail panel. Reads the DOM (never HTML
# strings), builds nodes with textContent, so no value can become markup here either.
SCRIPT = r"""
(function(){
var table=document.getElementById('tasks');if(!table)return;
var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows),heads=table.tHead.rows[0].cells;
var controls=document.querySelector('.controls');if(controls)controls.hidden=false;
var q=document.getElementById('q'),off={};
function apply(){var text=(q&&q.value||'').toLowerCase();
 rows.forEach(function(r){var show=!off[r.getAttribute('data-state')]&&(!text||r.textContent.toLowerCase().indexOf(text)>=0);
 r.style.display=show?'':'none';});}
if(q)q.addEventListener('input',apply);
document.querySelectorAll('button.chip').forEach(function(b){b.addEventListener('click',function(){
 var s=b.getAttribute('data-filter'),all=document.querySelectorAll('button.chip'),only=true;
 all.forEach(function(o){if(o!==b&&off[o.getAttribute('data-filter')]!==true)only=false;});
 if(only&&!off[s]){all.forEach(function(o){off[o.getAttribute('data-filter')]=false;o.classList.remove('off');});}
 else{all.forEach(function(o){var k=o.getAttribute('data-filter');off[k]=k!==s;o.classList.toggle('off',k!==s);});}
 apply();});});
Array.prototype.forEach.call(heads,function(th,i){var dir=1;function sort(){
 rows.sort(function(a,b){var x=a.cells[i],y=b.cells[i],vx=x.getAttribute('data-v'),vy=y.getAttribute('data-v');
  if(vx!==null&&vy!==null){var nx=vx===''?-1:parseFloat(vx),ny=vy===''?-1:parseFloat(vy);return (nx-ny)*dir;}
  return x.textContent.localeCompare(y.textContent)*dir;});
 rows.forEach(function(r){body.appendChild(r);});dir=-dir;}
 th.addEventListener('click',sort);th.addEventListener('keydown',function(e){if(e.key==='Enter')sort();});});
var panel=document.getElementById('panel'),pbody=document.getElementById('panel-body');
document.getElementById('panel-close').addEventListener('click',function(){panel.hidden=true;});
function show(row,node){while(pbody.firstChild)pbody.removeChild(pbody.firstChild);
 var h=document.createElement('h3');h.textContent=node?node.getAttribute('data-task'):row.cells[0].textContent;pbody.appendChild(h);
 if(node){var t=node.querySelector('title');if(t){var p=document.createElement('pre');p.textContent=t.textContent;pbody.appendChild(p);}}
 if(row){var dl=document.createElement('dl');Array.prototype.forEach.call(row.cells,function(c,i){
  if(!c.textContent.trim())return;var dt=document.createElement('dt');dt.textContent=heads[i].textContent;
  var dd=document.createElement('dd');Array.prototype.forEach.call(c.childNodes,function(n){dd.appendChild(n.cloneNode(true));});
  dl.appendChild(dt);dl.appendChild(dd);});pbody.appendChild(dl);
  document.querySelectorAll('tr.sel').forEach(function(r){r.classList.remove('sel');});row.classList.add('sel');}
 panel.hidden=false;}
document.querySelectorAll('svg.graph .node a').forEach(function(a){a.addEventListener('click',function(e){
 var href=a.getAttribute('href')||'',row=document.getElementById(href.slice(1)),g=a.parentNode;e.preventDefault();
 document.querySelectorAll('.node.sel').forEach(function(n){n.classList.remove('sel');});g.classList.add('sel');
 var name=g.getAttribute('data-task');if(q&&g.querySelector('rect.part')){q.value=name+'[';apply();}
 else if(q&&/\[$/.test(q.value)){q.value='';apply();}
 show(row,g);});});
})();
"""
