"""Typed configuration dataclasses: defaults < TOML file < command-line overrides.

Unknown keys, values of the wrong type and numbers that are not finite (NaN, inf) raise
:class:`~synthxrd.errors.ConfigError` naming the file (or ``command line``) and the key. The resolved config is written next to a run's outputs as
``config.toml`` (see :func:`to_toml`), so that a run can be repeated or resumed from it alone.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from synthxrd.errors import ConfigError

__all__ = ["load_toml", "merge", "from_dict", "to_dict", "to_toml", "parse_override", "available_cores"]

T = TypeVar("T")


def available_cores() -> int:
    """CPU cores this process may run on (``os.sched_getaffinity``, so a taskset or a container's
    CPU set counts; ``os.cpu_count`` where the call does not exist)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; :class:`ConfigError` naming the file on a missing file or a syntax error."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None


def _coerce(value: Any, annotation: Any, where: str, key: str) -> Any:
    """Check/convert ``value`` to ``annotation`` (int, float, str, bool, Optional, tuple, list, dict)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: {key} has an invalid value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, where, key) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a table, got {value!r}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(f"{where}: invalid {key} = {value!r}: must be a finite number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
    return value


def from_dict(cls: type[T], values: dict[str, Any], *, where: str) -> T:
    """Build dataclass ``cls`` from ``values``, checking keys and types (defaults for missing keys)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (valid keys: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], where, k) for k, v in values.items()}
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """The dataclass as plain data (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}


def merge(cls: type[T], *, file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Defaults of ``cls`` < values of the TOML ``file`` < ``overrides`` (e.g. command-line flags)."""
    values: dict[str, Any] = {}
    if file is not None:
        values.update(load_toml(file))
        from_dict(cls, values, where=str(file))  # report file errors against the file
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(cls, values, where=str(file) if file and not overrides else "config")


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with a TOML value (``lr=3e-4``, ``model="resnet10"``, ``amp=false``); bare words are strings."""
    if "=" not in text:
        raise ConfigError(f"command line: --set expects key=value, got {text!r}")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {value!r} to TOML")


def to_toml(config: Any) -> str:
    """TOML text of a dataclass config (None values are omitted: they mean "default")."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in to_dict(config).items() if v is not None]
    return "\n".join(lines) + "\n"
