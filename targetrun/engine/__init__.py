"""The engine: plan (decide what runs and why) and run (one loop over ``submit``).

It knows only ports -- storage, state store, executor, reporter -- never an adapter,
click, rich or yaml.
"""

from targetrun.engine.plan import Plan, Planner, RunRequest
from targetrun.engine.run import Clock, Engine

__all__ = ["Clock", "Engine", "Plan", "Planner", "RunRequest"]
