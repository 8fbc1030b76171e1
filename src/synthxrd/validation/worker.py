"""The worker side of a validation build: one CIF -> its label, filters, crystal, pattern and gap
variants; one chunk of the random set. Everything a task needs travels in its :class:`Context`.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from synthxrd.errors import StructureError
from synthxrd.pool import failure_reason, outcomes
from synthxrd.stats import Statistics, StructureRecord, analyze_sites, atomic_volumes, spacegroup_number
from synthxrd.structure import CrystalBatch, Sites, crystal_sites, parse_cif, site_types
from synthxrd.validation.request import GAP_SETS, OCCUPANCY_TOL
from synthxrd.validation.synthetic import RandomChunk, random_chunk

__all__ = ["Context", "Item", "Variant", "read_labelled", "run_task", "empty_batch", "crystal_batch"]


def _id_key(identifier: str) -> int:
    return int.from_bytes(hashlib.sha256(identifier.encode()).digest()[:8], "little")


def _crystallite_size(seed: int, identifier: str) -> float:
    """Crystallite size (nm) of a real crystal: U(20, 100) from a generator seeded by (seed, id)."""
    from synthxrd.simulate import DEFAULT_SIZE_RANGE_NM

    return float(np.random.default_rng([int(seed), _id_key(identifier)]).uniform(*DEFAULT_SIZE_RANGE_NM))


def _gap_rng(seed: int, identifier: str, name: str) -> np.random.Generator:
    """The stream of one crystal of gap set ``name``: seeded by (seed, id, set), independent of the size's."""
    return np.random.default_rng([int(seed), _id_key(identifier), GAP_SETS[name]])


# --------------------------------------------------------------------------------------------------
# Worker side


@dataclass(frozen=True)
class Context:
    seed: int
    classes: tuple[int, ...]
    symprec: float
    strict_symprec: float
    max_sites: int
    max_volume: float
    want_all: bool
    want_match: bool
    want_pure: bool
    statistics_path: str | None  # None: shipped statistics
    gap: tuple[str, ...] = ()  # gap sets to build (from the match crystals)


class Variant(NamedTuple):
    """A randomized ``match`` crystal of a gap set (or why there is none)."""

    set: str
    error: str | None
    size_nm: float = math.nan
    found: int = 0  # spglib (symprec) space group of the new crystal, 0 = none
    lattice: np.ndarray | None = None
    frac: np.ndarray | None = None
    numbers: np.ndarray | None = None
    occupancies: np.ndarray | None = None
    pattern: np.ndarray | None = None


class Item(NamedTuple):
    """What a worker returns for one CIF (structure arrays and pattern only when selected)."""

    id: str
    error: str | None
    label: int = 0
    strict: int = 0
    n_sites: int = 0
    volume: float = math.nan
    ordered: bool = True
    in_all: bool = False
    in_match: bool = False
    in_pure: bool = False
    size_nm: float = math.nan
    lattice: np.ndarray | None = None
    frac: np.ndarray | None = None
    numbers: np.ndarray | None = None
    occupancies: np.ndarray | None = None
    pattern: np.ndarray | None = None
    variants: tuple[Variant, ...] = ()


def read_labelled(text: str, identifier: str, symprec: float) -> tuple[StructureRecord, Sites]:
    """The record (label, sites, volume) and the sites of one CIF, from one reading.

    The label comes from the very function the statistics and the split used
    (:func:`synthxrd.stats.analyze_sites` on the sites of :func:`synthxrd.structure.parse_cif`): spglib's
    answer at a loose tolerance can depend on the order of the atoms (about 0.2 % of the MP test part
    differ if the sites are re-ordered), so the cell is analysed exactly as ``stats.compute`` does.
    Also the reading of :mod:`synthxrd.real`.
    """
    sites = parse_cif(text)
    return analyze_sites(identifier, *sites, symprec=symprec, volumes=_volumes()), sites


@lru_cache(maxsize=1)
def _volumes() -> np.ndarray:
    return atomic_volumes()


def _analyze_one(ctx: Context, identifier: str, text: str) -> Item:
    record, sites = read_labelled(text, identifier, ctx.symprec)
    lattice, positions, species = sites
    crystal = sites.to_crystal()
    strict = spacegroup_number(lattice, positions, site_types(species), ctx.strict_symprec)
    ordered = bool(np.all(crystal.occupancies >= 1.0 - OCCUPANCY_TOL))
    in_all = record.spacegroup in ctx.classes
    in_match = in_all and record.n_sites <= ctx.max_sites and record.volume <= ctx.max_volume
    in_pure = in_match and ordered
    # gap sets: the match crystals with a pattern, so the original's pattern is made for them too
    keep = (ctx.want_all and in_all) or ((ctx.want_match or bool(ctx.gap)) and in_match) or (ctx.want_pure and in_pure)
    item = Item(identifier, None, record.spacegroup, strict, record.n_sites, record.volume, ordered,
                 in_all, in_match, in_pure)
    if keep:
        item = item._replace(size_nm=_crystallite_size(ctx.seed, identifier), lattice=crystal.lattice,
                             frac=crystal.frac_coords, numbers=crystal.numbers, occupancies=crystal.occupancies)
    if in_match and ctx.gap:
        item = item._replace(variants=_gap_variants(ctx, identifier, crystal, record.spacegroup,
                                                    _crystallite_size(ctx.seed, identifier)))
    return item


def _gap_variants(ctx: Context, identifier: str, crystal, label: int, size_nm: float) -> tuple[Variant, ...]:
    """The randomized crystals of the requested gap sets (one variant per set, an error instead on failure)."""
    from synthxrd import gap

    try:
        analysed = gap.wyckoff_crystal(crystal, symprec=ctx.symprec)
        if analysed.spacegroup != label:
            raise StructureError(f"spglib: space group {analysed.spacegroup} on the sites as grouped, "
                                 f"label {label}")
    except Exception as exc:  # noqa: BLE001 - a failed randomization must not drop the crystal from match
        return tuple(Variant(name, failure_reason(exc)) for name in ctx.gap)
    out = []
    for name in ctx.gap:
        rng = _gap_rng(ctx.seed, identifier, name)
        try:
            if name == "match_random_coords":
                new = gap.randomize_coordinates(analysed, label, rng, symprec=ctx.symprec)
            else:
                new = gap.randomize_lattice(analysed, label, rng, generator=_generator(ctx.statistics_path),
                                            symprec=ctx.symprec)
        except Exception as exc:  # noqa: BLE001 - as above
            out.append(Variant(name, failure_reason(exc)))
            continue
        _, positions, species = crystal_sites(new)
        found = spacegroup_number(new.lattice, positions, site_types(species), ctx.symprec)
        out.append(Variant(name, None, size_nm, found, new.lattice, new.frac_coords, new.numbers, new.occupancies))
    return tuple(out)


def _process_cifs(ctx: Context, chunk: list[tuple[str, str]]) -> list[Item]:
    """Analyse a chunk of CIFs and simulate the patterns of the selected ones (never raises per CIF)."""
    from functools import partial

    items = [item if reason is None else Item(i, reason)
             for i, item, reason in outcomes(chunk, partial(_analyze_one, ctx))]
    keep = [k for k, it in enumerate(items) if it.lattice is not None]
    if keep:
        patterns = _patterns_of([items[k] for k in keep])
        for k, pattern in zip(keep, patterns):
            if pattern is None:
                items[k] = Item(items[k].id, "no pattern: no reflection between 5 and 90 deg 2theta")
            elif isinstance(pattern, str):
                items[k] = Item(items[k].id, pattern)
            else:
                items[k] = items[k]._replace(pattern=pattern)
    # the gap variants of the crystals that are in match and have a pattern
    slots = [(k, j) for k, it in enumerate(items) if it.error is None
             for j, v in enumerate(it.variants) if v.error is None]
    if slots:
        patterns = _patterns_of([items[k].variants[j] for k, j in slots])
        for (k, j), pattern in zip(slots, patterns):
            v = items[k].variants[j]
            if pattern is None:
                v = Variant(v.set, "no pattern: no reflection between 5 and 90 deg 2theta")
            elif isinstance(pattern, str):
                v = Variant(v.set, pattern)
            else:
                v = v._replace(pattern=pattern)
            variants = list(items[k].variants)
            variants[j] = v
            items[k] = items[k]._replace(variants=tuple(variants))
    return items


def crystal_batch(items: Sequence[Item]) -> CrystalBatch:
    """The crystals of items (or variants) as one batch."""
    offsets = np.zeros(len(items) + 1, np.int64)
    offsets[1:] = np.cumsum([len(it.numbers) for it in items])
    return CrystalBatch(np.array([it.lattice for it in items]).reshape(-1, 3, 3),
                        np.concatenate([it.frac for it in items]).reshape(-1, 3),
                        np.concatenate([it.numbers for it in items]).astype(np.int64),
                        np.concatenate([it.occupancies for it in items]), offsets)


def _patterns_of(items: Sequence[Item]) -> list[np.ndarray | str | None]:
    """Patterns (float32 rows), None for an empty pattern, or an error message per item."""
    from synthxrd import simulate

    sizes = np.array([it.size_nm for it in items])
    try:
        out = simulate.patterns(crystal_batch(items), crystallite_size_nm=sizes, allow_empty=True)
        return [row if row.max() > 0 else None for row in out]
    except Exception:  # noqa: BLE001 - isolate the crystal that fails
        if len(items) == 1:
            exc = sys.exc_info()[1]
            return [f"pattern: {exc}"]
    return [r for it in items for r in _patterns_of([it])]


_GENERATORS: dict[tuple, Any] = {}


def _generator(statistics_path: str | None):
    """The generator of the random set, built once per process (and per statistics file version)."""
    from synthxrd.generate import Generator

    key: tuple = (None,)
    if statistics_path is not None:
        st = os.stat(statistics_path)
        key = (statistics_path, st.st_size, st.st_mtime_ns)
    if key not in _GENERATORS:
        _GENERATORS.clear()  # one at a time: a long-lived process building with other statistics
        _GENERATORS[key] = Generator(Statistics.load(statistics_path))
    return _GENERATORS[key]


def _process_random(ctx: Context, chunk: int, n: int) -> tuple[RandomChunk, np.ndarray]:
    """Chunk ``chunk`` of the random set (:func:`~synthxrd.validation.synthetic.random_chunk`) and the
    spglib (symprec) space group of each of its crystals (0 = none)."""
    result = random_chunk(_generator(ctx.statistics_path), ctx.classes, ctx.seed, chunk, n)
    batch = result.batch
    found = np.array([spacegroup_number(c.lattice, c.frac_coords, c.numbers, ctx.symprec)
                      for c in (batch[i] for i in range(len(batch)))], np.int64)
    return result, found


def empty_batch() -> CrystalBatch:
    """A batch of no crystals, with (no) labels."""
    return CrystalBatch(np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0),
                        np.zeros(1, np.int64), spacegroups=np.zeros(0, np.int64))


def run_task(ctx: Context, kind: str, *args):
    """One task of a build: ``(ctx, "random", chunk, n)`` or ``(ctx, "cifs", chunk)`` (the context travels
    with each task: the workers need no initializer of their own)."""
    return _process_random(ctx, *args) if kind == "random" else _process_cifs(ctx, *args)
