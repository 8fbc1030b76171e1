"""Safe output files: atomic writes and refusing to overwrite what a user already has."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from synthxrd.errors import ConfigError

__all__ = ["atomic_write", "write_text", "write_json", "check_new", "check_outputs"]


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary path next to ``path``, then rename it onto ``path``.

    Readers never see a half-written file; on error the temporary file is removed and ``path`` is
    untouched. ``write`` creates the file itself, so it gets the usual umask permissions.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically (numpy scalars become numbers)."""
    return write_text(path, json.dumps(payload, indent=1, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def check_new(paths: Iterable[str | Path], *, overwrite: bool, option: str = "--overwrite") -> None:
    """Raise :class:`ConfigError` naming the first existing path unless ``overwrite``.

    Called before any work starts, so that nothing a user wrote is lost and nothing is half done.
    """
    if overwrite:
        return
    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise ConfigError(f"{existing[0]} already exists{more}; nothing was written. "
                          f"Use {option} to replace, or another output path")


def check_outputs(outputs: Iterable[str | Path], *, inputs: Iterable[str | Path | None] = (), overwrite: bool,
                  option: str = "--overwrite") -> None:
    """The output policy of every command, checked before any work starts: an output is never one of
    the command's inputs (not even with ``overwrite``), and an existing output is replaced only with
    ``overwrite`` (:func:`check_new`). :class:`ConfigError` naming the path otherwise."""
    outputs = [Path(p) for p in outputs]
    given = [Path(p) for p in inputs if p is not None]
    for out in outputs:
        for source in given:
            same = (out.exists() and source.exists() and os.path.samefile(out, source)) or \
                out.resolve() == source.resolve()
            if same:
                raise ConfigError(f"{out} is also an input of this command; nothing was written. "
                                  "Choose another output path")
    check_new(outputs, overwrite=overwrite, option=option)
