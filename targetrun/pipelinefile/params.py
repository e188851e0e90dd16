"""Parameter values from the command line (``-p NAME=VALUE``) and ``--params-file``.

Both are YAML, read with the Pipelinefile's own bounded loader
(:func:`targetrun.pipelinefile.yamlnodes.load_value`: safe tags only, limited nesting and alias
expansion), then held to the limits of :mod:`targetrun.pipelinefile.values`. Any problem is a
:class:`~targetrun.errors.UsageError` (exit 2) naming the option.
"""

from __future__ import annotations


from targetrun import redact
from targetrun.errors import SpecError, UsageError
from targetrun.regularfile import read_named
from targetrun.pipelinefile.values import check_param_name, check_param_value
from targetrun.pipelinefile.yamlnodes import YamlSyntaxError, load_value

__all__ = ["parse_param", "load_params_file", "check_param_name", "check_param_value"]

MAX_PARAMS_FILE_BYTES = 16 * 1024 * 1024


def parse_param(pair: str) -> tuple[str, object]:
    """``NAME=VALUE`` with VALUE read as YAML, so ``n=3`` is an int and ``xs=[a, b]`` a list.

    >>> parse_param("n=3"), parse_param("city=paris"), parse_param("on=true")
    (('n', 3), ('city', 'paris'), ('on', True))
    >>> parse_param("s=")
    ('s', '')
    """
    name, sep, raw = pair.partition("=")
    name = name.strip()
    if not sep:
        raise UsageError(f"-p {pair!r} is not NAME=VALUE", hint="For example -p city=paris.")
    try:
        check_param_name(name)
    except UsageError as exc:
        raise UsageError(f"-p {redact.clipped(pair, 80)!r}: {exc.message}", hint="For example -p city=paris.") from None
    if "\0" in raw:
        raise UsageError(f"-p {name}: the value holds a NUL byte; no path or command can hold one")
    if raw == "":
        return name, ""
    try:
        value = load_value(raw, f"-p {name}")
    except YamlSyntaxError:
        return name, raw  # not YAML (e.g. "a: b: c"): keep the text as it was typed
    except SpecError as exc:
        raise UsageError(exc.format()) from None
    value = raw if value is None and raw.strip() not in ("null", "~") else value
    check_param_value(name, value)
    return name, value


def load_params_file(path: str) -> dict[str, object]:
    try:
        text = read_named(path, MAX_PARAMS_FILE_BYTES).decode("utf-8")  # a stream too: <(generate), /dev/stdin
    except OSError as exc:
        raise UsageError(f"cannot read the params file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read the params file {path}: {exc}") from None
    if "\0" in text:
        raise UsageError(f"the params file {path} holds a NUL byte; it is not a text file")
    try:
        values = load_value(text, path)
    except SpecError as exc:
        raise UsageError(exc.format().replace("this is not valid YAML", "not valid YAML or JSON")) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UsageError(f"{path}: expected a mapping of parameter names to values, found {type(values).__name__}")
    for name, value in values.items():
        try:
            check_param_value(check_param_name(name), value)
        except UsageError as exc:
            raise UsageError(f"{path}: {exc.message}", hint=exc.hint) from None
    return values
