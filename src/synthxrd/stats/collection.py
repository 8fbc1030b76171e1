"""Walking a structure collection: CIF texts of a folder or tar archive, analysed in worker processes.

The collection half of :mod:`synthxrd.stats`: :func:`iter_cif_texts` streams the CIFs,
:func:`map_cifs` runs any per-CIF function over them with the bounded process pool of
:mod:`synthxrd.pool` (statistics, the reference library), :func:`compute` turns them into
:class:`~synthxrd.stats.statistics.Statistics`.
"""

from __future__ import annotations

import math
import re
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from synthxrd.errors import ConfigError, DataError
from synthxrd.pool import Outcome, chunked, imap_bounded, outcomes
from synthxrd.stats.analysis import DEFAULT_SYMPREC, StructureRecord, analyze_cif, atomic_volumes
from synthxrd.stats.statistics import Statistics

__all__ = [
    "CHUNK_SIZE",
    "iter_cif_texts",
    "cif_structures",
    "map_cifs",
    "compute_records",
    "compute",
    "default_workers",
    "progress_bar",
    "source_fingerprint",
    "check_symprec",
]

#: Structures per task sent to a worker process (amortises inter-process overhead).
CHUNK_SIZE = 64

_BOND_LOOP_RE = re.compile(r"^[ \t]*loop_[ \t]*\r?\n[ \t]*_geom_", re.M | re.I)
_AFTER_BOND_RE = re.compile(r"^[ \t]*(?:data_|loop_|_(?!geom_))", re.M | re.I)


def _strip_trailing_bond_loop(text: str) -> str:
    """Cut a ``_geom_*`` loop that ends the file (pymatgen/MP files: most of their bytes)."""
    m = _BOND_LOOP_RE.search(text)
    if m is None or _AFTER_BOND_RE.search(text, m.end()) is not None:
        return text
    return text[: m.start()]


def _is_tar(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2"))


#: A data block's start, and the tag that says it holds a structure.
_DATA_RE = re.compile(r"^[ \t]*data_(\S*)", re.M | re.I)
_SITES_RE = re.compile(r"^[ \t]*_atom_site_fract_x", re.M | re.I)


def cif_structures(stem: str, text: str) -> Iterator[tuple[str, str]]:
    """The structures of one CIF file: ``(stem, text)`` for a file of one structure, and for a
    file of several data blocks with atom sites (an ICSD export, a database dump) one
    ``(f"{stem}:{block name}", block text)`` each; blocks without atom sites (``data_global``) are
    left out then."""
    starts = list(_DATA_RE.finditer(text))
    if len(starts) > 1:
        ends = [m.start() for m in starts[1:]] + [len(text)]
        blocks = [(m.group(1), text[m.start():end]) for m, end in zip(starts, ends)]
        blocks = [(name, block) for name, block in blocks if _SITES_RE.search(block)]
        if len(blocks) > 1:
            for name, block in blocks:
                yield f"{stem}:{name}", _strip_trailing_bond_loop(block)
            return
    yield stem, _strip_trailing_bond_loop(text)


def iter_cif_texts(source: str | Path, *, ids: Iterable[str] | None = None,
                   skip: Iterable[str] | None = None) -> Iterator[tuple[str, str]]:
    """Yield ``(id, cif_text)`` for every structure of the ``*.cif`` files of a folder (recursively,
    sorted: a COD tree, an ICSD export), a tar archive (streamed, member order) or a single CIF file;
    ``id`` is the file stem (``stem:block`` for files of several structures, :func:`cif_structures`).
    An AMCSD SQLite database (:mod:`synthxrd.amcsd`, detected by content) gives one CIF text per
    structure, ids ``amcsd-NNNNNNN``.

    Parameters
    ----------
    source : path
    ids : iterable of str, optional
        Only these ids (files of other stems are not even read).
    skip : iterable of str, optional
        Leave these ids out (files of these stems are not read): what an earlier run has done.

    Raises
    ------
    DataError
        If ``source`` does not exist, is not a folder/tar/CIF, or the archive is corrupt.
    """
    from synthxrd.amcsd import is_amcsd, iter_amcsd

    path = Path(source)
    wanted = None if ids is None else set(ids)
    unwanted = set(skip or ())
    wanted_stems = None if wanted is None else wanted | {w.split(":", 1)[0] for w in wanted}

    def read(stem: str, text_of: Callable[[], str]) -> Iterator[tuple[str, str]]:
        if stem in unwanted or (wanted_stems is not None and stem not in wanted_stems):
            return
        for ident, text in cif_structures(stem, text_of()):
            if ident not in unwanted and (wanted is None or ident in wanted or stem in wanted):
                yield ident, text

    if is_amcsd(path):
        yield from iter_amcsd(path, ids=wanted, skip=unwanted)
    elif path.is_dir():
        for f in sorted(path.rglob("*"), key=lambda p: str(p.relative_to(path))):
            if f.is_file() and f.suffix.lower() == ".cif":
                yield from read(f.stem, lambda f=f: f.read_text(errors="replace"))
    elif path.is_file() and _is_tar(path):
        try:
            with tarfile.open(path, "r|*") as tf:
                for member in tf:
                    name = Path(member.name)
                    if not member.isfile() or name.suffix.lower() != ".cif":
                        continue
                    handle = tf.extractfile(member)
                    if handle is None:
                        continue
                    yield from read(name.stem, lambda h=handle: h.read().decode("utf-8", errors="replace"))
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{path}: cannot read the archive ({exc})") from None
    elif path.is_file() and path.suffix.lower() == ".cif":
        yield from read(path.stem, lambda: path.read_text(errors="replace"))
    elif not path.exists():
        raise DataError(f"{path}: no such file or folder")
    else:
        raise DataError(f"{path}: not a folder of CIFs, a CIF, a tar archive "
                        "(.tar, .tar.gz, .tgz, .tar.xz, .tar.bz2) or an AMCSD database")


def _analyze_one(identifier: str, text: str, **options) -> StructureRecord:
    return analyze_cif(text, id=identifier, **options)


def default_workers() -> int:
    """CPU cores available to this process (:func:`synthxrd.config.available_cores`)."""
    from synthxrd.config import available_cores

    return available_cores()


def map_cifs(source: str | Path, analyse: Callable[[str, str], Any], *, workers: int | None = None,
             ids: Iterable[str] | None = None, skip: Iterable[str] | None = None, progress: bool = True,
             desc: str = "stats", on_chunk: Callable[[list[Outcome]], None] | None = None) -> list[Outcome]:
    """``analyse(id, cif_text)`` of every CIF of ``source`` (see :func:`iter_cif_texts`), in parallel.

    The main process streams the files and sends chunks of :data:`CHUNK_SIZE` CIF texts to
    ``workers`` processes (``workers=1``: everything in this process); at most ``4 * workers`` chunks
    are in flight, so memory stays bounded for any collection. ``skip``: ids left out (done before);
    ``on_chunk(outcomes)`` is called as each chunk comes back (e.g. to checkpoint), and then
    nothing is kept: the result is empty. ``analyse`` must be picklable (a
    module-level function or a ``functools.partial`` of one). Returns ``(id, result, None)`` per CIF,
    or ``(id, None, reason)`` where ``analyse`` raised (never fatal), in completion order.
    """
    from functools import partial

    from synthxrd.amcsd import amcsd_size, is_amcsd

    work = partial(outcomes, analyse=analyse)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    skip = set(skip or ())
    texts = iter_cif_texts(source, ids=ids, skip=skip)
    total = None
    path = Path(source)
    if ids is not None:
        total = len(set(ids))
    elif path.is_dir():
        total = sum(1 for f in path.rglob("*.cif") if f.is_file())
    elif is_amcsd(path):
        total = amcsd_size(path)
    if total is not None and skip:
        total = max(0, total - len(skip))
    bar = progress_bar(total, desc, enabled=progress)
    results: list[Any] = []
    try:
        for out in imap_bounded(work, ((chunk,) for chunk in chunked(texts, CHUNK_SIZE)), workers=workers):
            (results.extend(out) if on_chunk is None else on_chunk(out))
            bar.update(len(out))
    finally:
        bar.close()
    return results


def compute_records(source: str | Path, *, symprec: float = DEFAULT_SYMPREC, angle_tolerance: float = -1.0,
                    workers: int | None = None, ids: Iterable[str] | None = None,
                    progress: bool = True) -> tuple[list[StructureRecord], list[tuple[str, str]]]:
    """Analyse every CIF of ``source`` (see :func:`iter_cif_texts`), in parallel (:func:`map_cifs`).

    A CIF that cannot be read or analysed becomes a failure ``(id, reason)``, never an exception.

    Returns
    -------
    records : list of StructureRecord, sorted by id
    failures : list of (id, reason), sorted by id
    """
    from functools import partial

    check_symprec(symprec)
    analyse = partial(_analyze_one, symprec=symprec, angle_tolerance=angle_tolerance, volumes=atomic_volumes())
    results = map_cifs(source, analyse, workers=workers, ids=ids, progress=progress)
    results.sort(key=lambda r: r[0])
    records = [r for _, r, _ in results if r is not None]
    failures = [(i, reason) for i, r, reason in results if r is None]
    return records, failures


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int | None, desc: str, *, unit: str = "CIF", enabled: bool = True, position: int = 0):
    """A tqdm bar on stderr (updated at most once a second), or one that does nothing when not ``enabled``."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, mininterval=1.0, position=position, leave=True)


def source_fingerprint(source: str | Path) -> dict[str, Any]:
    """Cheap identity of a structure collection: size and mtime of a file; number, total size and newest
    mtime of the CIFs of a folder.

    Raises
    ------
    DataError
        If ``source`` does not exist.
    """
    path = Path(source)
    if path.is_file():
        st = path.stat()
        return {"kind": "file", "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    if path.is_dir():
        n, total, newest = 0, 0, 0
        for f in path.rglob("*"):
            if f.is_file() and f.suffix.lower() == ".cif":
                st = f.stat()
                n, total, newest = n + 1, total + st.st_size, max(newest, st.st_mtime_ns)
        return {"kind": "folder", "n_cif": n, "bytes": total, "mtime_ns": newest}
    raise DataError(f"{path}: no such file or folder (the structure collection: a folder or tar of CIFs, "
                    "e.g. ../shared/data/mp_experimental/structures.tar.xz)")


def check_symprec(symprec: float) -> None:
    """:class:`ConfigError` unless ``symprec`` is a positive finite number (Å)."""
    if not (isinstance(symprec, (int, float)) and math.isfinite(symprec) and symprec > 0):
        raise ConfigError(f"symprec must be a positive number (Å), got {symprec!r}")


def compute(source: str | Path, *, symprec: float = DEFAULT_SYMPREC, workers: int | None = None,
            ids: Iterable[str] | None = None, progress: bool = True,
            metadata: Mapping[str, Any] | None = None) -> Statistics:
    """Statistics of every CIF in ``source``: :func:`compute_records` then :meth:`Statistics.from_records`."""
    start = time.perf_counter()
    records, failures = compute_records(source, symprec=symprec, workers=workers, ids=ids, progress=progress)
    extra = {"wall_time_s": round(time.perf_counter() - start, 2)}
    extra.update(metadata or {})
    return Statistics.from_records(records, source=str(source), symprec=symprec, failures=failures,
                                   metadata=extra)
