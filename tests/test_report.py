"""``targetrun report``: one self-contained HTML file from the state store and the logs.

Real runs (``python -m targetrun`` subprocesses, real workers), the real SQLite and Redis
stores, and the page opened in a real headless Chromium (Debian's ``chromium``; .ci/run
installs it) to check what a person sees: every task node, the failed one highlighted,
the timeline drawn, no console error, nothing a task printed turned into markup.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from targetrun.report.layout import layout
from targetrun.store.sqlite import SqliteStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium; .ci/run does it)")

STEPS = '''
import time

def work(pause=0.0, name="", **upstream):
    time.sleep(pause)
    return str(name) + ":" + str(len(upstream))

def boom(**upstream):
    print("about to fail: disk quota reached on shard 7")
    raise RuntimeError("shard 7 is corrupt: expected 128 rows, found 0")

def evil(**upstream):
    print('<script>document.title="PWNED-LOG"</script>')
    raise RuntimeError('<script>document.title="PWNED"</script><img src=x onerror="document.title=1">')

def slow(**upstream):
    open("started", "w").write("yes")
    time.sleep(60)
'''


def sixty_tasks(failing: str = "boom") -> str:
    """60 tasks: a source, a mapped task (5 children), 6 layers of 9, one failing task
    with a dependent that cannot run, a sink that joins the rest, and a lone task."""
    lines = ["name: sixty", "params:", "  xs: [1, 2, 3, 4, 5]", "tasks:",
             "  src: {run: steps:work, args: {name: src}, target: out/src.pkl}",
             "  fan: {run: steps:work, foreach: '{params.xs}', args: {name: '{item}'}, needs: [src], "
             "target: 'out/fan/{map_index}.pkl'}"]
    previous = ["src"]
    for layer in range(1, 7):
        current = []
        for i in range(9):
            name = f"l{layer}_{i}"
            needs = sorted({previous[i % len(previous)], previous[(i * 2 + 1) % len(previous)]})
            lines.append(f"  {name}: {{run: steps:work, args: {{name: {name}, pause: 0.02}}, needs: [{', '.join(needs)}], "
                         f"target: out/{name}.pkl}}")
            current.append(name)
        previous = current
    lines += [f"  broken: {{run: steps:{failing}, needs: [l1_0], target: out/broken.pkl}}",
              "  after_broken: {run: steps:work, needs: [broken], target: out/after.pkl}",
              f"  sink: {{run: steps:work, needs: [fan, {', '.join(previous)}], target: out/sink.pkl}}",
              "  lonely: {run: steps:work, target: out/lonely.pkl}"]
    text = "\n".join(lines) + "\n"
    assert text.count("{run:") == 60
    return text


def make_project(root: Path, pipeline: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Pipelinefile.yaml").write_text(pipeline)
    (root / "steps.py").write_text(STEPS)
    return root


def targetrun(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command, rest = args[0], args[1:]
    return subprocess.run([sys.executable, "-m", "targetrun", command, "-f", str(root / "Pipelinefile.yaml"), *rest],
                          capture_output=True, text=True, timeout=timeout, cwd=root)


class _Page(HTMLParser):
    """The elements of a page: graph nodes, timeline bars, table rows, scripts, links."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, str] = {}  # data-task -> class
        self.bars: list[str] = []
        self.rows: dict[str, str] = {}  # id -> data-state
        self.scripts = 0
        self.urls: list[str] = []
        self.tags: list[str] = []
        self._in_timeline = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "g" and "node" in (a.get("class") or "").split():
            self.nodes[a.get("data-task") or ""] = a.get("class") or ""
        if tag == "svg":
            self._in_timeline = "timeline" in (a.get("class") or "")
        if tag == "g" and "tbar" in (a.get("class") or ""):
            self.bars.append(a.get("class") or "")
        if tag == "tr" and a.get("data-state") is not None:
            self.rows[a.get("id") or ""] = a.get("data-state") or ""
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href", "xlink:href", "action", "data"):
            if a.get(key):
                self.urls.append(a[key] or "")


def parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def assert_self_contained(text: str) -> None:
    assert "http://" not in text and "https://" not in text
    page = parse(text)
    assert all(url.startswith("#") for url in page.urls), [u for u in page.urls if not u.startswith("#")]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*//""", text)
    assert "@import" not in text and "url(" not in text


def chromium(url: str, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra, url],
            capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`targetrun run -k -j 4` of the 60-task pipeline with one failing task."""
    root = make_project(tmp_path_factory.mktemp("sixty"), sixty_tasks())
    result = targetrun(root, "run", "-k", "-j", "4", "-q")
    assert result.returncode == 1, result.stdout + result.stderr
    return root


# -- the acceptance ----------------------------------------------------------------


def test_report_of_a_failed_run_has_every_task_the_failure_and_the_timeline(failed_run: Path) -> None:
    result = targetrun(failed_run, "report", "-o", "r.html")
    assert result.returncode == 0, result.stderr
    text = (failed_run / "r.html").read_text()
    assert_self_contained(text)
    page = parse(text)
    spec_tasks = {"src", "fan", "broken", "after_broken", "sink", "lonely"} | {f"l{a}_{b}" for a in range(1, 7) for b in range(9)}
    assert set(page.nodes) == spec_tasks  # one graph node per task; fan's 5 children folded into one
    assert "st-failed" in page.nodes["broken"] and "st-upstream-failed" in page.nodes["after_broken"]
    assert "st-succeeded" in page.nodes["sink"]
    assert "fan ×5" in text
    assert "shard 7 is corrupt: expected 128 rows, found 0" in text  # the error
    assert "about to fail: disk quota reached on shard 7" in text  # the last lines it printed (its log)
    assert len(page.bars) == 1 + 5 + 54 + 1 + 1 + 1  # every task that ran has a bar; after_broken did not run
    assert sorted(page.rows.values()).count("upstream failed") == 1
    assert len(text) < 400_000


@needs_chromium
def test_report_renders_in_chromium_without_console_errors(failed_run: Path, tmp_path: Path) -> None:
    assert targetrun(failed_run, "report", "-o", "r.html").returncode == 0
    url = (failed_run / "r.html").as_uri()
    shown = chromium(url, "--dump-dom")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert console_lines(shown.stderr) == []
    dom = parse(shown.stdout)
    assert len(dom.nodes) == 60
    assert "st-failed" in dom.nodes["broken"]
    assert len(dom.bars) == 63 and any("crit" in bar for bar in dom.bars)  # the timeline, its critical path
    assert '<div class="controls">' in shown.stdout  # the script ran (it shows the filter box)
    png = tmp_path / "report.png"
    shot = chromium(url, "--window-size=1400,1800", f"--screenshot={png}")
    assert shot.returncode == 0 and png.stat().st_size > 20_000
    assert console_lines(shot.stderr) == []


CLICKS = """<script>
function visible(){return Array.prototype.filter.call(document.querySelectorAll('#tasks tbody tr'),
  function(r){return r.style.display!=='none';}).map(function(r){return r.cells[0].textContent;});}
var out={};
document.querySelector('g.node[data-task="fan"] a').dispatchEvent(new MouseEvent('click',{bubbles:true,cancelable:true}));
out.fan=visible();out.panel=!document.getElementById('panel').hidden;
document.querySelector('g.node[data-task="broken"] a').dispatchEvent(new MouseEvent('click',{bubbles:true,cancelable:true}));
out.after_broken_click=visible().length;out.panel_text=document.getElementById('panel-body').textContent;
document.querySelector('button.chip[data-filter="failed"]').click();out.failed_only=visible();
document.querySelector('button.chip[data-filter="failed"]').click();
var took=document.querySelectorAll('#tasks th')[6];took.click();took.click();out.slowest=visible()[0];
document.body.setAttribute('data-clicks',JSON.stringify(out));
</script>"""


@needs_chromium
def test_clicking_a_mapped_node_shows_its_children_and_a_failure_its_error(failed_run: Path, tmp_path: Path) -> None:
    """The interactive parts, driven in the browser: a copy of the report with a script
    that clicks like a person would and writes down what the page then shows."""
    assert targetrun(failed_run, "report", "-o", "r.html").returncode == 0
    page = tmp_path / "clicked.html"
    page.write_text((failed_run / "r.html").read_text().replace("</body>", CLICKS + "</body>"))
    shown = chromium(page.as_uri(), "--dump-dom")
    assert console_lines(shown.stderr) == []
    found = re.search(r"data-clicks=\"([^\"]*)\"", shown.stdout)
    assert found is not None, shown.stdout[-3000:]
    clicks = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert sorted(clicks["fan"]) == [f"fan[{i}]" for i in range(5)] and clicks["panel"]
    assert clicks["after_broken_click"] == 65  # a plain node clears the children filter
    assert "shard 7 is corrupt" in clicks["panel_text"] and "about to fail" in clicks["panel_text"]
    assert clicks["failed_only"] == ["broken"]
    assert clicks["slowest"].startswith("l")  # sorted by duration, longest first: a task that slept


def test_report_reads_no_checkpoint(failed_run: Path, tmp_path: Path) -> None:
    """Targets gone (copied project without out/): the report still shows sizes from the records."""
    copy = tmp_path / "copy"
    shutil.copytree(failed_run, copy, ignore=shutil.ignore_patterns("out"))
    result = targetrun(copy, "report", "-o", "r.html")
    assert result.returncode == 0, result.stderr
    assert not (copy / "out").exists()
    text = (copy / "r.html").read_text()
    assert re.search(r'data-v="\d+">\d+ B<', text)  # a size, from the checkpoint record


# -- escaping ----------------------------------------------------------------------


def test_script_in_an_error_a_log_or_a_task_name_is_shown_as_text(tmp_path: Path) -> None:
    root = make_project(tmp_path / "evil", sixty_tasks(failing="evil"))
    assert targetrun(root, "run", "-k", "-q").returncode == 1
    # A record with a hostile task name (a store written by anything else; names in a Pipelinefile cannot be).
    store = SqliteStore(str(root / ".targetrun" / "state.db"))
    try:
        from targetrun.model import TaskState
        from targetrun.store.base import TaskRecord

        run_id = store.runs("sixty", 1)[0].run_id
        store.record_task(TaskRecord(run_id, "sixty", '<script>document.title="PWNED-NAME"</script>', TaskState.FAILED,
                                     time.time(), 0.5, 1, "</pre><b>bold</b>", None, time.time() - 1, "w<i>:1"), None)
    finally:
        store.close()
    assert targetrun(root, "report", "-o", "r.html").returncode == 0
    text = (root / "r.html").read_text()
    assert text.count("<script") == 1  # the report's own script, nothing else
    assert "&lt;script&gt;document.title=&quot;PWNED&quot;&lt;/script&gt;" in text
    assert "&lt;script&gt;document.title=&quot;PWNED-NAME&quot;&lt;/script&gt;" in text
    assert "&lt;script&gt;document.title=&quot;PWNED-LOG&quot;&lt;/script&gt;" in text
    assert "<img" not in text and "<b>bold" not in text and "<i>" not in text
    if CHROMIUM is not None:  # and the browser agrees: nothing ran, nothing became an element
        shown = chromium((root / "r.html").as_uri(), "--dump-dom")
        assert "PWNED" not in re.search(r"<title>(.*?)</title>", shown.stdout, re.S).group(1)  # type: ignore[union-attr]
        dom = parse(shown.stdout)
        assert dom.scripts == 1 and "img" not in dom.tags and "i" not in dom.tags
        assert "&lt;/pre&gt;&lt;b&gt;bold&lt;/b&gt;" in shown.stdout
        assert console_lines(shown.stderr) == []


# -- run --report, backfills, Redis ------------------------------------------------


def test_run_report_is_written_when_the_run_fails(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", sixty_tasks())
    result = targetrun(root, "run", "-q", "--report", "out-report/run.html")
    assert result.returncode == 1
    assert "report written to out-report/run.html" in result.stderr
    text = (root / "out-report" / "run.html").read_text()
    assert "shard 7 is corrupt" in text and ">failed</span>" in text


def test_run_report_is_written_when_the_run_is_interrupted(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "name: stop\ntasks:\n  first: {run: steps:work, target: out/a.pkl}\n"
                                        "  slowly: {run: steps:slow, needs: [first], target: out/b.pkl}\n")
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "-q", "-f", str(root / "Pipelinefile.yaml"),
                            "--report", "r.html"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    deadline = time.monotonic() + 30
    while not (root / "started").exists():
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 143, out + err
    text = (root / "r.html").read_text()
    assert ">interrupted</span>" in text
    page = parse(text)
    assert "st-succeeded" in page.nodes["first"] and "st-cancelled" in page.nodes["slowly"]


def test_a_backfill_gets_one_timeline_lane_per_date(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "name: daily\ntasks:\n"
                                        "  a: {run: steps:work, target: 'out/{date:%Y-%m-%d}/a.pkl'}\n"
                                        "  b: {run: steps:work, needs: [a], target: 'out/{date:%Y-%m-%d}/b.pkl'}\n")
    assert targetrun(root, "run", "-q", "--date", "2026-11-01..2026-11-03").returncode == 0
    assert targetrun(root, "report", "-o", "r.html").returncode == 0  # default: the whole backfill
    text = (root / "r.html").read_text()
    lanes = re.findall(r'class="lanelabel"[^>]*><title>([^<]*)</title>', text)
    assert lanes == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert "3 runs (a backfill: 2026-11-01 … 2026-11-03)" in text
    one = json.loads(targetrun(root, "history", "--json").stdout)[1]["run_id"]
    assert targetrun(root, "report", "-o", "one.html", "--run", one).returncode == 0
    assert re.findall(r'class="lanelabel"', (root / "one.html").read_text()) == ['class="lanelabel"']


def test_report_from_a_redis_store(tmp_path: Path, redis_url: str) -> None:
    pipeline = sixty_tasks().replace("name: sixty\n", f"name: sixty\ncache: {redis_url}\n")
    root = make_project(tmp_path / "p", pipeline)
    assert targetrun(root, "run", "-k", "-j", "2", "-q").returncode == 1
    assert targetrun(root, "report", "-o", "r.html").returncode == 0
    page = parse((root / "r.html").read_text())
    assert len(page.nodes) == 60 and "st-failed" in page.nodes["broken"] and len(page.bars) == 63
    assert "st-skipped" not in page.nodes["sink"]


def test_report_without_runs_or_with_an_unknown_run_is_a_usage_error(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "name: none\ntasks:\n  a: {run: steps:work, target: out/a.pkl}\n")
    result = targetrun(root, "report")
    assert result.returncode == 2 and "has no runs" in result.stderr and "Traceback" not in result.stderr
    assert targetrun(root, "run", "-q").returncode == 0
    result = targetrun(root, "report", "--run", "nope")
    assert result.returncode == 2 and "no run 'nope'" in result.stderr
    result = targetrun(root, "report")
    assert result.returncode == 0 and (root / "targetrun-report.html").exists()


# -- the store records -------------------------------------------------------------

V3_TASK_RUNS = """CREATE TABLE task_runs (
    run_id TEXT NOT NULL, pipeline TEXT NOT NULL, task TEXT NOT NULL, state TEXT NOT NULL,
    finished REAL NOT NULL, duration REAL NOT NULL, attempts INTEGER NOT NULL, error TEXT, target TEXT,
    PRIMARY KEY (run_id, task))"""


def test_a_version_3_store_gains_start_times_and_workers(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStore(str(path)).close()  # today's schema, then turned back into version 3's task_runs
    db = sqlite3.connect(path)
    db.executescript(f"DROP TABLE task_runs; {V3_TASK_RUNS}; ALTER TABLE pending DROP COLUMN absent; "
                     "PRAGMA user_version = 3;")
    db.execute("INSERT INTO task_runs VALUES ('r1', 'p', 'old', 'succeeded', 10.0, 1.5, 1, NULL, 'out/old')")
    db.commit()
    db.close()
    store = SqliteStore(str(path))
    try:
        old = store.task_records("r1", "p")["old"]
        assert (old.duration, old.started, old.worker) == (1.5, None, "")
        from targetrun.model import TaskState
        from targetrun.store.base import TaskRecord

        store.record_task(TaskRecord("r1", "p", "new", TaskState.SUCCEEDED, 12.0, 1.0, 1, None, None, 11.0, "h:1"), None)
        assert store.task_records("r1", "p")["new"].started == 11.0
        assert store.last_task_records("p")["new"].state is TaskState.SUCCEEDED
    finally:
        store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 9


def test_the_outcome_summary_is_one_small_record_per_run(failed_run: Path) -> None:
    db = sqlite3.connect(failed_run / ".targetrun" / "state.db")
    blobs = db.execute("SELECT key, length(data) FROM blobs WHERE key LIKE 'targetrun-run:%'").fetchall()
    db.close()
    assert len(blobs) == 1 and blobs[0][1] < 2_000  # 65 task outcomes, compressed


# -- graph --format svg and the layout ----------------------------------------------


def test_graph_format_svg_uses_the_report_layout(failed_run: Path) -> None:
    result = targetrun(failed_run, "graph", "--format", "svg")
    assert result.returncode == 0, result.stderr
    root = ET.fromstring(result.stdout.split("?>", 1)[1])
    names = {g.get("data-task") for g in root.iter("{http://www.w3.org/2000/svg}g") if "node" in (g.get("class") or "")}
    assert len(names) == 60


def test_layout_orders_columns_to_avoid_crossings() -> None:
    # Declared in an order that crosses: a->y, b->x with x above y.
    graph = {"a": (), "b": (), "x": ("b",), "y": ("a",), "z": ("x", "y")}
    box = layout(graph)
    assert box.crossings == 0
    assert (box.nodes["a"].y < box.nodes["b"].y) == (box.nodes["y"].y < box.nodes["x"].y)
    long = layout({"a": (), "b": ("a",), "c": ("b",), "d": ("a", "c")})
    assert len(long.edges[-1].points) > 2 or any(len(r.points) > 2 for r in long.edges)  # a->d routed past b, c


# -- 1,000 tasks -------------------------------------------------------------------


def thousand_tasks() -> str:
    lines = ["name: big", "tasks:"]
    for i in range(1000):
        needs = [f"t{j}" for j in sorted({i - 1 - (i % 7), i - 20 - (i % 3)}) if j >= 0]
        need = f", needs: [{', '.join(needs)}]" if needs else ""
        lines.append(f"  t{i}: {{run: steps:work{need}, target: out/t{i}.pkl}}")
    return "\n".join(lines) + "\n"


def test_a_thousand_task_report_is_small_and_renders(tmp_path: Path) -> None:
    root = make_project(tmp_path / "big", thousand_tasks())
    began = time.monotonic()
    assert targetrun(root, "run", "-q", "-j", "4", timeout=600).returncode == 0
    ran = time.monotonic() - began
    began = time.monotonic()
    assert targetrun(root, "report", "-o", "r.html").returncode == 0
    written = time.monotonic() - began
    size = (root / "r.html").stat().st_size
    assert size < 2_000_000
    page = parse((root / "r.html").read_text())
    assert len(page.nodes) == 1000 and len(page.bars) == 1000
    figures = {"run_s": round(ran, 2), "report_s": round(written, 2), "bytes": size}
    if CHROMIUM is not None:
        began = time.monotonic()
        shot = chromium((root / "r.html").as_uri(), "--window-size=1400,1800", f"--screenshot={tmp_path / 'big.png'}")
        figures["chromium_screenshot_s"] = round(time.monotonic() - began, 2)
        blank = tmp_path / "blank.html"
        blank.write_text("<!DOCTYPE html><title>x</title>")
        began = time.monotonic()
        chromium(blank.as_uri(), "--window-size=1400,1800", f"--screenshot={tmp_path / 'blank.png'}")
        figures["chromium_blank_page_s"] = round(time.monotonic() - began, 2)
        assert shot.returncode == 0 and console_lines(shot.stderr) == []
    print("1000-task report:", json.dumps(figures))
