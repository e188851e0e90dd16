"""Synthetic weather readings: generate, clean, aggregate, export.

The data is fake but deterministic: each (seed, city, day) triple seeds its own
``random.Random``, so the same parameters and run date always produce the same
readings, on any machine and in any process. About one reading in twelve is
deliberately broken (a missing value, a sensor glitch, negative rain) so that the
``clean`` step has something to do.

A reading is a plain dict::

    {"city": "berlin", "date": "2026-11-01",
     "temp_c": 7.4, "rain_mm": 0.0, "wind_kmh": 14.2}
"""

from __future__ import annotations

import datetime as dt
import math
import random
import statistics
from typing import Any

Reading = dict[str, Any]

# city -> (yearly mean temperature in C, seasonal amplitude, chance of rain per day).
# A negative amplitude means southern hemisphere (warm in January).
CLIMATE: dict[str, tuple[float, float, float]] = {
    "berlin": (10.0, 9.5, 0.45),
    "paris": (12.5, 8.0, 0.40),
    "lima": (19.5, -3.5, 0.05),
    "oslo": (6.0, 10.5, 0.50),
    "cairo": (22.5, 7.0, 0.02),
}

# Readings outside these bounds are sensor errors.
TEMP_RANGE_C = (-60.0, 60.0)
WIND_RANGE_KMH = (0.0, 250.0)


def _as_list(cities: list[str] | str) -> list[str]:
    """Accept a YAML list or a comma-separated string (as given with ``-p``)."""
    if isinstance(cities, str):
        return [c.strip() for c in cities.split(",") if c.strip()]
    return list(cities)


def _one_reading(city: str, day: dt.date, seed: int) -> Reading:
    """Return one (possibly broken) reading for ``city`` on ``day``."""
    rng = random.Random(f"{seed}:{city}:{day.isoformat()}")
    mean, amplitude, rain_chance = CLIMATE.get(
        city, (rng.uniform(5, 25), rng.uniform(2, 10), rng.uniform(0.1, 0.5))
    )
    season = math.cos(2 * math.pi * (day.timetuple().tm_yday - 200) / 365)
    reading: Reading = {
        "city": city,
        "date": day.isoformat(),
        "temp_c": round(mean + amplitude * season + rng.gauss(0, 2.5), 1),
        "rain_mm": round(rng.expovariate(1 / 6), 1) if rng.random() < rain_chance else 0.0,
        "wind_kmh": round(abs(rng.gauss(15, 7)), 1),
    }
    fault = rng.random()
    if fault < 0.04:
        reading["temp_c"] = None  # the sensor sent nothing
    elif fault < 0.06:
        reading["temp_c"] = 999.9  # classic "no data" sentinel
    elif fault < 0.08:
        reading["rain_mm"] = -1.0  # impossible value
    return reading


def generate_readings(*, cities: list[str] | str, days: int, seed: int, end: str) -> list[Reading]:
    """Generate one reading per city per day for the ``days`` days ending on ``end``.

    Args:
        cities: city names (a list, or "berlin,paris" from the command line).
        days: how many days of history to produce.
        seed: any integer; the same seed gives the same data.
        end: last day to include, as YYYY-MM-DD (the pipeline passes ``{today}``).

    Returns:
        A list of reading dicts, sorted by city then date (stored as JSON).
    """
    last = dt.date.fromisoformat(end)
    first = last - dt.timedelta(days=int(days) - 1)
    return [
        _one_reading(city, first + dt.timedelta(days=offset), int(seed))
        for city in _as_list(cities)
        for offset in range(int(days))
    ]


def _problem(reading: Reading) -> str | None:
    """Name what is wrong with ``reading``, or return None if it is usable."""
    for field in ("temp_c", "rain_mm", "wind_kmh"):
        if reading.get(field) is None:
            return f"missing {field}"
    if not TEMP_RANGE_C[0] <= reading["temp_c"] <= TEMP_RANGE_C[1]:
        return "temperature out of range"
    if reading["rain_mm"] < 0:
        return "negative rain"
    if not WIND_RANGE_KMH[0] <= reading["wind_kmh"] <= WIND_RANGE_KMH[1]:
        return "wind out of range"
    return None


def clean_readings(*, raw: list[Reading]) -> dict[str, Any]:
    """Drop unusable readings and count why each one was dropped.

    Args:
        raw: the raw readings (the upstream task is called ``raw``).

    Returns:
        ``{"rows": [...usable readings...], "dropped": {reason: count}, "total": n}``
        (stored as a pickle).
    """
    rows: list[Reading] = []
    dropped: dict[str, int] = {}
    for reading in raw:
        problem = _problem(reading)
        if problem is None:
            rows.append(reading)
        else:
            dropped[problem] = dropped.get(problem, 0) + 1
    return {"rows": rows, "dropped": dict(sorted(dropped.items())), "total": len(raw)}


def city_stats(*, clean: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Aggregate the clean readings per city.

    Args:
        clean: the output of ``clean_readings``.

    Returns:
        ``{city: {"days", "temp_mean", "temp_min", "temp_max", "rain_total",
        "rainy_days", "wind_max"}}``, cities in alphabetical order (stored as JSON).
    """
    by_city: dict[str, list[Reading]] = {}
    for reading in clean["rows"]:
        by_city.setdefault(reading["city"], []).append(reading)
    stats: dict[str, dict[str, float]] = {}
    for city in sorted(by_city):
        readings = by_city[city]
        temps = [r["temp_c"] for r in readings]
        rain = [r["rain_mm"] for r in readings]
        stats[city] = {
            "days": len(readings),
            "temp_mean": round(statistics.fmean(temps), 1),
            "temp_min": min(temps),
            "temp_max": max(temps),
            "rain_total": round(sum(rain), 1),
            "rainy_days": sum(1 for mm in rain if mm > 0),
            "wind_max": max(r["wind_kmh"] for r in readings),
        }
    return stats


def readings_csv(*, clean: dict[str, Any]) -> str:
    """Render the clean readings as CSV text with a header line.

    Args:
        clean: the output of ``clean_readings``.

    Returns:
        The CSV document as a string (stored with the ``text`` serializer so that
        shell tasks can read it with ``sort``, ``wc`` and friends).
    """
    lines = ["city,date,temp_c,rain_mm,wind_kmh"]
    lines += [
        f"{r['city']},{r['date']},{r['temp_c']},{r['rain_mm']},{r['wind_kmh']}"
        for r in clean["rows"]
    ]
    return "\n".join(lines) + "\n"
