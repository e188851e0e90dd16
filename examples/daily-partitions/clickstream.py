"""Task functions for the daily-partitions example: one day of shop events at a time.

Each day's raw events are a partition of their own, stored under a folder named
after the day (``dt=YYYY-MM-DD``, as Hive and Spark lay out partitions). The
events are synthetic: ``random.Random`` is seeded with the region and the day, so
a given day's partition is always the same, whichever run produces it. That is
what lets the run for 2026-11-02 reuse, as its "yesterday", the partition written
by the run for 2026-11-01.

An event is a dict::

    {"ts": "2026-11-01T14:03:27Z", "user": "u042", "action": "purchase", "amount": 23.5}

Every function takes keyword arguments only: its ``args`` plus its ``needs``.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

Event = dict[str, Any]

# action -> relative weight
ACTIONS = {"view": 70, "cart": 20, "purchase": 10}

# Relative traffic per hour of day (UTC): quiet at night, busy in the evening.
HOURLY_TRAFFIC = [1, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 7, 8, 7, 6, 6, 7, 8, 10, 11, 10, 7, 4, 2]


def generate_events(*, day: str, region: str, per_day: int) -> list[Event]:
    """Produce the raw events of one day.

    Args:
        day: the day, YYYY-MM-DD (the pipeline passes ``{today}`` or ``{yesterday}``).
        region: a region name; it changes the data, and the paths it is stored under.
        per_day: average number of events; each day gets 80-120 % of it.

    Returns:
        The day's events in time order (stored as JSON).
    """
    rng = random.Random(f"{region}:{day}")
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
    count = round(int(per_day) * rng.uniform(0.8, 1.2))
    events = []
    for _ in range(count):
        hour = rng.choices(range(24), weights=HOURLY_TRAFFIC)[0]
        ts = start + dt.timedelta(hours=hour, seconds=rng.randrange(3600))
        action = rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
        events.append(
            {
                "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "user": f"u{rng.randrange(1, 120):03d}",
                "action": action,
                "amount": round(rng.uniform(5, 80), 2) if action == "purchase" else 0.0,
            }
        )
    return sorted(events, key=lambda e: e["ts"])


def summarize_day(*, events: list[Event], day: str, weekday: str) -> dict[str, Any]:
    """Compute the day's key figures.

    Args:
        events: one day's events (output of ``generate_events``).
        day: the day, YYYY-MM-DD.
        weekday: its name, e.g. "Sunday" (the pipeline passes ``{date:%A}``).

    Returns:
        ``{"day", "weekday", "events", "users", "purchases", "revenue",
        "conversion", "by_hour"}`` (stored as JSON); ``by_hour`` has 24 counts.
    """
    by_hour = [0] * 24
    for event in events:
        by_hour[int(event["ts"][11:13])] += 1
    users = {e["user"] for e in events}
    buyers = {e["user"] for e in events if e["action"] == "purchase"}
    return {
        "day": day,
        "weekday": weekday,
        "events": len(events),
        "users": len(users),
        "purchases": sum(1 for e in events if e["action"] == "purchase"),
        "revenue": round(sum(e["amount"] for e in events), 2),
        "conversion": round(len(buyers) / len(users), 3) if users else 0.0,
        "by_hour": by_hour,
    }


def _change(new: float, old: float) -> float | None:
    """Relative change in percent, or None when there is nothing to compare with."""
    return round(100 * (new - old) / old, 1) if old else None


def _figures(events: list[Event]) -> dict[str, float]:
    """Event count, purchases and revenue of a list of events."""
    return {
        "events": len(events),
        "purchases": sum(1 for e in events if e["action"] == "purchase"),
        "revenue": round(sum(e["amount"] for e in events), 2),
    }


def compare_days(*, current: list[Event], previous: list[Event]) -> dict[str, Any]:
    """Compare a day's events with the previous day's.

    Args:
        current: the run date's events.
        previous: the day before's events.

    Returns:
        ``{metric: {"previous": x, "current": y, "change_pct": z}}`` for event
        count, purchases and revenue (stored as JSON).
    """
    now, before = _figures(current), _figures(previous)
    return {
        metric: {"previous": before[metric], "current": now[metric],
                 "change_pct": _change(now[metric], before[metric])}
        for metric in now
    }


def export_text(*, summary: dict[str, Any], change: dict[str, Any], region: str) -> str:
    """Write the day's summary as a short text file for people.

    Args:
        summary: output of ``summarize_day``.
        change: output of ``compare_days``.
        region: shown in the heading.

    Returns:
        The text (stored as ``build/export/<region>_<YYYYMMDD>.txt``).
    """
    lines = [
        f"{region} - {summary['weekday']} {summary['day']}",
        "",
        f"events     {summary['events']:>8}",
        f"users      {summary['users']:>8}",
        f"purchases  {summary['purchases']:>8}",
        f"revenue    {summary['revenue']:>8.2f}",
        f"conversion {summary['conversion']:>8.1%}",
        "",
        "vs. the day before",
    ]
    for metric, c in change.items():
        pct = "n/a" if c["change_pct"] is None else f"{c['change_pct']:+.1f}%"
        lines.append(f"  {metric:<10} {c['previous']:>9} -> {c['current']:>9}  ({pct})")
    lines += ["", "events per hour (UTC)"]
    peak = max(summary["by_hour"]) or 1
    lines += [
        f"  {hour:02d}h {'*' * round(30 * n / peak):<30} {n}"
        for hour, n in enumerate(summary["by_hour"])
    ]
    return "\n".join(lines) + "\n"
