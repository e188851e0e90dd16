"""Render the weather statistics as a plain-text report.

The report is meant to be read in a terminal or attached to an e-mail: a header,
a table of per-city statistics, a horizontal ASCII bar chart of mean
temperatures, the five hottest readings (found by a shell task) and a short note
on data quality.
"""

from __future__ import annotations

from typing import Any

BAR_WIDTH = 40


def _bar_chart(values: dict[str, float], unit: str) -> list[str]:
    """Draw one ``#`` bar per key, scaled so the largest value is BAR_WIDTH wide."""
    if not values:
        return ["  (no data)"]
    largest = max(abs(v) for v in values.values()) or 1.0
    label_width = max(len(k) for k in values)
    return [
        f"  {name:<{label_width}} | {'#' * round(BAR_WIDTH * abs(value) / largest):<{BAR_WIDTH}} "
        f"{value:6.1f} {unit}"
        for name, value in values.items()
    ]


def _table(stats: dict[str, dict[str, float]]) -> list[str]:
    """Format the per-city statistics as a fixed-width text table."""
    header = (
        f"  {'city':<10} {'days':>4} {'mean C':>7} {'min C':>6} {'max C':>6} "
        f"{'rain mm':>8} {'wet days':>8} {'max wind':>9}"
    )
    lines = [header, "  " + "-" * (len(header) - 2)]
    for city, s in stats.items():
        lines.append(
            f"  {city:<10} {s['days']:>4} {s['temp_mean']:>7.1f} {s['temp_min']:>6.1f} "
            f"{s['temp_max']:>6.1f} {s['rain_total']:>8.1f} {s['rainy_days']:>8} "
            f"{s['wind_max']:>9.1f}"
        )
    return lines


def _hottest(csv_lines: str) -> list[str]:
    """Format the CSV lines produced by the ``hottest`` shell task."""
    rows = [line.split(",") for line in csv_lines.splitlines() if line.strip()]
    return [f"  {temp:>5} C  {city:<10} {date}" for city, date, temp, *_ in rows] or ["  (none)"]


def render_report(
    *,
    title: str,
    day: str,
    stats: dict[str, dict[str, float]],
    clean: dict[str, Any],
    hottest: str,
) -> str:
    """Build the whole report.

    Args:
        title: a heading (the pipeline passes ``{flow_name}``).
        day: the run date, YYYY-MM-DD.
        stats: output of ``city_stats``.
        clean: output of ``clean_readings`` (only its counters are used).
        hottest: text output of the ``hottest`` shell task (CSV lines).

    Returns:
        The report as one string (stored as ``reports/<day>-report.txt``).
    """
    kept = len(clean["rows"])
    lines = [
        f"{title.upper()} REPORT - {day}",
        "=" * 60,
        "",
        "Per-city statistics",
        *_table(stats),
        "",
        "Mean temperature",
        *_bar_chart({city: s["temp_mean"] for city, s in stats.items()}, "C"),
        "",
        "Total rain",
        *_bar_chart({city: s["rain_total"] for city, s in stats.items()}, "mm"),
        "",
        "Five hottest readings",
        *_hottest(hottest),
        "",
        f"Data quality: kept {kept} of {clean['total']} readings",
        *[f"  dropped {count:>3}: {reason}" for reason, count in clean["dropped"].items()],
    ]
    return "\n".join(lines) + "\n"
