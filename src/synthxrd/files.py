"""Safe output files (atomic writes, refusing to overwrite what a user already has) and where the
project's shared data folder is (:func:`shared_data_dir`)."""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from synthxrd.errors import ConfigError, OutputError, SynthXRDError

__all__ = ["atomic_write", "write_text", "write_json", "plain_json", "check_new", "check_outputs",
           "remove_stale_temporaries", "display_name", "lock_folder", "LOCK_FILE", "shared_data_dir",
           "SHARED_DATA_ENV"]

#: The lock file of a folder that one process owns (a training run, a validation cache): it holds the
#: owner's pid; the lock itself is an flock(2) on it, which the kernel drops when the owner dies.
LOCK_FILE = ".synthxrd.lock"

#: The environment variable that names the shared data folder (``experimental/``, ``mp_experimental/``).
SHARED_DATA_ENV = "SYNTHXRD_SHARED_DATA"


def shared_data_dir(start: str | Path | None = None) -> Path:
    """The project's shared data folder: ``$SYNTHXRD_SHARED_DATA`` when set, else ``shared/data`` beside
    ``start`` (``<start>/../shared/data``; default: the current folder, i.e. the repository root for
    commands run there). The one place that says where the big read-only inputs (rruff_dev, XRED,
    mp_experimental) live; the folder may not exist (a fresh checkout), callers check."""
    value = os.environ.get(SHARED_DATA_ENV)
    if value:
        return Path(value)
    return Path(start if start is not None else Path.cwd()).parent / "shared" / "data"


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary path next to ``path``, then rename it onto ``path``.

    Readers never see a half-written file; on error the temporary file is removed and ``path`` is
    untouched. A file system that is full, over quota or read-only is an :class:`OutputError` naming
    ``path`` (one line in the CLI), whatever ``write`` raised. ``write`` creates the file itself, so it
    gets the usual umask permissions.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        _fsync(tmp, strict=True)  # the data is on disk before the name points at it (a crash leaves old or new)
        os.replace(tmp, path)
    except BaseException as exc:
        code = _no_room(exc, path.parent)  # asked before the temporary file gives its space back
        tmp.unlink(missing_ok=True)
        if code is not None:
            raise _output_error(path, code) from None
        raise
    _fsync(path.parent)  # the rename itself
    return path


#: errno values saying that a file system takes no more data: full, over quota, read-only.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
#: Free space below which a failed write counts as a full disk: writers that do not say why (torch's
#: zip writer, HDF5) fail with the file system filled up to the last blocks.
NO_ROOM_BYTES = 64 * 1024


def _output_error(path: Path, code: int) -> OutputError:
    return OutputError(f"{path}: cannot write it: {os.strerror(code)}; nothing was written there "
                       "(free some space, or choose another output path)")


def _no_room(exc: BaseException, folder: Path) -> int | None:
    """The errno (in :data:`NO_ROOM`) of a write that failed because ``folder``'s file system is full,
    over quota or read-only; None for any other failure."""
    if not isinstance(exc, Exception) or isinstance(exc, SynthXRDError):
        return None
    if isinstance(exc, OSError) and exc.errno in NO_ROOM:
        return exc.errno
    try:
        fs = os.statvfs(folder)
    except OSError:
        return None
    if fs.f_flag & os.ST_RDONLY:
        return errno.EROFS
    return errno.ENOSPC if fs.f_bavail * fs.f_frsize < NO_ROOM_BYTES else None


def _fsync(path: Path, *, strict: bool = False) -> None:
    """Flush ``path`` to disk; ``strict``: a file system that runs out of room while flushing raises."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # a file system without fsync of directories
        if strict and exc.errno in NO_ROOM:
            raise
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files of :func:`atomic_write` (``.NAME.PID.HEX.tmp``) in ``folder`` whose
    process is gone (killed before it could rename or remove them); returns the deleted paths."""
    removed = []
    for tmp in Path(folder).glob(".*.*.*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 3)[-3])
        except ValueError:
            continue
        if pid != os.getpid() and not _running(pid):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextmanager
def lock_folder(folder: str | Path) -> Iterator[Path]:
    """Own ``folder`` (created if missing) for the ``with`` block: one process at a time writes a run.

    The lock is an exclusive ``flock`` on ``folder/LOCK_FILE``, which holds the owner's pid. Another
    process that holds it makes this a :class:`ConfigError` naming that pid; a lock file left by a process
    that is gone (killed) is stale: its lock went with its process, and it is taken over. On exit the lock
    file is removed, and ``folder`` too when this call created it and nothing was written into it.
    """
    import fcntl

    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            owner = _lock_owner(path)
            raise ConfigError(f"{folder} is in use by {'process ' + str(owner) if owner else 'another process'} "
                              f"(lock file {path}); wait until it ends, or choose another folder") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # its owner removed it between our open and flock
            same = False
        if same:
            break
        os.close(fd)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            code = _no_room(exc, folder)
            if code is None:
                raise
            raise _output_error(path, code) from None
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
        if created:
            try:
                folder.rmdir()  # only when empty: a start that failed leaves nothing behind
            except OSError:
                pass


def _lock_owner(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def display_name(path: str | Path) -> str:
    """``path`` as text that any UTF-8 output (a terminal, a plot title) can show: the bytes of a file
    name that are not UTF-8 (held by Python as lone surrogates, PEP 383) become U+FFFD."""
    return os.fsencode(path).decode("utf-8", errors="replace")


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically (:func:`plain_json`: numpy values become
    numbers and lists, NaN and infinities null), so that every reader can parse it."""
    return write_text(path, json.dumps(plain_json(payload), indent=1, default=str, allow_nan=False) + "\n")


def plain_json(value: Any) -> Any:
    """A copy of ``value`` that strict JSON can hold: numpy scalars and arrays as Python numbers and
    lists, NaN and +-inf as ``None`` (JSON, RFC 8259, has no such numbers; Python would write ``NaN``)."""
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):
        return plain_json(value.tolist())
    return value


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
    the command's input files (not even with ``overwrite``; an input folder stands for every file in it,
    so an existing file inside it is refused too), and an existing output is replaced only with
    ``overwrite`` (:func:`check_new`). :class:`ConfigError` naming the path otherwise."""
    outputs = [Path(p) for p in outputs]
    given = [Path(p) for p in inputs if p is not None]
    for out in outputs:
        for source in given:
            clash = _input_clash(out, source)
            if clash:
                raise ConfigError(f"{out} is {clash} of this command; nothing was written. Choose another output path")
    check_new(outputs, overwrite=overwrite, option=option)


def _input_clash(out: Path, source: Path) -> str | None:
    """How output ``out`` would overwrite input ``source`` (``"also an input"``, or inside an input folder),
    None when it would not. Paths are compared resolved (symbolic links and ``..`` followed)."""
    if (out.exists() and source.exists() and os.path.samefile(out, source)) or out.resolve() == source.resolve():
        return "also an input"
    target = out.resolve()  # as the file system will find it once the output's folders are made
    if source.is_dir() and target.exists() and target.is_relative_to(source.resolve()):
        return f"a file inside {source}, an input folder"
    return None
