"""Fit the fusion rule of a network and a library (:mod:`synthxrd.match.fusion`) on simulated patterns.

Patterns: augmented patterns (an :mod:`synthxrd.augment` preset; ``calibration`` by default: peak
shapes, K-alpha2, shifts, texture, Debye-Waller, noise and impurities, without the cropping and
background of ``default``, which make the search far worse on simulated patterns than on measured
ones; docs/search_match.md) of structures of the held-out part of the prototype split (the
calibration part where the split has one, else the test part), never of the statistics part (the
network's training crystals), with their lattice strained (isotropic scale
U(0.97, 1.03) and +-1 % per axis: DFT cells, thermal expansion, solid solutions):

* ``n_library`` of them searched against the whole library, which holds them,
* ``n_held_out`` others searched with their part left out of the library
  (:meth:`~synthxrd.match.ReferenceLibrary.without_part`: by id and by prototype, in every source),

so that the rule learns both "the library knows it" and "nobody knows it". The parameters maximise
the likelihood of the true space group (:meth:`FusionRule.fit`); the rule is bound to the network's
weights and to the library (:meth:`FusionRule.bind`). Measured patterns (rruff_dev, XRED) are never
used. ``synthxrd export --library`` runs it; so does ``scripts/fit_fusion.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.match.fusion import FusionRule, match_table

__all__ = ["fit_fusion", "read_crystals", "strained", "DEFAULT_SEED"]

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
               form: str = "mixture", refine=True, save_data: str | Path | None = None) -> FusionRule:
    """The fusion rule of ``predictor``'s network and ``library``, fitted and bound to both.

    Parameters
    ----------
    predictor : :class:`synthxrd.predict.Predictor` (its network is used; its library is not).
    library : :class:`~synthxrd.match.ReferenceLibrary` the rule is for (e.g. the default library).
    sources : the library's structures (CIF folders, tar archives or AMCSD databases).
    split : prototype split (:func:`synthxrd.split.load_split`; default the shipped one).
    part : the held-out part (default ``"calibration"`` where the split has one, else ``"test"``).
    n_library, n_held_out : patterns of known structures and of held-out ones.
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
    from synthxrd.augment import augment_config, augmented_patterns
    from synthxrd.evaluate import metrics
    from synthxrd.simulate.common import Grid
    from synthxrd.split import load_split
    from synthxrd.structure import CrystalBatch

    if n_library < 1 or n_held_out < 1:
        raise ConfigError(f"fusion fit: need >= 1 pattern of each kind, got {n_library} and {n_held_out}")
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
    crystals = read_crystals(sources, known + unknown)
    ids = [i for i in known + unknown if i in crystals]
    if len(ids) < (n_library + n_held_out) // 2:
        raise DataError(f"fusion fit: only {len(ids)} of {n_library + n_held_out} structures found in "
                        f"{', '.join(map(str, sources))}; are these the library's sources?")
    batch = CrystalBatch.from_crystals([strained(crystals[i], rng) for i in ids])
    labels = np.array([library.spacegroups[library.index(i)] for i in ids], np.int64)
    grid = Grid()
    config = augment_config(augment)
    patterns = np.concatenate([
        augmented_patterns(CrystalBatch.from_crystals([batch[j] for j in range(a, min(a + _BATCH, len(ids)))]),
                           config, rng, grid=grid) for a in range(0, len(ids), _BATCH)])
    network = predictor.predict_grid(patterns)
    is_known = np.isin(ids, known)
    matches: list = [None] * len(ids)  # the known ones against the library, the others with their part left out
    for lib, sel in ((library, is_known), (fit_library, ~is_known)):
        rows = np.flatnonzero(sel)
        for r, m in zip(rows, lib.search(grid.values(), patterns[rows], k=FIT_MATCHES, refine=refine)
                             if len(rows) else []):
            matches[r] = m
    if save_data:
        np.savez_compressed(save_data, network=network, labels=labels, known=is_known,
                            **match_table(matches, FIT_MATCHES))
    rule = FusionRule.fit(network, matches, labels, known=is_known, form=form, metadata={
        "fitted_on": f"simulated patterns, augmentation {augment!r}", "n_library": int(is_known.sum()),
        "n_held_out": int((~is_known).sum()), "held_out_part": part,
        "strain": f"isotropic U({1 - ISOTROPIC_STRAIN:g}, {1 + ISOTROPIC_STRAIN:g}) x per-axis "
                  f"U({1 - AXIS_STRAIN:g}, {1 + AXIS_STRAIN:g})",
        "refined": bool(refine), "model": _name(predictor.source), "seed": int(seed),
        "package_version": __version__, "split": _name(split.path)})
    fused = np.array([rule.fuse(p, m) for p, m in zip(network, matches)])
    search_only = np.array([rule.match_probabilities(m) for m in matches])
    report = {}
    for name, sel in (("library structures", is_known), ("held-out prototypes", ~is_known)):
        report[name] = {kind: {k: round(v, 4) for k, v in metrics(p[sel], labels[sel]).items() if isinstance(v, float)}
                        for kind, p in (("network", network), ("search", search_only), ("fused", fused))}
    kept = fused.max(axis=1) >= rule.threshold
    report["answers not flagged uncertain"] = {
        "threshold": rule.threshold, "coverage": round(float(kept.mean()), 4),
        "top1": round(float((fused[kept].argmax(axis=1) + 1 == labels[kept]).mean()), 4) if kept.any() else None}
    said = np.array([rule.no_known_phase(m) for m in matches])
    report["no known phase"] = {"cut": rule.unknown_below, "said, is held out": int((said & ~is_known).sum()),
                                "said, is known": int((said & is_known).sum()),
                                "not said, is held out": int((~said & ~is_known).sum()),
                                "not said, is known": int((~said & is_known).sum())}
    meta = dict(rule.metadata, fit_report=report, wall_time_s=round(time.perf_counter() - start, 1))
    rule = replace(rule, metadata=meta)
    return rule.bind(predictor.metadata["weights_sha256"], library.fingerprint, library.label,
                     network_temperature=predictor.temperature)
