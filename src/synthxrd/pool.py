"""Bounded process pools for the CIF pipelines (statistics, real crystal sets, validation sets).

Every stage that analyses a structure collection streams it: the main process reads CIF texts,
groups them into chunks (:func:`chunked`) and keeps at most ``ahead × workers`` chunks in flight
(:func:`imap_bounded`), so memory stays bounded for any collection size. Workers run one BLAS
thread each and keep spglib's C-level warnings off stderr (:func:`quiet_worker`): the work is
per-structure Python and spglib, and failures are reported per structure instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from synthxrd.errors import StructureError

__all__ = ["chunked", "quiet_worker", "imap_bounded", "outcomes", "failure_reason", "Outcome"]

T = TypeVar("T")
#: (id, result or None, failure reason or None) of one CIF.
Outcome = tuple[str, Any, "str | None"]


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def failure_reason(exc: Exception) -> str:
    """One line for a structure that failed: the message of a :class:`~synthxrd.errors.StructureError`,
    else ``"ExceptionType: message"``."""
    return str(exc) if isinstance(exc, StructureError) else f"{type(exc).__name__}: {exc}"


def outcomes(chunk: Iterable[tuple[str, str]], analyse: Callable[[str, str], Any]) -> list[Outcome]:
    """``(id, analyse(id, text), None)`` per CIF of the chunk, or ``(id, None, reason)`` where it raised
    (:func:`failure_reason`). Never fatal: one bad file must not stop a run over a whole collection."""
    out: list[Outcome] = []
    for identifier, text in chunk:
        reason = getattr(text, "reason", None)  # a source's own reason why it has no text (amcsd.UnreadableText)
        if reason is not None:
            out.append((identifier, None, str(reason)))
            continue
        try:
            out.append((identifier, analyse(identifier, text), None))
        except Exception as exc:  # noqa: BLE001
            out.append((identifier, None, failure_reason(exc)))
    return out


def quiet_worker() -> None:
    """Worker set-up: one BLAS/OpenMP thread per process, no spglib warnings on stderr.

    The thread pools are limited through threadpoolctl, which acts on the libraries already loaded
    (numpy is imported before any initializer runs, so ``OMP_NUM_THREADS`` set here would be ignored).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    os.environ.setdefault("SPGLIB_WARNING", "OFF")


def imap_bounded(fn: Callable[..., Any], tasks: Iterable[tuple], *, workers: int,
                 initializer: Callable[..., None] | None = quiet_worker, initargs: tuple = (),
                 local: Callable[..., Any] | None = None, ahead: int = 4) -> Iterator[Any]:
    """``fn(*task)`` for every task, in completion order, with at most ``ahead × workers`` in flight.

    ``workers == 1`` runs ``local(*task)`` (default ``fn``) in this process, without the
    initializer: pass as ``local`` what ``fn`` does once ``initializer(*initargs)`` has set up a
    worker. ``fn`` must be picklable (a module-level function).
    """
    if workers == 1:
        call = local or fn
        for task in tasks:
            yield call(*task)
        return
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(max_workers=workers, initializer=initializer, initargs=initargs) as pool:
        pending: set = set()
        for task in tasks:
            pending.add(pool.submit(fn, *task))
            if len(pending) >= ahead * workers:  # bounded memory: do not read ahead of the workers
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
