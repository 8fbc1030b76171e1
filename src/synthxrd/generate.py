"""Synthetic crystals drawn from per-space-group statistics of a structure database.

Algorithm (Schopmans, Reiser & Friederich, Digital Discovery 2 (2023) 1414, arXiv 2303.11699,
section 2.2; docs/architecture.md, "Data flow: training"), per crystal:

1. space group ~ prior (structure counts of the represented groups, or uniform);
2. number of distinct elements n ~ P(n | SG); elements ~ P(el | SG) without replacement;
3. per element: repetitions r ~ P(r | SG); per repetition a Wyckoff position ~ P(wyckoff | SG),
   fixed (0-DOF) positions at most once per crystal; at most ``max_asym_sites`` sites;
4. V_atoms = sum_sites mult (4/3) pi r^3 with r = (covalent + van der Waals radius)/2 (the radii
   stored in the statistics); denseness f ~ p(f | V_atoms); V = f V_atoms;
5. lattice from a Gaussian KDE per crystal system of (a, b, c) / V^(1/3) and the free angles,
   scaled so that the cell volume is exactly V;
6. each site: a point uniform in [0, 1)^3 projected onto its Wyckoff position, expanded to the orbit.
   No distance checks (deliberate: the network must learn symmetry, not chemistry).

Fixes over the reference code: the cell volume really equals the sampled volume; every loop is
bounded (exhausted element pools and fixed positions shrink the draw, repeated failures retry at
most ``max_attempts`` times and then raise :class:`GenerationError`); monoclinic/triclinic angles
always give a valid cell (the metric is checked, invalid draws fall back to the database cell);
p(f | V_atoms) is sampled by inverse CDF on a precomputed grid of the conditional KDE, no rejection
loop; every random number comes from the ``rng`` passed in; an optional exact-symmetry check with
spglib rejects crystals whose symmetry is higher than intended, and counts how often per group.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from numbers import Integral
from typing import TYPE_CHECKING

import numpy as np

from synthxrd import wyckoff
from synthxrd.errors import ConfigError, SynthXRDError
from synthxrd.stats.statistics import REPRESENTED_MIN_COUNT
from synthxrd.structure import CrystalBatch

if TYPE_CHECKING:
    from collections.abc import Sequence

    from synthxrd.stats import Statistics

__all__ = ["GeneratorConfig", "Generator", "GenerationError", "LATTICE_FREE_PARAMETERS"]


class GenerationError(SynthXRDError, RuntimeError):
    """A crystal could not be generated within the bounded number of attempts."""


#: Free lattice parameters (indices into a, b, c, alpha, beta, gamma) per crystal system, in the
#: conventional standard setting of spglib (unique axis b; hexagonal axes for trigonal groups).
LATTICE_FREE_PARAMETERS = {
    "triclinic": (0, 1, 2, 3, 4, 5),
    "monoclinic": (0, 1, 2, 4),
    "orthorhombic": (0, 1, 2),
    "tetragonal": (0, 2),
    "trigonal": (0, 2),
    "hexagonal": (0, 2),
    "cubic": (),
}
_FIXED_ANGLES = {"trigonal": (90.0, 90.0, 120.0), "hexagonal": (90.0, 90.0, 120.0)}


@dataclass(frozen=True)
class GeneratorConfig:
    """Options of :class:`Generator` (defaults = the reference method)."""

    #: Classes: space groups with at least this many structures in the statistics.
    min_count: int = REPRESENTED_MIN_COUNT
    #: "statistics" (structure counts) or "uniform" over the classes.
    prior: str = "statistics"
    #: Groups with fewer structures than this borrow n_elements/elements/repetitions from their
    #: crystal system (Wyckoff frequencies: uniform over positions when the group has none).
    pool_below: int = 1
    #: Largest number of asymmetric-unit sites (reference: 100).
    max_asym_sites: int = 100
    #: Largest cell volume in Angstrom^3 (reference: 7000) and smallest volume per atom.
    max_volume: float = 7000.0
    min_volume_per_atom: float = 0.75
    #: Attempts per crystal before GenerationError.
    max_attempts: int = 200
    #: Reject crystals whose spglib space group (symprec, angle tolerance) differs from the intended one.
    check_symmetry: bool = False
    symprec: float = 1e-8
    angle_tolerance: float = 5.0

    def __post_init__(self) -> None:
        if self.prior not in ("statistics", "uniform"):
            raise ConfigError(f"generator prior must be 'statistics' or 'uniform', got {self.prior!r}")
        for name in ("max_asym_sites", "max_attempts", "min_count"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"generator {name} must be >= 1, got {getattr(self, name)}")
        if not (self.max_volume > 0 and self.min_volume_per_atom >= 0):
            raise ConfigError("generator max_volume must be > 0 and min_volume_per_atom >= 0")


def _cdf(probs: np.ndarray) -> np.ndarray:
    c = np.cumsum(probs, dtype=np.float64)
    return c / c[-1]


def _draw(cdf: np.ndarray, rng: np.random.Generator) -> int:
    return min(int(np.searchsorted(cdf, rng.random(), side="right")), len(cdf) - 1)


@dataclass(frozen=True)
class _Site:
    """A Wyckoff position ready for sampling: projection x -> P x + p and coset operations."""

    multiplicity: int
    dof: int
    projection: np.ndarray  # (3, 3)
    offset: np.ndarray  # (3,)
    rotations: np.ndarray  # (mult, 3, 3) one operation per distinct orbit point
    translations: np.ndarray  # (mult, 3)


def _coset_operations(sg, wp, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The ``multiplicity`` operations of ``sg`` that map a generic point of ``wp`` to distinct points.

    Found once from a random point of the position: applying only these operations later gives
    the orbit without any deduplication (exact for every point of the position except a
    measure-zero set, the same set on which the position itself degenerates).
    """
    point = wyckoff.project(wp, rng.random(3))
    images = np.einsum("nij,j->ni", sg.rotations, point) + sg.translations
    wrapped = images - np.floor(images)
    keep: list[int] = []
    for i, x in enumerate(wrapped):
        if all(np.abs((x - wrapped[j] + 0.5) % 1.0 - 0.5).max() > 1e-6 for j in keep):
            keep.append(i)
    if len(keep) != wp.multiplicity:
        raise GenerationError(f"space group {sg.number} position {wp.multiplicity}{wp.letter}: "
                              f"orbit of a generic point has {len(keep)} points")
    return np.ascontiguousarray(sg.rotations[keep], np.float64), np.ascontiguousarray(sg.translations[keep])


@dataclass(frozen=True)
class _GroupTables:
    """Everything needed to draw crystals of one space group, as cumulative distributions."""

    number: int
    crystal_system: str
    n_elements: np.ndarray  # values
    n_elements_cdf: np.ndarray
    elements: np.ndarray  # Z values
    element_probs: np.ndarray
    repetitions: np.ndarray
    repetitions_cdf: np.ndarray
    site_probs: np.ndarray  # over sites (Wyckoff positions in table order)
    sites: tuple[_Site, ...]


class _LatticeSampler:
    """Gaussian-KDE draws of (a, b, c)/V^(1/3) and angles for one crystal system.

    A KDE draw is a database sample plus N(0, H) noise on the free parameters, with Scott's rule
    H = n^(-2/(d+4)) Cov (Scott, Multivariate Density Estimation, 1992); constrained parameters
    come from the crystal system. Draws with non-positive lengths or an invalid metric are replaced
    by the noise-free database sample, so every draw is a valid cell.
    """

    def __init__(self, samples: np.ndarray, system: str):
        self.system = system
        self.free = LATTICE_FREE_PARAMETERS[system]
        self.samples = np.asarray(samples, np.float64).reshape(-1, 6)
        d = len(self.free)
        if d and len(self.samples) > d + 1:
            cov = np.atleast_2d(np.cov(self.samples[:, self.free], rowvar=False))
            factor = len(self.samples) ** (-1.0 / (d + 4))
            self.chol = np.linalg.cholesky(cov * factor**2 + 1e-12 * np.eye(d))
        else:
            self.chol = np.zeros((d, d))

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """(a, b, c, alpha, beta, gamma) with relative lengths (volume not yet fixed)."""
        params = np.array([1.0, 1.0, 1.0, 90.0, 90.0, *_FIXED_ANGLES.get(self.system, (90.0, 90.0, 90.0))[2:]])
        if len(self.samples) == 0:
            return params
        base = self.samples[int(rng.integers(len(self.samples)))]
        free = np.array(self.free, dtype=int)
        if len(free):
            value = base[free] + self.chol @ rng.standard_normal(len(free))
            candidate = params.copy()
            candidate[free] = value
            if not _valid_cell(candidate):
                value = base[free]
            params[free] = value
        if self.system in ("tetragonal", "trigonal", "hexagonal"):
            params[1] = params[0]
        return params


def _valid_cell(params: np.ndarray) -> bool:
    """Positive lengths and angles that form a cell: 1 - sum cos^2 + 2 prod cos > 0, each angle < sum of others."""
    a, b, c, al, be, ga = params
    if min(a, b, c) <= 0 or not all(0.0 < x < 180.0 for x in (al, be, ga)):
        return False
    if al + be + ga >= 360.0 or al >= be + ga or be >= al + ga or ga >= al + be:
        return False
    ca, cb, cg = (math.cos(math.radians(x)) for x in (al, be, ga))
    return 1.0 - ca * ca - cb * cb - cg * cg + 2.0 * ca * cb * cg > 1e-6


def lattice_matrix(params: np.ndarray, volume: float) -> np.ndarray:
    """Lattice vectors (rows, Angstrom) with the given parameters, rescaled to exactly ``volume``.

    a along x, b in the xy plane (the pymatgen/ITA convention of ``Lattice.from_parameters``):
    V = abc sqrt(1 - cos^2 alpha - cos^2 beta - cos^2 gamma + 2 cos alpha cos beta cos gamma).
    """
    a, b, c, al, be, ga = params
    ca, cb, cg = (math.cos(math.radians(x)) for x in (al, be, ga))
    sg = math.sin(math.radians(ga))
    unit = math.sqrt(1.0 - ca * ca - cb * cb - cg * cg + 2.0 * ca * cb * cg)
    scale = (volume / (a * b * c * unit)) ** (1.0 / 3.0)
    a, b, c = a * scale, b * scale, c * scale
    cx = c * cb
    cy = c * (ca - cb * cg) / sg
    cz = math.sqrt(max(c * c - cx * cx - cy * cy, 0.0))
    return np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [cx, cy, cz]])


class _DensitySampler:
    """Inverse-CDF draws of the denseness factor f from the conditional KDE p(f | V_atoms).

    A 2-D Gaussian KDE (Scott bandwidths) of (log V_atoms, f) is evaluated once on a grid; each
    row is the conditional density of f given log V_atoms at the row's grid value, turned into a
    CDF. A draw interpolates stochastically between the two rows around log V_atoms and inverts
    the CDF: O(log grid) per draw, no rejection loop.
    """

    def __init__(self, samples: np.ndarray, rng: np.random.Generator, n_x: int = 96, n_f: int = 384,
                 max_samples: int = 8000):
        samples = np.asarray(samples, np.float64).reshape(-1, 2)
        samples = samples[np.isfinite(samples).all(1) & (samples[:, 0] > 0) & (samples[:, 1] > 0)]
        if len(samples) < 2:
            raise ConfigError("statistics: need at least 2 (V_atoms, denseness) samples to sample volumes")
        if len(samples) > max_samples:
            samples = samples[rng.choice(len(samples), max_samples, replace=False)]
        x, f = np.log(samples[:, 0]), samples[:, 1]
        factor = len(samples) ** (-1.0 / 6.0)  # Scott, d = 2
        hx, hf = max(x.std() * factor, 1e-3), max(f.std() * factor, 1e-3)
        self.x_grid = np.linspace(x.min() - 2 * hx, x.max() + 2 * hx, n_x)
        self.f_grid = np.linspace(max(f.min() - 3 * hf, 1e-3), f.max() + 3 * hf, n_f)
        wx = np.exp(-0.5 * ((self.x_grid[:, None] - x[None, :]) / hx) ** 2)
        kf = np.exp(-0.5 * ((f[:, None] - self.f_grid[None, :]) / hf) ** 2)
        density = wx @ kf + 1e-300
        # trapezoid rule: cdf[:, j] is the mass below f_grid[j] (a plain cumsum would be the mass
        # below f_grid[j] + step/2 and shift every draw down by half a grid step)
        cdf = np.zeros_like(density)
        cdf[:, 1:] = np.cumsum(0.5 * (density[:, 1:] + density[:, :-1]), axis=1)
        self.cdf = cdf / cdf[:, -1:]

    def draw(self, v_atoms: float, rng: np.random.Generator) -> float:
        pos = np.interp(math.log(v_atoms), self.x_grid, np.arange(len(self.x_grid)))
        row = int(pos) + (rng.random() < pos - int(pos))
        row = min(row, len(self.x_grid) - 1)
        return float(np.interp(rng.random(), self.cdf[row], self.f_grid))


class Generator:
    """Draws synthetic crystals from :class:`~synthxrd.stats.Statistics` (see the module docstring).

    Parameters
    ----------
    statistics : the database statistics; None loads those shipped with the package.
    config : :class:`GeneratorConfig`.

    Examples
    --------
    >>> gen = Generator()
    >>> s = gen.sample(225, rng=np.random.default_rng(0))
    >>> s.properties["spacegroup"]
    225
    """

    def __init__(self, statistics: Statistics | None = None, config: GeneratorConfig | None = None):
        if statistics is None:
            from synthxrd.stats import Statistics

            statistics = Statistics.load()
        self.statistics = statistics
        self.config = config or GeneratorConfig()
        self._tables: dict[int, _GroupTables] = {}
        self._lattice: dict[str, _LatticeSampler] = {}
        #: Crystals rejected by the symmetry check, per intended space group.
        self.symmetry_rejections: Counter[int] = Counter()
        #: Crystals accepted, per space group (denominator of the rejection rates).
        self.accepted: Counter[int] = Counter()
        # sphere volumes with the radii the statistics used for V_atoms
        self._atom_volume = (4.0 / 3.0) * math.pi * np.nan_to_num(np.asarray(self.statistics.radii, float)) ** 3

    # -- classes and prior ----------------------------------------------------------------------
    @cached_property
    def classes(self) -> np.ndarray:
        """Space groups the generator draws from by default: those with >= ``min_count`` structures."""
        classes = self.statistics.represented(self.config.min_count)
        if len(classes) == 0:
            raise ConfigError(f"statistics ({self.statistics.source}): no space group has >= "
                              f"{self.config.min_count} structures; lower min_count")
        return classes

    def prior(self, spacegroups: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(space groups, probabilities) of the label distribution."""
        if spacegroups is None:
            groups = self.classes
        else:
            requested = np.asarray(spacegroups)
            if requested.ndim != 1 or requested.size == 0:
                raise ConfigError(f"spacegroups must be one or more ITA numbers 1..230, got {spacegroups!r}")
            # each value as given (a Python or numpy scalar): 14.7 or True are refused, not truncated
            for sg in spacegroups if isinstance(spacegroups, (list, tuple)) else requested.tolist():
                wyckoff.space_group(sg)
            groups = np.unique(requested.astype(np.int64))
        if self.config.prior == "uniform":
            return groups, np.full(len(groups), 1.0 / len(groups))
        counts = self.statistics.spacegroup_counts()[groups].astype(np.float64)
        if counts.sum() == 0:
            return groups, np.full(len(groups), 1.0 / len(groups))
        return groups, counts / counts.sum()

    # -- per-group tables -----------------------------------------------------------------------
    def _group(self, number: int) -> _GroupTables:
        if number not in self._tables:
            self._tables[number] = self._build_group(number)
        return self._tables[number]

    def _build_group(self, number: int) -> _GroupTables:
        sg = wyckoff.space_group(number)
        stats = self.statistics
        own = int(stats.spacegroup_counts()[number])
        pooled = "none" if own >= self.config.pool_below and own > 0 else "auto"
        kw = {"pooled": pooled, "min_count": max(self.config.pool_below, 1)}
        n_vals, n_probs = stats.n_elements(number, **kw)
        el_vals, el_probs = stats.elements(number, **kw)
        rep_vals, rep_probs = stats.repetitions(number, **kw)
        letters, letter_probs = stats.wyckoff(number, pooled="auto") if own == 0 else stats.wyckoff(number)
        by_letter = dict(zip(letters, letter_probs))
        site_probs = np.array([by_letter.get(wp.letter, 0.0) for wp in sg.wyckoff_positions], np.float64)
        if site_probs.sum() <= 0:
            site_probs[:] = 1.0
        setup_rng = np.random.default_rng(number)  # fixed: coset choice does not depend on the user's rng
        sites = []
        for wp in sg.wyckoff_positions:
            rot, trans = _coset_operations(sg, wp, setup_rng)
            sites.append(_Site(wp.multiplicity, wp.dof, np.asarray(wp.P, np.float64), np.asarray(wp.p, np.float64),
                               rot, trans))
        return _GroupTables(
            number, sg.crystal_system, np.asarray(n_vals), _cdf(n_probs), np.asarray(el_vals),
            np.asarray(el_probs, np.float64), np.asarray(rep_vals), _cdf(rep_probs), site_probs, tuple(sites),
        )

    def _lattice_sampler(self, system: str) -> _LatticeSampler:
        if system not in self._lattice:
            self._lattice[system] = _LatticeSampler(self.statistics.lattice_samples(system), system)
        return self._lattice[system]

    @cached_property
    def _density(self) -> _DensitySampler:
        return _DensitySampler(self.statistics.density_samples(), np.random.default_rng(0))

    def draw_volume(self, v_atoms: float, rng: np.random.Generator) -> float:
        """A cell volume V = f V_atoms, the denseness f drawn from p(f | V_atoms) of the statistics
        (one draw; the caller applies the volume limits)."""
        return self._density.draw(v_atoms, rng) * v_atoms

    def draw_lattice_parameters(self, crystal_system: str, rng: np.random.Generator) -> np.ndarray:
        """Lattice-shape parameters of ``crystal_system`` from the statistics' KDE, for
        :func:`lattice_matrix` (which scales them to a volume)."""
        return self._lattice_sampler(crystal_system).draw(rng)

    # -- sampling -------------------------------------------------------------------------------
    def _draw_sites(self, t: _GroupTables, rng: np.random.Generator) -> list[tuple[int, int]]:
        """(Z, site index) of the asymmetric unit; bounded by the element pool and the site limit."""
        n_el = min(int(t.n_elements[_draw(t.n_elements_cdf, rng)]), len(t.elements))
        elements = rng.choice(t.elements, size=n_el, replace=False, p=t.element_probs)
        probs = t.site_probs.copy()
        sites: list[tuple[int, int]] = []
        for z in elements:
            for _ in range(int(t.repetitions[_draw(t.repetitions_cdf, rng)])):
                total = probs.sum()
                if total <= 0 or len(sites) >= self.config.max_asym_sites:
                    return sites
                k = _draw(_cdf(probs), rng)
                sites.append((int(z), k))
                if t.sites[k].dof == 0:
                    probs[k] = 0.0  # fixed positions at most once
        return sites

    def _attempt(self, number: int, rng: np.random.Generator):
        t = self._group(number)
        sites = self._draw_sites(t, rng)
        if not sites:
            return None
        mult = np.array([t.sites[k].multiplicity for _, k in sites])
        zs = np.array([z for z, _ in sites])
        n_atoms = int(mult.sum())
        v_atoms = float(np.dot(mult, self._atom_volume[zs]))
        if not v_atoms > 0:
            return None
        volume = self.draw_volume(v_atoms, rng)
        if volume > self.config.max_volume or volume < self.config.min_volume_per_atom * n_atoms:
            return None
        lattice = lattice_matrix(self.draw_lattice_parameters(t.crystal_system, rng), volume)
        coords = np.empty((n_atoms, 3))
        numbers = np.empty(n_atoms, np.int64)
        start = 0
        for (z, k), m in zip(sites, mult):
            site = t.sites[k]
            point = site.projection @ rng.random(3) + site.offset
            orbit = site.rotations @ point + site.translations
            coords[start:start + m] = orbit - np.floor(orbit)
            numbers[start:start + m] = z
            start += m
        if self.config.check_symmetry and not self._has_symmetry(number, lattice, coords, numbers):
            return None
        return lattice, coords, numbers

    def _has_symmetry(self, number: int, lattice, coords, numbers) -> bool:
        import spglib

        cell = (lattice, coords, numbers)
        data = spglib.get_symmetry_dataset(cell, symprec=self.config.symprec, angle_tolerance=self.config.angle_tolerance)
        if data is not None and data.number == number:
            return True
        self.symmetry_rejections[number] += 1
        return False

    def _one(self, number: int, rng: np.random.Generator):
        for _ in range(self.config.max_attempts):
            result = self._attempt(number, rng)
            if result is not None:
                self.accepted[number] += 1
                return result
        raise GenerationError(
            f"space group {number}: no valid crystal in {self.config.max_attempts} attempts (volume above "
            f"{self.config.max_volume} A^3, empty asymmetric unit, or symmetry check failing every time)"
        )

    def _spacegroups(self, n: int, rng: np.random.Generator, spacegroups) -> np.ndarray:
        if spacegroups is not None and np.ndim(spacegroups) == 0:
            number = wyckoff.space_group(np.asarray(spacegroups).item()).number  # refuses 14.7, True
            return np.full(n, number, np.int64)
        groups, probs = self.prior(spacegroups)
        return groups[np.minimum(np.searchsorted(_cdf(probs), rng.random(n), side="right"), len(groups) - 1)]

    def sample_batch(self, n: int, rng: np.random.Generator, spacegroups: int | Sequence[int] | None = None) -> CrystalBatch:
        """``n`` crystals as a :class:`~synthxrd.structure.CrystalBatch` (with ``spacegroups`` labels).

        Parameters
        ----------
        n : number of crystals.
        rng : the only source of randomness.
        spacegroups : None (the prior over the classes), one ITA number (all crystals of that group),
            or a sequence of groups (the prior restricted to them).
        """
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
            raise ConfigError(f"number of crystals must be an integer >= 0, got {n!r}")
        labels = self._spacegroups(int(n), rng, spacegroups)
        lattices = np.empty((len(labels), 3, 3))
        coords, numbers, offsets = [], [], np.zeros(len(labels) + 1, np.int64)
        for i, number in enumerate(labels):
            lattice, frac, z = self._one(int(number), rng)
            lattices[i] = lattice
            coords.append(frac)
            numbers.append(z)
            offsets[i + 1] = offsets[i] + len(z)
        frac = np.concatenate(coords) if coords else np.zeros((0, 3))
        z = np.concatenate(numbers) if numbers else np.zeros(0, np.int64)
        return CrystalBatch(lattices, frac, z, np.ones(len(z)), offsets, spacegroups=labels)

    def sample(self, spacegroup: int | None = None, *, rng: np.random.Generator):
        """One crystal as a pymatgen ``Structure`` with ``properties["spacegroup"]`` = intended group."""
        from pymatgen.core import Lattice, Structure

        batch = self.sample_batch(1, rng, spacegroup)
        crystal = batch[0]
        structure = Structure(Lattice(crystal.lattice), crystal.numbers.tolist(), crystal.frac_coords)
        structure.properties["spacegroup"] = int(batch.spacegroups[0])
        return structure

    def symmetry_report(self) -> dict[int, dict[str, float]]:
        """Per space group: accepted crystals, symmetry rejections and the rejection rate."""
        groups = sorted(set(self.accepted) | set(self.symmetry_rejections))
        return {g: {"accepted": self.accepted[g], "rejected": self.symmetry_rejections[g],
                    "rate": self.symmetry_rejections[g] / max(1, self.accepted[g] + self.symmetry_rejections[g])}
                for g in groups}

