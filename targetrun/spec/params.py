"""Parameter values from the command line (``-p NAME=VALUE``) and ``--params-file``."""

from __future__ import annotations

import re

import yaml

from targetrun.errors import UsageError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_param(pair: str) -> tuple[str, object]:
    """``NAME=VALUE`` with VALUE read as YAML, so ``n=3`` is an int and ``xs=[a, b]`` a list.

    >>> parse_param("n=3"), parse_param("city=paris"), parse_param("on=true")
    (('n', 3), ('city', 'paris'), ('on', True))
    >>> parse_param("s=")
    ('s', '')
    """
    name, sep, raw = pair.partition("=")
    name = name.strip()
    if not sep or not _NAME.match(name):
        raise UsageError(f"-p {pair!r} is not NAME=VALUE", hint="For example -p city=paris.")
    if raw == "":
        return name, ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return name, raw  # not YAML (e.g. "a: b: c"): keep the text as it was typed
    return name, raw if value is None and raw.strip() not in ("null", "~") else value


def load_params_file(path: str) -> dict[str, object]:
    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the params file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path}{where}: not valid YAML or JSON: {getattr(exc, 'problem', exc)}") from None
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise UsageError(f"{path}: expected a mapping of parameter names to values, found {type(values).__name__}")
    return values
