"""Tests of synthxrd.generate: fidelity of generated crystals to the statistics at fixed seeds.

The fidelity tests draw a few thousand crystals once per module (about 1 ms each) from the shipped
statistics and compare them with the tables they were drawn from:

- space-group labels vs ``Generator.prior()`` (chi-square);
- number of distinct elements of a frequent group (P2_1/c, 14) vs ``statistics.n_elements(14)``;
- Wyckoff letters of P2_1/c and Fm-3m (read back with spglib) vs ``statistics.wyckoff(sg)`` drawn
  site by site with fixed positions used at most once (the generator's rule);
- denseness f = V / V_atoms vs the conditional KDE p(f | V_atoms) it is drawn from (KS, exact
  reference draws) and vs the database's denseness factors (KS distance bound);
- tetragonal cell shape c / V^(1/3) vs the lattice KDE and vs the database (KS).

Every test prints its statistics (``pytest -s`` shows them). The thresholds (p > 1e-3 for tests of
the generator against the distribution it samples, KS distance < 0.1 against raw database samples,
which a KDE smooths) are explained next to each test.
"""

from __future__ import annotations

import numpy as np
import pytest
import spglib
from scipy import stats as scistats

from synthxrd import generate, wyckoff
from synthxrd.errors import ConfigError
from synthxrd.generate import GenerationError, Generator, GeneratorConfig, lattice_matrix
from synthxrd.stats import CRYSTAL_SYSTEMS, REPRESENTED_MIN_COUNT, Statistics
from synthxrd.structure import CrystalBatch

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:spglib")

P_MIN = 1e-3  # significance level of the goodness-of-fit tests at fixed seeds
SEED = 20240613


# --------------------------------------------------------------------------------------------------
# Fixtures (generated once per module)


@pytest.fixture(scope="session")
def statistics() -> Statistics:
    """The statistics shipped with the package."""
    return Statistics.load()


@pytest.fixture(scope="module")
def generator(statistics) -> Generator:
    return Generator(statistics)


@pytest.fixture(scope="module")
def prior_batch(generator) -> CrystalBatch:
    """4000 crystals from the prior over the represented groups."""
    return generator.sample_batch(4000, np.random.default_rng(SEED))


@pytest.fixture(scope="module")
def p21c_batch(generator) -> CrystalBatch:
    """3000 crystals of P2_1/c (14), the most frequent group of inorganic crystals."""
    return generator.sample_batch(3000, np.random.default_rng(SEED + 1), spacegroups=14)


@pytest.fixture(scope="module")
def tetragonal_batch(generator) -> CrystalBatch:
    """2000 crystals of the represented tetragonal groups."""
    lo, hi = CRYSTAL_SYSTEMS["tetragonal"]
    groups = [int(g) for g in generator.classes if lo <= g <= hi]
    return generator.sample_batch(2000, np.random.default_rng(SEED + 2), spacegroups=groups)


# --------------------------------------------------------------------------------------------------
# Helpers


def pooled_chisquare(observed, expected_probs, min_expected: float = 5.0):
    """Chi-square goodness of fit, pooling the rarest categories until every expected count >= 5.

    Categories with zero probability must not be observed (asserted). Returns scipy's result and
    the number of pooled bins.
    """
    observed = np.asarray(observed, np.float64)
    probs = np.asarray(expected_probs, np.float64)
    assert not np.any(observed[probs == 0]), f"observed impossible categories: {observed[probs == 0]}"
    expected = probs / probs.sum() * observed.sum()
    obs_bins, exp_bins = [], []
    acc_o = acc_e = 0.0
    for i in np.argsort(expected, kind="stable"):
        if expected[i] == 0:
            continue
        acc_o += observed[i]
        acc_e += expected[i]
        if acc_e >= min_expected:
            obs_bins.append(acc_o)
            exp_bins.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0:
        obs_bins[-1] += acc_o
        exp_bins[-1] += acc_e
    return scistats.chisquare(obs_bins, exp_bins), len(obs_bins)


def cell_volumes(batch: CrystalBatch) -> np.ndarray:
    return np.linalg.det(batch.lattices)


def atom_volumes(batch: CrystalBatch, statistics: Statistics) -> np.ndarray:
    """V_atoms = sum over the atoms of the cell of (4/3) pi r^3 with the statistics' radii."""
    spheres = 4.0 / 3.0 * np.pi * np.asarray(statistics.radii, np.float64) ** 3
    return np.add.reduceat(spheres[batch.numbers], batch.offsets[:-1])


def cell_parameters(lattices: np.ndarray) -> np.ndarray:
    """(N, 6): a, b, c, alpha, beta, gamma of lattices with rows a, b, c."""
    lengths = np.linalg.norm(lattices, axis=2)

    def angle(i, j):
        cos = np.sum(lattices[:, i] * lattices[:, j], axis=1) / (lengths[:, i] * lengths[:, j])
        return np.degrees(np.arccos(np.clip(cos, -1, 1)))

    return np.column_stack([lengths, angle(1, 2), angle(0, 2), angle(0, 1)])


def spglib_dataset(batch: CrystalBatch, i: int, symprec: float):
    c = batch[i]
    return spglib.get_symmetry_dataset((c.lattice, c.frac_coords, c.numbers), symprec=symprec)


def spglib_number(batch: CrystalBatch, i: int, symprec: float):
    data = spglib_dataset(batch, i, symprec)
    return None if data is None else int(data.number)


def n_distinct_elements(batch: CrystalBatch) -> np.ndarray:
    return np.array([len(np.unique(batch.numbers[a:b])) for a, b in zip(batch.offsets[:-1], batch.offsets[1:])])


# --------------------------------------------------------------------------------------------------
# Fidelity


def test_spacegroup_frequencies_follow_the_prior(generator, prior_batch):
    groups, probs = generator.prior()
    assert np.isclose(probs.sum(), 1.0) and np.all(probs > 0)
    assert set(np.unique(prior_batch.spacegroups)) <= set(groups.tolist())
    observed = np.array([(prior_batch.spacegroups == g).sum() for g in groups])
    result, bins = pooled_chisquare(observed, probs)
    print(f"\nspace groups: {len(groups)} classes, {len(prior_batch)} crystals, {bins} bins: "
          f"chi2 = {result.statistic:.1f}, p = {result.pvalue:.3g}")
    assert result.pvalue > P_MIN


def test_prior_options(statistics, generator):
    groups, probs = generator.prior()
    counts = statistics.spacegroup_counts()[groups]
    np.testing.assert_allclose(probs, counts / counts.sum())
    assert np.array_equal(groups, statistics.represented(REPRESENTED_MIN_COUNT))
    sub, sub_probs = generator.prior([225, 14, 14])
    assert sub.tolist() == [14, 225]
    np.testing.assert_allclose(sub_probs, counts[np.searchsorted(groups, [14, 225])] /
                               counts[np.searchsorted(groups, [14, 225])].sum())
    uniform = Generator(statistics, GeneratorConfig(prior="uniform"))
    u_groups, u_probs = uniform.prior()
    np.testing.assert_allclose(u_probs, 1.0 / len(u_groups))
    batch = generator.sample_batch(50, np.random.default_rng(0), spacegroups=[221, 225])
    assert set(batch.spacegroups.tolist()) == {221, 225}


def test_number_of_elements_of_p21c(statistics, p21c_batch):
    """n ~ P(n | 14). The generator truncates n to the element pool (irrelevant for 14, which has
    dozens of elements) and a crystal can end early at the site limit or when all positions are
    used (impossible for 14: its general position is never exhausted); volume rejections (whole
    crystal redrawn) favour small n slightly. None of that shows at this sample size."""
    values, probs = statistics.n_elements(14)
    n = n_distinct_elements(p21c_batch)
    assert set(np.unique(n)) <= set(values.tolist())
    observed = np.array([(n == v).sum() for v in values])
    result, bins = pooled_chisquare(observed, probs)
    print(f"\nSG 14 distinct elements ({len(n)} crystals, {bins} bins): observed {observed.tolist()}, "
          f"expected {np.round(probs * len(n)).astype(int).tolist()}: chi2 = {result.statistic:.2f}, "
          f"p = {result.pvalue:.3g}")
    assert result.pvalue > P_MIN


def sequential_wyckoff_expectation(probs, fixed, site_counts, rng, replicates: int = 4000) -> np.ndarray:
    """Expected Wyckoff-letter counts of crystals with ``site_counts`` sites when each site draws a
    position from ``probs`` and a fixed (0-DOF) position, once drawn, is removed from the draw
    (the generator's rule, docs/architecture.md). Monte Carlo with ``replicates`` crystals per site count."""
    probs = np.asarray(probs, np.float64)
    fixed = np.asarray(fixed, bool)
    ks, multiplicity = np.unique(np.asarray(site_counts), return_counts=True)
    expected = np.zeros(len(probs))
    for k, m in zip(ks, multiplicity):
        q = np.tile(probs, (replicates, 1))
        counts = np.zeros(len(probs))
        for _ in range(int(k)):
            total = q.sum(axis=1)
            alive = np.flatnonzero(total > 0)
            cdf = np.cumsum(q[alive], axis=1) / total[alive, None]
            j = np.minimum((cdf < rng.random(len(alive))[:, None]).sum(axis=1), len(probs) - 1)
            counts += np.bincount(j, minlength=len(probs))
            hit = fixed[j]
            q[alive[hit], j[hit]] = 0.0
        expected += m * counts / replicates
    return expected


def _wyckoff_readback(batch: CrystalBatch, sg: int, n: int) -> list[list[str] | None]:
    """Wyckoff letters of the sites of each of the first ``n`` crystals (None where the crystal is
    not of group ``sg``), read back with spglib (the program that labelled the database's sites)."""
    out: list[list[str] | None] = []
    for i in range(n):
        data = spglib_dataset(batch, i, 1e-5)
        if data is None or data.number != sg:
            out.append(None)
        else:
            out.append([data.wyckoffs[k] for k in np.unique(np.asarray(data.crystallographic_orbits))])
    return out


def _check_wyckoff(statistics, per_crystal: list[list[str] | None], sg: int, seed: int):
    table_letters, probs = statistics.wyckoff(sg)
    table_letters = [str(x) for x in table_letters]
    fixed = [w.dof == 0 for w in wyckoff.space_group(sg).wyckoff_positions]
    assert table_letters == [w.letter for w in wyckoff.space_group(sg).wyckoff_positions]
    n = len(per_crystal)
    found = [x for x in per_crystal if x is not None]
    other = n - len(found)
    assert other <= 0.02 * n
    letters = [x for crystal in found for x in crystal]
    site_counts = [len(crystal) for crystal in found]
    observed = np.array([letters.count(x) for x in table_letters])
    assert observed.sum() == len(letters)
    expected = sequential_wyckoff_expectation(probs, fixed, site_counts, np.random.default_rng(seed))
    result, bins = pooled_chisquare(observed, expected)
    naive, naive_bins = pooled_chisquare(observed, probs)
    print(f"\nSG {sg} Wyckoff letters {table_letters} (fixed: "
          f"{[x for x, f in zip(table_letters, fixed) if f]}; {len(letters)} sites of {n - other} crystals):\n"
          f"  observed {observed.tolist()}\n  sequential model {np.round(expected).astype(int).tolist()}: "
          f"chi2 = {result.statistic:.2f} ({bins} bins), p = {result.pvalue:.3g}\n"
          f"  statistics.wyckoff {np.round(probs * observed.sum()).astype(int).tolist()}: "
          f"chi2 = {naive.statistic:.2f} ({naive_bins} bins), p = {naive.pvalue:.3g}")
    return result, naive


def test_wyckoff_letters_of_p21c(statistics, p21c_batch):
    """Wyckoff letters of P2_1/c, read back with spglib, vs statistics.wyckoff(14) drawn site by site
    with fixed positions used at most once. The general position 4e carries ~97 % of the sites;
    the inversion centres 2a-2d are fixed, and the at-most-once rule lowers their frequencies by a
    few per cent (the expectation accounts for it; plain statistics.wyckoff(14) is printed too)."""
    result, _ = _check_wyckoff(statistics, _wyckoff_readback(p21c_batch, 14, 1500), 14, SEED + 13)
    assert result.pvalue > P_MIN


def test_wyckoff_letters_of_fm3m(statistics, generator):
    """Fm-3m (225): most database sites are on the fixed positions 4a, 4b, 8c, 24d. A generated
    crystal uses each of them at most once, so their frequencies fall clearly below
    statistics.wyckoff(225) (the variable positions make up the difference; reference behaviour):
    the letters follow the sequential model, not the plain table."""
    batch = generator.sample_batch(150, np.random.default_rng(SEED + 12), spacegroups=225)
    per_crystal = _wyckoff_readback(batch, 225, len(batch))
    fixed = {w.letter for w in wyckoff.space_group(225).wyckoff_positions if w.dof == 0}
    for i, found in enumerate(per_crystal):
        assert found is None or all(found.count(x) <= 1 for x in fixed), f"crystal {i}: fixed position used twice"
    result, naive = _check_wyckoff(statistics, per_crystal, 225, SEED + 14)
    assert result.pvalue > P_MIN
    assert naive.pvalue < result.pvalue


def _kde_reference_denseness(statistics, v_atoms, n_atoms, rng, config: GeneratorConfig):
    """Exact draws of f from the conditional Gaussian KDE p(f | V_atoms) of the generator's docstring.

    Kernel on (log V_atoms, f) over all database structures with the generator's Scott bandwidths
    (factor n^(-1/6), n capped at the 8000 structures the generator keeps; its random subset is an
    approximation of the full KDE), truncated to the volumes the generator accepts
    (0.75 A^3 per atom <= f V_atoms <= 7000 A^3): the generator redraws the whole crystal when the
    volume is out of range, so conditional on V_atoms the accepted f follow the truncated KDE.
    Returns the draws and the bandwidths (h_logV, h_f).
    """
    samples = statistics.density_samples()
    x, f = np.log(samples[:, 0]), samples[:, 1]
    factor = min(len(f), 8000) ** (-1.0 / 6.0)
    hx, hf = x.std() * factor, f.std() * factor
    lo = np.maximum(config.min_volume_per_atom * n_atoms / v_atoms, 1e-3)
    hi = config.max_volume / v_atoms
    out = np.full(len(v_atoms), np.nan)
    for start in range(0, len(v_atoms), 500):
        sl = slice(start, start + 500)
        cdf = np.cumsum(np.exp(-0.5 * ((np.log(v_atoms[sl])[:, None] - x[None, :]) / hx) ** 2), axis=1)
        cdf /= cdf[:, -1:]
        todo = np.arange(start, min(start + 500, len(v_atoms)))
        while len(todo):  # rejection: redraw the out-of-range ones
            j = (cdf[todo - start] < rng.random(len(todo))[:, None]).sum(axis=1).clip(max=len(f) - 1)
            candidate = f[j] + hf * rng.standard_normal(len(todo))
            ok = (candidate >= lo[todo]) & (candidate <= hi[todo])
            out[todo[ok]] = candidate[ok]
            todo = todo[~ok]
    return out, (hx, hf)


@pytest.fixture(scope="module")
def denseness(statistics, generator, prior_batch):
    """(V_atoms, f, KDE reference draws of f at the same V_atoms, bandwidths) of the prior batch."""
    v_atoms = atom_volumes(prior_batch, statistics)
    f = cell_volumes(prior_batch) / v_atoms
    reference, bandwidths = _kde_reference_denseness(statistics, v_atoms, np.diff(prior_batch.offsets),
                                                     np.random.default_rng(SEED + 3), generator.config)
    return v_atoms, f, reference, bandwidths


def test_denseness_follows_the_conditional_kde(denseness):
    """f = V / V_atoms of the generated crystals vs exact draws from the KDE at their V_atoms."""
    _, f, reference, (hx, hf) = denseness
    result = scistats.ks_2samp(f, reference)
    print(f"\ndenseness vs KDE reference draws at the same V_atoms ({len(f)} crystals; bandwidths "
          f"log V_atoms {hx:.3f}, f {hf:.3f}): D = {result.statistic:.4f}, p = {result.pvalue:.3g}")
    assert result.pvalue > P_MIN


def test_denseness_close_to_the_database(statistics, denseness):
    """f vs the database's denseness factors, both restricted to the interquartile range of the
    database's V_atoms (generated crystals have larger V_atoms than the database on average, and
    f depends on V_atoms; in this range the 7000 A^3 cap removes nothing).

    Not a test of equality: the KDE convolves f with a Gaussian of Scott's bandwidth (~0.15, set
    by the long tail of f, up to ~30), which visibly widens the core of the distribution (database
    5-95 % ~0.6-2.3) and shifts its median; the exact KDE draws are as far from the database as the
    generated crystals (printed), so the bound is on the KS distance, not the p-value."""
    v_atoms, f, reference, _ = denseness
    samples = statistics.density_samples()
    lo, hi = np.percentile(samples[:, 0], [25, 75])
    in_bin = (v_atoms >= lo) & (v_atoms <= hi)
    gen = f[in_bin]
    db = samples[(samples[:, 0] >= lo) & (samples[:, 0] <= hi), 1]
    result = scistats.ks_2samp(gen, db)
    kde = scistats.ks_2samp(reference[in_bin], db)
    marginal = scistats.ks_2samp(f, samples[:, 1])
    print(f"\ndenseness vs database, V_atoms in [{lo:.0f}, {hi:.0f}] A^3 ({len(gen)} vs {len(db)}): "
          f"D = {result.statistic:.4f}, p = {result.pvalue:.3g} (KDE draws vs database: D = {kde.statistic:.4f}); "
          f"all V_atoms: D = {marginal.statistic:.4f}, p = {marginal.pvalue:.3g}; medians {np.median(gen):.3f} "
          f"vs {np.median(db):.3f}; 1-99 % generated {np.percentile(f, 1):.2f}-{np.percentile(f, 99):.2f}, "
          f"database {np.percentile(samples[:, 1], 1):.2f}-{np.percentile(samples[:, 1], 99):.2f}")
    assert result.statistic < 0.1
    assert abs(np.median(gen) / np.median(db) - 1) < 0.1


def test_tetragonal_cell_shape(statistics, generator, tetragonal_batch):
    """c / V^(1/3) of tetragonal cells vs (1) exact draws of the lattice KDE (database cell plus
    N(0, Scott^2 Cov) noise on (a, c), rescaled to the cell volume) and (2) the database cells."""
    params = cell_parameters(tetragonal_batch.lattices)
    volumes = cell_volumes(tetragonal_batch)
    np.testing.assert_allclose(params[:, 0], params[:, 1], rtol=1e-12)
    np.testing.assert_allclose(params[:, 3:], 90.0, atol=1e-9)
    shape = params[:, 2] / np.cbrt(volumes)

    samples = statistics.lattice_samples("tetragonal")
    rng = np.random.default_rng(SEED + 4)
    free = samples[:, [0, 2]]
    chol = np.linalg.cholesky(np.cov(free, rowvar=False) * len(free) ** (-2.0 / 6.0))
    base = free[rng.integers(len(free), size=20000)]
    drawn = base + rng.standard_normal((len(base), 2)) @ chol.T
    bad = (drawn <= 0).any(axis=1)
    drawn[bad] = base[bad]
    reference = drawn[:, 1] / np.cbrt(drawn[:, 0] ** 2 * drawn[:, 1])
    vs_kde = scistats.ks_2samp(shape, reference)
    vs_db = scistats.ks_2samp(shape, samples[:, 2])
    print(f"\ntetragonal c/V^(1/3) ({len(shape)} crystals): vs lattice KDE D = {vs_kde.statistic:.4f}, "
          f"p = {vs_kde.pvalue:.3g}; vs database ({len(samples)} cells) D = {vs_db.statistic:.4f}, "
          f"p = {vs_db.pvalue:.3g}")
    assert vs_kde.pvalue > P_MIN
    assert vs_db.statistic < 0.1


# --------------------------------------------------------------------------------------------------
# Symmetry


def test_every_spacegroup_with_symmetry_check(statistics, generator):
    """All 230 groups can be generated when forced; with the check every crystal has exactly the
    intended group at symprec 1e-8; without it, most do (rare groups borrow tables and can end up
    with only special positions, i.e. higher symmetry)."""
    checked = Generator(statistics, GeneratorConfig(check_symmetry=True))
    rng = np.random.default_rng(SEED + 5)
    unchecked_match, unchecked_total = 0, 0
    mismatched_groups = []
    for sg in range(1, 231):
        batch = checked.sample_batch(3, rng, spacegroups=sg)
        assert batch.spacegroups.tolist() == [sg] * 3
        for i in range(3):
            assert spglib_number(batch, i, 1e-8) == sg, f"space group {sg}: crystal {i}"
        plain = generator.sample_batch(3, rng, spacegroups=sg)
        found = [spglib_number(plain, i, 1e-5) for i in range(3)]
        unchecked_match += sum(n == sg for n in found)
        unchecked_total += 3
        if any(n != sg for n in found):
            mismatched_groups.append(sg)
    report = checked.symmetry_report()
    assert set(report) == set(range(1, 231))
    for sg, entry in report.items():
        assert isinstance(sg, int) and entry["accepted"] == 3
        assert entry["rate"] == pytest.approx(entry["rejected"] / (entry["rejected"] + 3))
        assert 0 <= entry["rate"] < 1
    rejected = sum(e["rejected"] for e in report.values())
    worst = sorted(report.items(), key=lambda t: -t[1]["rate"])[:8]
    print(f"\nforced groups, no check: {unchecked_match}/{unchecked_total} match at symprec 1e-5 "
          f"({len(mismatched_groups)} groups with a mismatch: {mismatched_groups})")
    print(f"forced groups, check: {rejected} rejections for 690 crystals; highest rates "
          + ", ".join(f"{sg}: {e['rate']:.2f}" for sg, e in worst))
    assert unchecked_match / unchecked_total >= 0.8


def test_symmetry_of_prior_crystals(statistics, generator, prior_batch):
    """Without the check, crystals from the prior almost always have the intended group; with the
    check the rejection rates of the most frequent groups are small."""
    n = 500
    found = np.array([spglib_number(prior_batch, i, 1e-5) or 0 for i in range(n)])
    labels = prior_batch.spacegroups[:n]
    agreement = float(np.mean(found == labels))
    wrong = sorted({(int(a), int(b)) for a, b in zip(labels, found) if a != b})
    print(f"\nprior crystals, no check: {agreement:.1%} of {n} match at symprec 1e-5 "
          f"(intended -> found: {wrong})")
    assert agreement >= 0.95

    checked = Generator(statistics, GeneratorConfig(check_symmetry=True))
    batch = checked.sample_batch(1000, np.random.default_rng(SEED + 6))
    for i in range(0, len(batch), 10):
        assert spglib_number(batch, i, 1e-8) == batch.spacegroups[i]
    report = checked.symmetry_report()
    groups, counts = np.unique(batch.spacegroups, return_counts=True)
    for g, c in zip(groups, counts):
        assert report[int(g)]["accepted"] == c
    top = [int(g) for g in groups[np.argsort(-counts, kind="stable")[:10]]]
    total_rejected = sum(e["rejected"] for e in report.values())
    print(f"prior crystals, check: {total_rejected} rejections for {len(batch)} crystals; most frequent groups "
          + ", ".join(f"{g}: {report[g]['rejected']}/{report[g]['accepted'] + report[g]['rejected']}"
                      for g in top)
          + "; groups with rejections " + ", ".join(f"{g}: {e['rejected']}/{e['accepted'] + e['rejected']}"
                                                    for g, e in report.items() if e["rejected"]))
    assert total_rejected / (total_rejected + len(batch)) < 0.05


# --------------------------------------------------------------------------------------------------
# Cells and volumes


def test_cell_volume_is_the_sampled_volume(statistics, monkeypatch):
    """The volume passed to lattice_matrix is exactly f * V_atoms, V_atoms recomputed from the
    atoms and the statistics' radii, and the returned cell has exactly that volume."""
    gen = Generator(statistics)
    draws: list[tuple[float, float]] = []
    requested: list[float] = []
    sampler = gen._density
    original_draw = sampler.draw
    original_matrix = generate.lattice_matrix

    def draw(v_atoms, rng):
        f = original_draw(v_atoms, rng)
        draws.append((v_atoms, f))
        return f

    def matrix(params, volume):
        requested.append((draws[-1], volume))
        return original_matrix(params, volume)

    monkeypatch.setattr(sampler, "draw", draw)
    monkeypatch.setattr(generate, "lattice_matrix", matrix)
    batch = gen.sample_batch(300, np.random.default_rng(SEED + 7))
    assert len(requested) == len(batch)
    v_atoms = np.array([va for (va, _), _ in requested])
    f = np.array([ff for (_, ff), _ in requested])
    volume = np.array([v for _, v in requested])
    np.testing.assert_allclose(volume, f * v_atoms, rtol=1e-15)
    np.testing.assert_allclose(cell_volumes(batch), volume, rtol=1e-9)
    np.testing.assert_allclose(atom_volumes(batch, statistics), v_atoms, rtol=1e-12)


def test_lattice_matrix_has_the_requested_volume_and_parameters():
    rng = np.random.default_rng(SEED + 8)
    checked = 0
    while checked < 500:
        params = np.concatenate([rng.uniform(0.3, 3.0, 3), rng.uniform(30, 150, 3)])
        if not generate._valid_cell(params):
            continue
        volume = float(np.exp(rng.uniform(np.log(5), np.log(7000))))
        lattice = lattice_matrix(params, volume)
        assert abs(np.linalg.det(lattice) - volume) <= 1e-9 * volume
        got = cell_parameters(lattice[None])[0]
        np.testing.assert_allclose(got[3:], params[3:], atol=1e-7)
        np.testing.assert_allclose(got[:3] / got[0], params[:3] / params[0], rtol=1e-9)
        checked += 1
    for params in ([1, 1, 1, 90, 90, 90], [1, 1, 1.6, 90, 90, 120], [1, 1.2, 0.8, 90, 107, 90]):
        lattice = lattice_matrix(np.array(params, float), 1234.5)
        assert np.linalg.det(lattice) == pytest.approx(1234.5, rel=1e-12)


def test_generated_cells_are_valid(statistics, generator, prior_batch):
    config = generator.config
    volumes = cell_volumes(prior_batch)
    n_atoms = np.diff(prior_batch.offsets)
    params = cell_parameters(prior_batch.lattices)
    assert np.all(volumes > 0)
    assert volumes.max() <= config.max_volume * (1 + 1e-12)
    assert np.all(volumes >= config.min_volume_per_atom * n_atoms)
    assert np.all(params[:, :3] > 0)
    assert np.all((params[:, 3:] > 0) & (params[:, 3:] < 180))
    assert np.all(params[:, 3:].sum(axis=1) < 360)
    assert np.all((prior_batch.frac_coords >= 0) & (prior_batch.frac_coords < 1))
    assert np.all(prior_batch.occupancies == 1)
    assert np.all(n_atoms >= 1)
    # f within the range of the denseness grid the sampler inverts
    f = volumes / atom_volumes(prior_batch, statistics)
    grid = generator._density.f_grid
    assert np.all((f >= grid[0] * (1 - 1e-12)) & (f <= grid[-1] * (1 + 1e-12)))
    # lattice constraints of each crystal system
    for system, (lo, hi) in CRYSTAL_SYSTEMS.items():
        p = params[(prior_batch.spacegroups >= lo) & (prior_batch.spacegroups <= hi)]
        if system in ("tetragonal", "trigonal", "hexagonal", "cubic"):
            np.testing.assert_allclose(p[:, 1], p[:, 0], rtol=1e-9)
        if system == "cubic":
            np.testing.assert_allclose(p[:, 2], p[:, 0], rtol=1e-9)
        if system in ("orthorhombic", "tetragonal", "cubic"):
            np.testing.assert_allclose(p[:, 3:], 90.0, atol=1e-8)
        if system in ("trigonal", "hexagonal"):
            np.testing.assert_allclose(p[:, 3:], np.broadcast_to([90.0, 90.0, 120.0], p[:, 3:].shape), atol=1e-8)
        if system == "monoclinic":
            np.testing.assert_allclose(p[:, [3, 5]], 90.0, atol=1e-8)
    print(f"\ncells: volume {volumes.min():.1f}-{volumes.max():.1f} A^3, atoms per cell {n_atoms.min()}-"
          f"{n_atoms.max()} (median {np.median(n_atoms):.0f}), f {f.min():.3f}-{f.max():.3f}")


def test_asymmetric_unit_limit(statistics, monkeypatch):
    """At most max_asym_sites sites per crystal: counted on the draws (default 100) and read back
    with spglib for a small limit."""
    gen = Generator(statistics)
    sizes: list[int] = []
    original = gen._draw_sites

    def draw_sites(t, rng):
        sites = original(t, rng)
        sizes.append(len(sites))
        return sites

    monkeypatch.setattr(gen, "_draw_sites", draw_sites)
    gen.sample_batch(300, np.random.default_rng(SEED + 9))
    assert 0 < max(sizes) <= 100

    small = Generator(statistics, GeneratorConfig(max_asym_sites=2))
    batch = small.sample_batch(100, np.random.default_rng(SEED + 10))
    for i in range(len(batch)):
        data = spglib_dataset(batch, i, 1e-5)
        assert len(np.unique(np.asarray(data.crystallographic_orbits))) <= 2
    print(f"\nasymmetric-unit sites per crystal (300 from the prior): max {max(sizes)}, "
          f"mean {np.mean(sizes):.1f}")


# --------------------------------------------------------------------------------------------------
# API: determinism, errors


def test_same_seed_same_batch(statistics, generator):
    a = generator.sample_batch(40, np.random.default_rng(7))
    b = Generator(statistics).sample_batch(40, np.random.default_rng(7))
    c = generator.sample_batch(40, np.random.default_rng(8))
    for name in ("lattices", "frac_coords", "numbers", "occupancies", "offsets", "spacegroups"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.spacegroups, c.spacegroups) or not np.array_equal(a.lattices, c.lattices)
    forced_a = generator.sample_batch(5, np.random.default_rng(3), spacegroups=62)
    forced_b = generator.sample_batch(5, np.random.default_rng(3), spacegroups=62)
    assert np.array_equal(forced_a.frac_coords, forced_b.frac_coords)
    assert np.array_equal(forced_a.lattices, forced_b.lattices)
    assert len(generator.sample_batch(0, np.random.default_rng(0))) == 0


def test_sample_returns_a_structure(generator):
    from pymatgen.core import Structure

    s = generator.sample(225, rng=np.random.default_rng(11))
    assert isinstance(s, Structure)
    assert s.properties["spacegroup"] == 225
    assert s.lattice.volume <= 7000
    assert s.get_space_group_info(symprec=1e-5)[1] == 225
    t = generator.sample(rng=np.random.default_rng(12))
    assert t.properties["spacegroup"] in generator.classes.tolist()


@pytest.mark.parametrize("rng", [0, None, np.random.RandomState(0), "seed"])
def test_invalid_rng(generator, rng):
    with pytest.raises(ConfigError, match=type(rng).__name__):
        generator.sample_batch(2, rng)
    with pytest.raises(ConfigError, match="numpy.random.Generator"):
        generator.sample(225, rng=rng)


@pytest.mark.parametrize("sg", [0, 231, -5])
def test_invalid_spacegroup(generator, sg):
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=str(sg)):
        generator.sample_batch(2, rng, spacegroups=sg)
    with pytest.raises(ConfigError, match=str(sg)):
        generator.sample_batch(2, rng, spacegroups=[14, sg])
    with pytest.raises(ConfigError, match=str(sg)):
        generator.sample(sg, rng=rng)


@pytest.mark.parametrize("spacegroups, message", [
    (14.5, "14.5"), (True, "True"), ("225", "'225'"), ([14, 62.5], "62.5"), ([], r"\[\]"), ([[14]], r"\[\[14\]\]"),
])
def test_non_integer_spacegroups_are_refused(generator, spacegroups, message):
    """No silent truncation (14.5 -> 14) or bool -> 1, no ZeroDivisionError for an empty list."""
    with pytest.raises(ConfigError, match=message):
        generator.sample_batch(2, np.random.default_rng(0), spacegroups=spacegroups)


@pytest.mark.parametrize("n", [-1, 2.0, "3", True])
def test_invalid_number_of_crystals(generator, n):
    with pytest.raises(ConfigError, match="number of crystals"):
        generator.sample_batch(n, np.random.default_rng(0))


@pytest.mark.parametrize("kwargs", [{"prior": "flat"}, {"max_attempts": 0}, {"max_asym_sites": 0},
                                    {"min_count": 0}, {"max_volume": 0.0}, {"min_volume_per_atom": -1.0}])
def test_invalid_config(kwargs):
    with pytest.raises(ConfigError):
        GeneratorConfig(**kwargs)


def test_generation_error_when_impossible(statistics):
    gen = Generator(statistics, GeneratorConfig(max_volume=1.0, max_attempts=20))
    with pytest.raises(GenerationError, match=r"space group 14\b.*20 attempts"):
        gen.sample_batch(1, np.random.default_rng(0), spacegroups=14)
    assert issubclass(GenerationError, RuntimeError)


def test_no_represented_groups(statistics):
    gen = Generator(statistics, GeneratorConfig(min_count=10**9))
    with pytest.raises(ConfigError, match="min_count"):
        gen.sample_batch(1, np.random.default_rng(0))
    # forcing a group still works without classes
    assert gen.sample_batch(1, np.random.default_rng(0), spacegroups=225).spacegroups.tolist() == [225]


def test_wyckoff_tables_used_by_the_generator(generator):
    """The sites of a group are its Wyckoff positions with the table's multiplicities, and the coset
    operations give orbits of the right size for random points."""
    rng = np.random.default_rng(SEED + 11)
    for number in (2, 14, 62, 139, 166, 194, 225, 227):
        tables = generator._group(number)
        positions = wyckoff.space_group(number).wyckoff_positions
        assert [s.multiplicity for s in tables.sites] == [w.multiplicity for w in positions]
        for site, wp in zip(tables.sites, positions):
            point = site.projection @ rng.random(3) + site.offset
            orbit = site.rotations @ point + site.translations
            assert len(orbit) == wp.multiplicity
            assert len(wyckoff.orbit(wyckoff.space_group(number), point)) == wp.multiplicity
        assert np.all(tables.site_probs >= 0) and tables.site_probs.sum() > 0
