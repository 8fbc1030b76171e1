"""Fit the fusion rule of a network and a library (:mod:`synthxrd.match.fusion`) on simulated patterns.

Patterns: augmented patterns (an :mod:`synthxrd.augment` preset; ``calibration`` by default: peak
shapes, K-alpha2, shifts, texture, Debye-Waller, background, noise and impurities, without the
cropping of ``default``; a preset that crops has each pattern searched on its own scan window,
:func:`scan_window`, as the predictor searches a measured file; docs/search_match.md) of structures
of the held-out part of the prototype split (the
calibration part where the split has one, else the test part), never of the statistics part (the
network's training crystals), with their lattice strained (isotropic scale
U(0.97, 1.03) and +-1 % per axis: DFT cells, thermal expansion, solid solutions):

* ``n_library`` of them searched against the whole library, which holds them,
* ``n_held_out`` others searched with their part left out of the library
  (:meth:`~synthxrd.match.ReferenceLibrary.without_part`: by id and by prototype, in every source),
* ``n_isotype`` others (where the library has them) searched with only their own phase left out (every
  entry of its duplicate group), while other members of their prototype stay: the measured mineral
  that the library knows only through isotypes of another composition or cell, whose peaks lie near
  but not on the library's,
* ``n_thin_film`` others rendered as thin films are measured (augmentation preset ``thin_film``: strong
  preferred orientation, a short scan, few lines left) and searched on their own scan window, half
  against the whole library and half with their part left out: patterns far from the library's
  domain, where a confident wrong match must not override a better answer,
* ``n_cropped`` others with the full ``default`` augmentation (the measurement window of stage 6
  included), searched on their windows and split like the films: scans as a lab measures them,

so that the rule learns "the library knows it", "it knows its structure type" and "nobody knows
it". The parameters maximise the likelihood of the true space group (:meth:`FusionRule.fit`); the
rule is bound to the network's weights and to the library (:meth:`FusionRule.bind`). Measured
patterns (rruff_dev, XRED) are never used. ``synthxrd export --library`` runs it; so does
``scripts/fit_fusion.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.match.fusion import FusionRule, match_table

__all__ = ["fit_fusion", "read_crystals", "strained", "isotype_rows", "scan_window", "DEFAULT_SEED"]

DEFAULT_SEED = 20261130
#: Strain of the library structures' cells (relative): measured cells differ from the library's.
ISOTROPIC_STRAIN = 0.03
AXIS_STRAIN = 0.01
#: Matches per fit pattern (as many as the predictor weighs).
FIT_MATCHES = 50
_BATCH = 64


def _name(source: str | None) -> str:
    """A file's name (not this machine's folders) for the rule's metadata; shipped things as they are."""
    return "shipped" if not source else source if source.startswith("shipped") else Path(source).name


def strained(crystal, rng: np.random.Generator):
    """``crystal`` with its cell scaled by U(1 - 0.03, 1 + 0.03) x U(0.99, 1.01) per axis."""
    from synthxrd.structure import Crystal

    factors = rng.uniform(1 - ISOTROPIC_STRAIN, 1 + ISOTROPIC_STRAIN) * rng.uniform(1 - AXIS_STRAIN, 1 + AXIS_STRAIN, 3)
    return Crystal(crystal.lattice * factors[:, None], crystal.frac_coords, crystal.numbers, crystal.occupancies)


def scan_window(pattern) -> tuple[int, int]:
    """[lo, hi) of the points a simulated scan covers on its grid (its first to its last positive point;
    the whole grid if none): a cropped pattern is 0 outside its window (:mod:`synthxrd.augment`, stage 6),
    and the predictor searches a measured pattern on the points its file covers."""
    covered = np.flatnonzero(np.asarray(pattern) > 0)
    return (int(covered[0]), int(covered[-1]) + 1) if covered.size else (0, int(np.size(pattern)))


def isotype_rows(library, split) -> np.ndarray:
    """(N,) bool: the library entries whose prototype (the split's, by id, else the library's proxy) has
    members of another phase (duplicate group, :attr:`~synthxrd.match.ReferenceLibrary.groups`) in the
    library: with its own phase left out, the library still knows the entry's structure type."""
    of_id = dict(zip(split.ids.tolist(), split.prototypes.tolist()))
    proto = np.array([of_id.get(i, p) for i, p in zip(library.ids.tolist(), library.prototypes.tolist())], dtype=object)
    phases: dict = {}
    for p, _ in {(p, g) for p, g in zip(proto.tolist(), library.groups.tolist()) if p}:
        phases[p] = phases.get(p, 0) + 1
    return np.array([phases.get(p, 0) >= 2 for p in proto.tolist()], bool)


def _rendered(crystals: list, config, rng: np.random.Generator, grid) -> np.ndarray:
    """Augmented patterns (N, grid.n) of ``crystals``, rendered in batches."""
    from synthxrd.augment import augmented_patterns
    from synthxrd.structure import CrystalBatch

    return np.concatenate([augmented_patterns(CrystalBatch.from_crystals(crystals[a:a + _BATCH]), config, rng, grid=grid)
                           for a in range(0, len(crystals), _BATCH)])


def read_crystals(sources: Sequence[str | Path], ids: Sequence[str]) -> dict:
    """{id: Crystal} of the structures ``ids`` found in ``sources`` (CIF folders, tar archives, AMCSD databases)."""
    from synthxrd import stats
    from synthxrd.structure import Crystal

    out = {}
    texts = (pair for source in sources for pair in stats.iter_cif_texts(str(source), ids=list(ids)))
    for ident, text in texts:
        lattice, positions, species = stats.parse_cif(text)
        counts = [len(s) for s in species]
        out[ident] = Crystal(np.asarray(lattice, float), np.repeat(np.asarray(positions, float), counts, axis=0),
                             np.array([z for s in species for z, _ in s]),
                             np.array([o for s in species for _, o in s], float))
    return out


def fit_fusion(predictor, library, sources: Sequence[str | Path], *, split=None, part: str | None = None,
               n_library: int = 1000, n_held_out: int = 1000, seed: int = DEFAULT_SEED, augment: str = "calibration",
               n_isotype: int = 300, n_thin_film: int = 300, n_cropped: int = 0, form: str = "mixture", refine=True,
               save_data: str | Path | None = None) -> FusionRule:
    """The fusion rule of ``predictor``'s network and ``library``, fitted and bound to both.

    Parameters
    ----------
    predictor : :class:`synthxrd.predict.Predictor` (its network is used; its library is not).
    library : :class:`~synthxrd.match.ReferenceLibrary` the rule is for (e.g. the default library).
    sources : the library's structures (CIF folders, tar archives or AMCSD databases).
    split : prototype split (:func:`synthxrd.split.load_split`; default the shipped one).
    part : the held-out part (default ``"calibration"`` where the split has one, else ``"test"``).
    n_library, n_held_out : patterns of known structures and of held-out ones.
    n_isotype : patterns of held-out-part structures searched with only their own phase left out; at
        most as many as the part has structures with an isotype of another phase in the library
        (:func:`isotype_rows`). They weigh in the mixture's fit but not in that of ``known`` (the
        probability that the library holds the structure, fitted on equal numbers of known and
        held-out patterns).
    n_thin_film : patterns of other held-out-part structures rendered with the ``thin_film`` preset
        (:data:`synthxrd.augment.PRESETS`) and searched on their scan window (:func:`scan_window`), the
        first half against the whole library, the rest with their part left out. Like the isotypes
        they weigh in the mixture's fit, not in that of ``known``.
    n_cropped : patterns of other held-out-part structures rendered with the full ``default``
        augmentation (cropped scans, searched on their windows), split and weighed like the thin films
        (0 by default: 1,000 of them changed the development figures by noise, docs/search_match.md).
    form : ``mixture`` or ``stacking`` (:class:`~synthxrd.match.fusion.FusionRule`).
    refine : the search's best candidates refined and re-ranked, as the predictor then does
        (``search(refine=...)``: True, the default, or a :class:`~synthxrd.match.rerank.RerankSettings`;
        False: the search's scores alone); the rule then weighs the refinement's evidence
        (:attr:`FusionRule.refined`).
    save_data : also write the fit data (network, match scores and groups) to this NPZ.

    Returns
    -------
    FusionRule with ``metadata``: what it was fitted on, the seed, and ``fit_report`` (network,
    search and fused metrics on both kinds of patterns).
    """
    from synthxrd import __version__
    from synthxrd.augment import augment_config
    from synthxrd.evaluate import metrics
    from synthxrd.simulate.common import Grid
    from synthxrd.split import load_split

    if n_library < 1 or n_held_out < 1 or min(n_isotype, n_thin_film, n_cropped) < 0:
        raise ConfigError(f"fusion fit: need >= 1 pattern of known and of held-out structures and >= 0 of isotypes, "
                          f"thin films and cropped scans, got {n_library}, {n_held_out}, {n_isotype}, {n_thin_film} "
                          f"and {n_cropped}")
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    split = load_split(split) if split is None or isinstance(split, (str, Path)) else split
    part = part or ("calibration" if "calibration" in set(split.parts.tolist()) else "test")
    fit_library = library.without_part(split, part)
    held = np.isin(library.ids, split.ids_of(part))
    if held.sum() < n_library + n_held_out:
        raise DataError(f"fusion fit: {library.label} has {int(held.sum())} structures of the {part} part; "
                        f"asked for {n_library} + {n_held_out}")
    chosen = rng.choice(library.ids[held], n_library + n_held_out, replace=False).tolist()
    known, unknown = chosen[:n_library], chosen[n_library:]
    eligible = library.ids[isotype_rows(library, split) & held & ~np.isin(library.ids, chosen)]
    isotypes = rng.choice(eligible, min(n_isotype, len(eligible)), replace=False).tolist()
    # thin films and cropped scans: other structures, each kind from a stream of its own (the patterns
    # above stay as they are without them)
    extras: dict[str, tuple] = {}
    taken = chosen + isotypes
    for (preset, n), stream in zip({"thin_film": n_thin_film, "default": n_cropped}.items(),
                                   np.random.SeedSequence(seed).spawn(2)):
        extra_rng = np.random.default_rng(stream)
        pool = library.ids[held & ~np.isin(library.ids, taken)]
        extras[preset] = (extra_rng, extra_rng.choice(pool, min(n, len(pool)), replace=False).tolist() if n else [])
        taken = taken + extras[preset][1]
    crystals = read_crystals(sources, taken)
    ids = [i for i in known + unknown + isotypes if i in crystals]
    if len(ids) < (n_library + n_held_out) // 2:
        raise DataError(f"fusion fit: only {len(ids)} of {n_library + n_held_out} structures found in "
                        f"{', '.join(map(str, sources))}; are these the library's sources?")
    cells = [strained(crystals[i], rng) for i in ids]
    labels = np.array([library.spacegroups[library.index(i)] for i in ids], np.int64)
    grid = Grid()
    config = augment_config(augment)
    patterns = _rendered(cells, config, rng, grid)
    kind = np.zeros(len(ids), np.int64)  # 0: the patterns above, 1: thin films, 2: cropped scans
    extra_known: list = []  # the first half of each extra kind is searched against the whole library
    for k, (preset, (extra_rng, extra_ids)) in enumerate(extras.items(), start=1):
        extra_ids = [i for i in extra_ids if i in crystals]
        if not extra_ids:
            continue
        patterns = np.concatenate([patterns, _rendered([strained(crystals[i], extra_rng) for i in extra_ids],
                                                       augment_config(preset), extra_rng, grid)])
        labels = np.concatenate([labels, [library.spacegroups[library.index(i)] for i in extra_ids]])
        ids, kind = ids + extra_ids, np.concatenate([kind, np.full(len(extra_ids), k)])
        extra_known += extra_ids[:(len(extra_ids) + 1) // 2]
    network = predictor.predict_grid(patterns)
    is_film, is_cropped = kind == 1, kind == 2
    is_extra = kind > 0
    in_library = np.isin(ids, known + extra_known)  # searched against the whole library
    is_isotype = np.isin(ids, isotypes)
    is_known = in_library | is_isotype
    own_phases = library.groups[[library.index(i) for i in np.array(ids)[is_isotype]]]
    phase_library = library.select(~np.isin(library.groups, own_phases)) if is_isotype.any() else library
    # against the library, with their part left out, with their phase left out; a cropped scan (thin films,
    # and every pattern of a preset that crops) on its own window, as the predictor searches a measured file
    windowed = is_extra | bool(config is not None and config.crop)
    matches: list = [None] * len(ids)
    for lib, sel in ((library, in_library), (fit_library, ~is_known), (phase_library, is_isotype)):
        rows = np.flatnonzero(sel & ~windowed)
        for r, m in zip(rows, lib.search(grid.values(), patterns[rows], k=FIT_MATCHES, refine=refine)
                             if len(rows) else []):
            matches[r] = m
        for r in np.flatnonzero(sel & windowed):
            lo, hi = scan_window(patterns[r])
            matches[r] = lib.search(grid.values()[lo:hi], patterns[r, lo:hi], k=FIT_MATCHES, refine=refine)[0]
    if save_data:
        np.savez_compressed(save_data, network=network, labels=labels, known=is_known, isotype=is_isotype,
                            thin_film=is_film, cropped=is_cropped, **match_table(matches, FIT_MATCHES))
    rule = FusionRule.fit(network, matches, labels, known=is_known, known_rows=~is_isotype & ~is_extra, form=form,
                          metadata={
        "fitted_on": f"simulated patterns, augmentation {augment!r}", "n_library": int((in_library & ~is_extra).sum()),
        "n_held_out": int((~is_known & ~is_extra).sum()), "n_isotype": int(is_isotype.sum()),
        "n_thin_film": int(is_film.sum()), "n_thin_film_known": int((is_film & in_library).sum()),
        "n_cropped": int(is_cropped.sum()), "n_cropped_known": int((is_cropped & in_library).sum()),
        "held_out_part": part,
        "strain": f"isotropic U({1 - ISOTROPIC_STRAIN:g}, {1 + ISOTROPIC_STRAIN:g}) x per-axis "
                  f"U({1 - AXIS_STRAIN:g}, {1 + AXIS_STRAIN:g})",
        "refined": bool(refine), "model": _name(predictor.source), "seed": int(seed),
        "package_version": __version__, "split": _name(split.path)})
    fused = np.array([rule.fuse(p, m) for p, m in zip(network, matches)])
    search_only = np.array([rule.match_probabilities(m) for m in matches])
    report = {}
    for name, sel in (("library structures", in_library & ~is_extra), ("held-out prototypes", ~is_known & ~is_extra),
                      ("isotypes in the library", is_isotype), ("thin films", is_film), ("cropped scans", is_cropped)):
        if not sel.any():
            continue
        report[name] = {kind: {k: round(v, 4) for k, v in metrics(p[sel], labels[sel]).items() if isinstance(v, float)}
                        for kind, p in (("network", network), ("search", search_only), ("fused", fused))}
    kept = fused.max(axis=1) >= rule.threshold
    report["answers not flagged uncertain"] = {
        "threshold": rule.threshold, "coverage": round(float(kept.mean()), 4),
        "top1": round(float((fused[kept].argmax(axis=1) + 1 == labels[kept]).mean()), 4) if kept.any() else None}
    said = np.array([rule.no_known_phase(m) for m in matches])
    out, kept_in = ~is_known & ~is_extra, is_known & ~is_extra  # the kinds of patterns "known" is fitted on
    report["no known phase"] = {"cut": rule.unknown_below, "said, is held out": int((said & out).sum()),
                                "said, is known": int((said & kept_in).sum()),
                                "not said, is held out": int((~said & out).sum()),
                                "not said, is known": int((~said & kept_in).sum())}
    meta = dict(rule.metadata, fit_report=report, wall_time_s=round(time.perf_counter() - start, 1))
    rule = replace(rule, metadata=meta)
    return rule.bind(predictor.metadata["weights_sha256"], library.fingerprint, library.label,
                     network_temperature=predictor.temperature)
