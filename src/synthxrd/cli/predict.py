"""Predict the space group of measured powder patterns: search-match against known structures, fused
with a trained network.

For every FILE (any format of the table synthxrd.io.FORMATS, recognised from the content; the README
lists them) the pattern is converted to the model's wavelength (Cu K-alpha1), put onto its 2theta grid
(5-90 degrees) and normalised; the network gives probabilities over the 230 space groups, and the
reference library (by default the 46,627 known structures shipped with synthxrd) is searched for the
structures that best explain the pattern. The two are fused into one distribution: a strong match
makes its space group dominate, with no good match the network's answer stands. Printed per file:
the --top most probable groups (ITA number, Hermann-Mauguin symbol, probability), the probabilities
of the 7 crystal systems (sums over their groups) and the --matches best-matching known structures
(id, formula, space group, score, fitted lattice scale).

  --no-library       the network alone
  --library FILE     another reference library (synthxrd library build)
  --elements Fe,O    only structures containing all these elements (--only-elements: nothing else)

  --json             print the results as JSON on stdout instead of the tables
  --json-file PATH   also write them as JSON to PATH
  --plot DIR         write DIR/STEM.png per file: the pattern on the model grid, the top groups and
                     the crystal systems as bar charts (one file: --plot NAME.png writes NAME.png)
  --no-refine        skip the refinement done by default: the --matches best matches are fitted to the
                     file's pattern as measured (cell within its crystal system, zero shift, profile,
                     background; docs/refine.md) and listed re-ranked by Rwp with their refined cell
                     and zero shift; with --plot also DIR/STEM_refined.png, observed/calculated/
                     difference of the best. About 0.2-0.5 s per file. A fusion rule fitted on
                     refined matches (the shipped one) also weighs the refined candidates (their
                     figure of merit and the best Rwp); --no-refine then fuses the search's scores
                     alone, faster and less accurate (docs/search_match.md)
  --write-cif DIR    write DIR/STEM.cif per file: the best refined match with its refined cell and
                     space group; the library stores no atoms, so the CIF has none and names the
                     entry whose atoms they are

The wavelength is the file's own where it states one; --wavelength gives it for files that do not
(plain .xy/.csv columns); a file that states none and gets none is read as Cu K-alpha1, with a
one-line note. --model takes a checkpoint file or a `synthxrd train` run folder (its best.pt,
else checkpoint.pt); without it the model shipped with synthxrd is used.

A file that cannot be read is reported in one line on stderr and the others are still predicted.
Outputs are written atomically and never replace existing files without --overwrite.

Exit status: 0 all predicted, 1 some file failed, 2 bad options, model or existing outputs.

Examples:
  synthxrd predict sample.xy --elements Fe,O
  synthxrd predict sample.xy --model runs/park --wavelength CuKa1 --no-library
  synthxrd predict scans/*.xrdml --model runs/park/best.pt --top 3 --plot figures/
  synthxrd predict a.xy b.raw --model runs/park --json > predictions.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from synthxrd.cli import options
from synthxrd.cli.mixture import format_mixture, phases_option
from synthxrd.cli.options import LIBRARY_HELP, element_options, match_columns, wavelength_option
from synthxrd.errors import ConfigError, OutputError, SynthXRDError
from synthxrd.simulate.common import DEFAULT_WAVELENGTH

__all__ = ["HELP", "add_arguments", "run"]

HELP = "predict space groups of measured pXRD pattern files (search-match fused with a network)"

_SHORT = {"triclinic": "tric", "monoclinic": "mono", "orthorhombic": "orth", "tetragonal": "tetr",
          "trigonal": "trig", "hexagonal": "hex", "cubic": "cub"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="measured pattern files")
    parser.add_argument("--model", metavar="PATH",
                        help="checkpoint file or training run folder (default: the model shipped with synthxrd)")
    parser.add_argument("--top", type=int, default=5, metavar="K", help="space groups listed per file (default 5)")
    parser.add_argument("--wavelength", metavar="LAMBDA",
                        help="wavelength (Angstrom or a line name such as CuKa1) for files that state none")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--json-file", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--plot", metavar="DIR", help="write a PNG per file into DIR (or, for one file, "
                        "into NAME.png)")
    parser.add_argument("--library", metavar="LIBRARY", help=LIBRARY_HELP)
    parser.add_argument("--no-library", action="store_true", help="the network alone, no search-match")
    options.add_fusion_arguments(parser)
    parser.add_argument("--elements", metavar="EL,EL", help="search only structures containing all these elements")
    parser.add_argument("--only-elements", action="store_true",
                        help="with --elements: only structures made of these elements alone")
    parser.add_argument("--matches", type=int, default=5, metavar="N",
                        help="best-matching known structures listed per file (default 5)")
    parser.add_argument("--threshold", type=float, default=None, metavar="P",
                        help="flag a result as uncertain when its top probability is below P (default: the fusion "
                             "rule's threshold, chosen on its calibration patterns; 0.5 for the network alone)")
    parser.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                        help="refine the best matches against the file's pattern and re-rank them: refined cell, "
                             "zero shift and Rwp per match; with --plot also a Rietveld-style figure of the best "
                             "(docs/refine.md; default: on, --no-refine to skip)")
    parser.add_argument("--write-cif", metavar="DIR",
                        help="refine (as --refine) and write DIR/STEM.cif per file: the best refined match with its "
                             "refined cell and space group (no atoms: the library stores reflections)")
    parser.add_argument("--phases", type=phases_option, default=None, metavar="auto|N",
                        help="also identify every phase (synthxrd mixture): 'auto' adds phases while the fit improves "
                             "significantly, N forces N; refined cells and weight fractions or intensity shares")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _plot_names(files: list[str]) -> list[str]:
    """Distinct PNG names: the file stem, with its folder's name in front where stems repeat."""
    stems = [Path(f).stem or Path(f).name for f in files]
    names = list(stems)
    for i, stem in enumerate(stems):
        if stems.count(stem) > 1:
            parent = Path(files[i]).resolve().parent.name
            names[i] = f"{parent}_{stem}" if parent else stem
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(f"{name}.png" if n == 0 else f"{name}_{n + 1}.png")
    return out


def _plot_targets(plot: str | None, files: list[str]) -> tuple[Path | None, list[str]]:
    """The folder and PNG names of ``--plot``: a folder gets DIR/STEM.png per file (:func:`_plot_names`);
    a name ending in .png, as ``refine --plot`` and ``mixture --plot`` take, is the figure of the one
    file given (its refinement figure beside it as NAME_refined.png)."""
    if not plot:
        return None, []
    path = Path(plot)
    if path.suffix.lower() == ".png" and not path.is_dir():
        if len(files) > 1:
            raise ConfigError(f"--plot {plot}: a PNG name holds the figure of one file, not of {len(files)}; "
                              "give a folder (DIR/STEM.png per file)")
        return path.parent, [path.name]
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--plot: {path} exists and is not a directory")
    return path, _plot_names(files)


def _table(result, k: int, n_matches: int = 5) -> str:
    info = result.info
    lam = info.get("wavelength")
    head = f"{result.source}"
    details = []
    if info.get("coverage") is not None:
        details.append(f"coverage {100 * info['coverage']:.0f} %")
    if lam is not None:
        details.append(f"λ {lam:.5g} Å" + (f" → {info['model_wavelength']:.5g} Å" if info.get("converted") else ""))
    if details:
        head += "  (" + ", ".join(details) + ")"
    if result.uncertain:
        head += "  UNCERTAIN: top probability below the threshold"
    lines = [head, "  rank   SG  symbol        probability"]
    for rank, (number, symbol, p) in enumerate(result.top(k), 1):
        lines.append(f"  {rank:>4}  {number:>3}  {symbol:<12}  {p:>11.4f}")
    systems = result.crystal_systems()
    lines.append("  system  " + "  ".join(f"{_SHORT[s]} {p:.3f}" for s, p in systems.items()))
    if result.search is not None:
        from synthxrd.wyckoff import hermann_mauguin

        known = "" if result.known is None else f", p that the library holds it: {result.known:.2f}"
        lines.append(f"  best matches (p that the best is right: {result.confidence:.2f}{known})")
        if result.no_known_phase:
            lines.append("  NO KNOWN PHASE: no library structure explains this pattern well; "
                         "the space group rests on the network")
        shown = result.matches[:n_matches]
        width, scores = match_columns(shown)
        lines.append(f"  {'id':<15}{'formula':<{width}}{'SG':>4}  {'symbol':<12}{'score':>7}{'scale':>8}  mineral")
        for m, score in zip(shown, scores):
            lines.append(f"  {m.id:<15}{m.formula:<{width}}{m.spacegroup:>4}  {hermann_mauguin(m.spacegroup):<12}"
                         f"{score}{m.scale:>8.4f}  {m.mineral}".rstrip())
    for w in info.get("warnings", []):
        lines.append(f"  note: {w}")
    return "\n".join(lines)


def _refine_matches(library, path: str, result, wavelength, n: int) -> list:
    """(Match, Refinement) of the best ``n`` matches fitted to the file's pattern as measured, best
    (lowest figure of merit) first.

    The predictor has refined its candidates already, but on the search's pattern (resampled to the
    model's grid, normalised, at Cu K-alpha1 without the doublet); what the user reads (cell, zero shift,
    Rwp, GoF, the Rietveld figure, the CIF) is fitted here to the file as measured, at its wavelength with
    its K-alpha2 and its counting statistics. Reusing the predictor's fits saves about 0.5 s per file
    but changes GoF by factors of 0.2 to 3.7 (measured on the 17 shipped patterns), so it is not done."""
    import numpy as np

    from synthxrd.io import read_pattern
    from synthxrd.match.rerank import RerankSettings, refine_candidates

    tt, y, meta = read_pattern(path)
    lam = meta.get("wavelength") or wavelength or DEFAULT_WAVELENGTH
    refined, _ = refine_candidates(library, np.asarray(tt, float), np.asarray(y, float), result.matches,
                                   wavelength=lam, settings=RerankSettings(n_candidates=n))
    return refined


def _identify_phases(library, path: str, wavelength, args):
    """Every phase of the file's pattern as measured (:func:`synthxrd.mixture.identify_phases`)."""
    import numpy as np

    from synthxrd.io import read_pattern
    from synthxrd.mixture import identify_phases

    tt, y, meta = read_pattern(path)
    return identify_phases(np.asarray(tt, float), np.asarray(y, float), library,
                           wavelength=meta.get("wavelength") or wavelength or DEFAULT_WAVELENGTH, phases=args.phases,
                           elements=args.elements, only_elements=args.only_elements)


def _write_best_cif(library, best, target: Path, pattern: str) -> Path:
    """Write the refined ``best`` (Match, Refinement) as a CIF (:func:`synthxrd.refine.refined_cif`) to ``target``."""
    from synthxrd.files import write_text
    from synthxrd.refine import phase_from_library, refined_cif

    m, r = best
    reference = library.entry(m.index).reference
    text = refined_cif(r, phase_from_library(library, m.index), source=f"{m.id} ({reference})" if reference else m.id,
                       pattern=Path(pattern).name)
    return write_text(target, text)


def _refined_table(refined: list) -> str:
    width, _ = match_columns([m for m, _ in refined])
    lines = ["  refined (whole-pattern fit, best first)",
             f"  {'id':<15}{'formula':<{width}}{'SG':>4}  {'a':>9}{'b':>9}{'c':>9}{'alpha':>8}{'beta':>8}{'gamma':>8}"
             f"{'zero':>8}{'Rwp':>8}  conv."]
    for m, r in refined:
        cell = m.cell if m.cell is not None else (float("nan"),) * 6
        lines.append(f"  {m.id:<15}{m.formula:<{width}}{m.spacegroup:>4}  " + "".join(f"{v:>9.4f}" for v in cell[:3])
                     + "".join(f"{v:>8.2f}" for v in cell[3:]) + f"{m.zero_shift:>8.3f}{100 * m.rwp:>7.2f}%  "
                     + ("yes" if m.converged else "no"))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ConfigError(f"--top: expected an integer >= 1, got {args.top}")
    if args.matches < 0:
        raise ConfigError(f"--matches: expected an integer >= 0, got {args.matches}")
    if args.no_library and (args.library or args.elements is not None or args.phases is not None):
        raise ConfigError("--no-library excludes --library, --elements and --phases")
    element_options(args.elements, args.only_elements)
    wavelength = wavelength_option(args.wavelength)
    threshold = args.threshold  # None: the fusion rule's (Predictor)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"--threshold: expected a probability in [0, 1], got {args.threshold}")
    from synthxrd.files import atomic_write, check_outputs, display_name, write_json

    plot_dir, names = _plot_targets(args.plot, args.files)
    targets = [plot_dir / n for n in names] if plot_dir else []
    if args.json_file:
        targets.append(Path(args.json_file))
    cif_dir = Path(args.write_cif) if args.write_cif else None
    if cif_dir is not None:
        if cif_dir.exists() and not cif_dir.is_dir():
            raise ConfigError(f"--write-cif: {cif_dir} exists and is not a directory")
        if args.no_library or not args.refine:
            raise ConfigError("--write-cif writes the best refined match: it needs the library and the refinement "
                              "(drop --no-library and --no-refine)")
        cif_names = [n[:-len(".png")] + ".cif" for n in _plot_names(args.files)]
        targets += [cif_dir / n for n in cif_names]
    check_outputs(targets, inputs=[*args.files, args.model], overwrite=args.overwrite)

    from tqdm import tqdm

    from synthxrd import __version__
    from synthxrd.predict import Predictor, failure_message, plot_prediction

    predictor = Predictor.load(args.model, device=args.device, threshold=threshold,
                               library=None if args.no_library else (args.library or "default"),
                               refine=None if args.refine else False, **options.fusion_options(args))
    if plot_dir is not None:
        plot_dir.mkdir(parents=True, exist_ok=True)
    if cif_dir is not None:
        cif_dir.mkdir(parents=True, exist_ok=True)
    results = []
    n_failed = 0
    bar = tqdm(args.files, desc="predict", unit="file", file=sys.stderr, disable=None, dynamic_ncols=True)
    for i, name in enumerate(bar):
        try:
            result = predictor.predict_file(name, wavelength=wavelength, elements=args.elements,
                                            only_elements=args.only_elements, k=max(args.matches, 1))
            entry = result.to_dict(args.top)
            refined = None
            if args.refine and predictor.library is not None and result.matches:
                try:
                    refined = _refine_matches(predictor.library, name, result, wavelength, max(args.matches, 1))
                except SynthXRDError as exc:  # the prediction stands; the refinement is extra evidence
                    refined = []
                    entry["refine_error"] = str(exc)
                    tqdm.write(display_name(f"note: {name}: not refined: {exc}"), file=sys.stderr)
                entry["refined"] = [dict(m.to_dict(), gof=r.gof) for m, r in refined]
                if plot_dir is not None and refined:
                    from synthxrd.plot import plot_refinement

                    target = plot_dir / (names[i][:-len(".png")] + "_refined.png")
                    m, r = refined[0]
                    check_outputs([target], overwrite=args.overwrite)
                    atomic_write(target, lambda tmp: plot_refinement(
                        tmp, r, title=f"{display_name(Path(name).name)}: {m.id} {m.formula} (SG {m.spacegroup})"))
                    entry["refined_plot"] = str(target)
                if cif_dir is not None and refined:
                    entry["cif"] = str(_write_best_cif(predictor.library, refined[0], cif_dir / cif_names[i], name))
            mix = None
            if args.phases is not None and predictor.library is not None:
                mix = _identify_phases(predictor.library, name, wavelength, args)
                entry["phases"] = mix.to_dict()["phases"]
            if plot_dir is not None:
                target = plot_dir / names[i]
                atomic_write(target, lambda tmp: plot_prediction(tmp, result, predictor.grid, k=max(args.top, 5),
                                                                    wavelength=predictor.wavelength))
                entry["plot"] = str(target)
            if not args.json:
                tqdm.write(display_name(_table(result, args.top, args.matches)), file=sys.stdout)
                if refined:
                    tqdm.write(display_name(_refined_table(refined)), file=sys.stdout)
                if mix is not None:
                    tqdm.write(display_name("\n".join("  " + line for line in format_mixture(mix))), file=sys.stdout)
        except OutputError:  # the disk is full or read-only: the next files would fail alike
            raise
        except Exception as exc:  # one line per bad file, the others go on
            n_failed += 1
            entry = {"source": name, "ok": False, "error": failure_message(name, exc)}
            tqdm.write(display_name(entry["error"]), file=sys.stderr)
        results.append(entry)
    bar.close()

    payload = {
        "command": "predict",
        "synthxrd_version": __version__,
        "model": {"source": predictor.source, "checkpoint": predictor.metadata.get("checkpoint"),
                  "step": predictor.metadata.get("step"),
                  "name": predictor.metadata.get("model_config", {}).get("name"),
                  "classes": [int(c) for c in predictor.classes]},
        "library": None if predictor.library is None else {
            "source": predictor.library.label, "n_structures": len(predictor.library),
            "elements": args.elements, "only_elements": args.only_elements},
        "wavelength_argument": wavelength,
        "top": args.top,
        "summary": {"predicted": len(results) - n_failed, "failed": n_failed},
        "results": results,
    }
    if args.json_file:
        write_json(args.json_file, payload)
    if args.json:
        print(json.dumps(payload, indent=1))
    else:
        plots = ("" if plot_dir is None else f"; plots in {plot_dir}" if plot_dir == Path(args.plot)
                 else f"; plot in {args.plot}")
        extra = plots + (f"; CIFs in {cif_dir}" if cif_dir else "") + (
            f"; JSON in {args.json_file}" if args.json_file else "")
        print(f"{len(results) - n_failed} predicted, {n_failed} failed{extra}")
    return 1 if n_failed else 0
