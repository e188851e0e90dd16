"""Backfills: --date A..B (or --date given several times) runs once per date."""

from __future__ import annotations

import json


PIPELINE = """
tasks:
  day:
    run: steps:text
    args: {value: "{today}", name: "day-{today}"}
    target: "out/{date:%Y/%m/%d}/day.txt"
  week:
    run: steps:text
    needs: {value: day}
    args: {name: "week-{today}"}
    target: "out/{date:%Y/%m/%d}/week.txt"
"""


def test_a_seven_day_backfill_then_nothing_to_do(project, steps):
    proj = project(PIPELINE, steps=steps)
    result = proj.cli("run", "--date", "2026-11-01..2026-11-07", "--json")
    assert result.code == 0, result.text
    doc = json.loads(result.out)
    assert len(doc["runs"]) == 7 and doc["ok"] is True
    assert len({run["run_id"] for run in doc["runs"]}) == 7
    for day in range(1, 8):
        assert proj.read(f"out/2026/11/{day:02d}/week.txt") == f"2026-11-{day:02d}"
    assert len(proj.counts()) == 14
    again = proj.cli("run", "--date", "2026-11-01..2026-11-07")
    assert again.code == 0 and " ran" not in again.out and again.out.count("== 2026-11-") == 7
    assert len(proj.counts()) == 14 and all(n == 1 for n in proj.counts().values())
    assert proj.cli("status", "--check", "--date", "2026-11-01..2026-11-07").code == 0
    assert proj.cli("status", "--check", "--date", "2026-11-01..2026-11-08").code == 1


def test_dates_given_several_times_run_once_each(project, steps):
    proj = project(PIPELINE, steps=steps)
    result = proj.cli("run", "--date", "2026-12-31", "--date", "2026-12-30..2027-01-01", "--json")
    assert result.code == 0
    assert len(json.loads(result.out)["runs"]) == 3  # 2026-12-31 is asked for twice, run once
    assert proj.exists("out/2027/01/01/week.txt") and proj.exists("out/2026/12/30/day.txt")


def test_bad_ranges_are_usage_errors(project, steps):
    proj = project(PIPELINE, steps=steps)
    backwards = proj.cli("run", "--date", "2026-11-07..2026-11-01")
    assert backwards.code == 2 and "ends before it starts" in backwards.err
    huge = proj.cli("run", "--date", "2000-01-01..2099-01-01")
    assert huge.code == 2 and "more than 10,000 runs" in huge.err
    assert proj.cli("show", "day", "--date", "2026-11-01..2026-11-02").code == 2
    assert proj.counts() == {}


def test_a_status_over_many_dates_holds_one_date_at_a_time(tmp_path):
    """Each date's table is printed as it is made and its report dropped: a status of 300
    dates held every date's rows, with their planned tasks, until it printed (2 GB)."""
    import tracemalloc

    from tests.clirun import in_process, write_project

    root = write_project(tmp_path, "tasks:\n" + "".join(
        f"  t{i}: {{shell: \"echo > {{output}}\", target: \"out/{{date:%Y-%m-%d}}/{'x' * 200}/t{i}.txt\"}}\n"
        for i in range(60)))

    def peak(last_day: int) -> int:
        tracemalloc.start()
        try:
            shown = in_process(root, "status", "--date", f"2026-01-01..2026-01-{last_day:02d}")
            assert shown.returncode == 0 and shown.stdout.count("60 of 60 tasks would run") == last_day, shown
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(1)  # (what the first command imports is not a date's)
    few, many = peak(2), peak(24)
    assert many < few * 1.5, (few, many)
