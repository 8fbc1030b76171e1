"""Simulate powder X-ray diffraction patterns of CIF structures.

Each input is a CIF file or a directory (every *.cif below it, recursively, sorted); --examples adds
the structures shipped with synthxrd (NaCl, Si, CsCl, SrTiO3, rutile, wurtzite, corundum, WO3).
For every structure STEM.cif, DIR (--out) receives:

  STEM_pattern.csv  two_theta,intensity: Gaussian-Scherrer broadened pattern (maximum 1) on a
                    0.01 degree grid over --range (5-90 degrees: 8501 points)
  STEM_peaks.csv    two_theta,d,intensity,h,k,l: the exact peak list (pymatgen-equivalent, maximum 1);
                    hkl of the strongest reflection in each peak
  STEM.png          with --plot: pattern, peak sticks, the 5 strongest peaks labelled with hkl

and run.json records the version, the options, the inputs and each file's status.

Peak widths: FWHM(2theta, rad) = 0.9 lambda / (tau cos theta) with crystallite size tau = 50 nm by
default (--crystallite-size NM), or, with --crystallite-size random, tau ~ U(20, 100) nm drawn per
structure from --seed (the seed used is recorded in run.json).

Files are written atomically. Existing outputs are never replaced without --overwrite: the command
stops before any work and names them. With --overwrite, the outputs of the earlier run that run.json
listed and this run does not write again are removed (no other file of DIR is touched), so that DIR
holds exactly what the new run.json lists. A structure that cannot be read or simulated is reported in
one line on stderr and the others are still processed.

Exit status: 0 all simulated, 1 some structure failed, 2 bad options or existing outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

from synthxrd.cli import options
from synthxrd.errors import ConfigError, OutputError, SynthXRDError
from synthxrd.files import atomic_write, check_outputs, write_text
from synthxrd.simulate.common import DEFAULT_WAVELENGTH

__all__ = ["HELP", "add_arguments", "run", "DEFAULT_CRYSTALLITE_SIZE_NM", "GRID_STEP"]

HELP = "simulate pXRD patterns and peak lists of CIF files (CSV, optional PNG)"

#: Crystallite size used unless --crystallite-size is given: the middle of the U(20, 100) nm range
#: of the training patterns, so that example patterns look like typical training inputs.
DEFAULT_CRYSTALLITE_SIZE_NM = 50.0
#: Pattern grid spacing in degrees 2theta (docs/architecture.md: 5-90 degrees, 8501 points).
GRID_STEP = 0.01
#: Sizes drawn with ``--crystallite-size random`` (docs/architecture.md).
RANDOM_SIZE_RANGE_NM = (20.0, 100.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="FILE_OR_DIR",
                        help="CIF files, or directories searched recursively for *.cif")
    parser.add_argument("-o", "--out", required=True, metavar="DIR",
                        help="output directory (created if missing)")
    parser.add_argument("--examples", action="store_true",
                        help="also simulate the example structures shipped with synthxrd")
    parser.add_argument("--wavelength", default=str(DEFAULT_WAVELENGTH), metavar="LAMBDA",
                        help="X-ray wavelength in Angstrom or a line name such as CuKa1, MoKa1 "
                             f"(default: {DEFAULT_WAVELENGTH}, Cu K-alpha1)")
    parser.add_argument("--range", nargs=2, type=float, default=(5.0, 90.0), metavar=("MIN", "MAX"),
                        dest="two_theta_range",
                        help="2theta window in degrees, 0 < MIN < MAX < 180 (default: 5 90)")
    parser.add_argument("--crystallite-size", default=None, metavar="NM",
                        help=f"crystallite size in nm for the peak widths (default: "
                             f"{DEFAULT_CRYSTALLITE_SIZE_NM:g}), or 'random' for U(20, 100) nm per structure")
    parser.add_argument("--seed", type=options.seed, default=None, metavar="N",
                        help="seed of the random crystallite sizes (only used with --crystallite-size random; "
                             "default: a fresh seed, recorded in run.json)")
    parser.add_argument("--plot", action="store_true", help="also write STEM.png for each structure")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


# ----------------------------------------------------------------------------------------------
# option checks (all before any work)


def _wavelength(value: str) -> float:
    from synthxrd.simulate import resolve_wavelength

    try:
        return resolve_wavelength(value)
    except ConfigError as exc:
        raise ConfigError(f"--{exc}") from None


def _grid(values):
    """The output grid of ``--range MIN MAX`` at GRID_STEP (the library's :class:`Grid` rules)."""
    from synthxrd.simulate import Grid

    try:
        return Grid.from_step(*(float(v) for v in values), GRID_STEP)
    except ConfigError:
        raise ConfigError(f"--range: need 0 < MIN < MAX < 180 degrees 2theta with at least two {GRID_STEP}-degree "
                          f"grid points, got {' '.join(f'{float(v):g}' for v in values)}") from None


def _crystallite_size(value: str | None) -> float | None:
    """A size in nm, or None for random sizes."""
    if value is None:
        return DEFAULT_CRYSTALLITE_SIZE_NM
    if value.strip().lower() == "random":
        return None
    from synthxrd.simulate.common import crystallite_sizes

    try:
        return float(crystallite_sizes(1, float(value), None)[0])
    except (ValueError, ConfigError):
        raise ConfigError(f"--crystallite-size: expected a size in nm > 0.5 or 'random', got {value!r}") from None


def _collect_inputs(args, stack: ExitStack) -> tuple[list[tuple[str, Path | None]], list[str]]:
    """(display name, path or None if missing) of every structure, and notes for empty directories."""
    jobs: list[tuple[str, Path | None]] = []
    notes: list[str] = []
    seen: set[Path] = set()

    def add(name: str, path: Path | None) -> None:
        if path is not None:
            key = path.resolve()
            if key in seen:
                return
            seen.add(key)
        jobs.append((name, path))

    for item in args.inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix.lower() == ".cif" and q.is_file())
            if not found:
                notes.append(f"{item}: no *.cif files in this directory")
            for q in found:
                add(str(q), q)
        elif p.is_file():
            add(item, p)
        else:
            add(item, None)  # reported per file, like any other unreadable input
    if args.examples:
        from importlib.resources import as_file, files

        examples = files("synthxrd.resources").joinpath("examples")
        for t in sorted(examples.iterdir(), key=lambda t: t.name):
            if t.name.lower().endswith(".cif"):
                add(f"examples/{t.name}", stack.enter_context(as_file(t)))
    return jobs, notes


def _stem(name: str) -> str:
    base = Path(name).name
    return base[:-4] if base.lower().endswith(".cif") else Path(base).stem or base


def _outputs(stem: str, plot: bool) -> list[str]:
    names = [f"{stem}_pattern.csv", f"{stem}_peaks.csv"]
    return names + [f"{stem}.png"] if plot else names


def _check_targets(out: Path, jobs, plot: bool, overwrite: bool) -> None:
    """Every output is new (or ``overwrite``) and none is one of the input CIFs (:func:`check_outputs`)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    owner: dict[str, str] = {}
    for name, _ in jobs:
        for target in _outputs(_stem(name), plot):
            if target in owner:
                raise ConfigError(f"{owner[target]} and {name} would both write {out / target} (same file name); "
                                  "rename one or simulate them into different --out directories")
            owner[target] = name
    check_outputs([out / t for t in [*owner, "run.json"]], inputs=[p for _, p in jobs], overwrite=overwrite)


# ----------------------------------------------------------------------------------------------
# writing


def _pattern_csv(two_theta, intensity) -> str:
    lines = ["two_theta,intensity"]
    lines += [f"{t:.4f},{i:.7g}" for t, i in zip(two_theta.tolist(), intensity.tolist())]
    return "\n".join(lines) + "\n"


def _peaks_csv(peaks) -> str:
    lines = ["two_theta,d,intensity,h,k,l"]
    for t, d, i, (h, k, l) in zip(peaks.two_theta.tolist(), peaks.d.tolist(), peaks.intensity.tolist(),
                                  peaks.hkl.tolist()):
        lines.append(f"{t:.10g},{d:.10g},{i:.10g},{h},{k},{l}")
    return "\n".join(lines) + "\n"


def _spacegroup(structure) -> tuple[str | None, int | None]:
    try:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        sga = SpacegroupAnalyzer(structure, symprec=0.01)
        return sga.get_space_group_symbol(), int(sga.get_space_group_number())
    except Exception:  # symmetry is decoration here, never a reason to fail
        return None, None


def _simulate_one(record: dict, name: str, path: Path | None, out: Path, *, lam: float, two_theta_range, grid,
                  size_nm: float, plot: bool) -> None:
    """Simulate one structure and write its files, filling its run.json ``record`` (raises on failure)."""
    import warnings

    from synthxrd.simulate import pattern, peak_list
    from synthxrd.structure import read_cif, to_crystal

    if path is None:
        raise SynthXRDError(f"{name}: no such file or directory")
    record["crystallite_size_nm"] = size_nm
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        structure = read_cif(path)
        crystal = to_crystal(structure, source=name)
        symbol, number = _spacegroup(structure)
        record.update(formula=structure.composition.reduced_formula, spacegroup_symbol=symbol,
                      spacegroup_number=number, n_sites=len(structure))
        peaks = peak_list(crystal, wavelength=lam, two_theta_range=two_theta_range)
        if len(peaks.two_theta) == 0:
            raise SynthXRDError(f"{name}: no reflection between {two_theta_range[0]:g} and "
                                f"{two_theta_range[1]:g} degrees 2theta at lambda = {lam:g} A")
        profile = pattern(crystal, crystallite_size_nm=size_nm, grid=grid, wavelength=lam)
    record["n_peaks"] = len(peaks.two_theta)
    record["warnings"] = sorted({str(w.message).strip().splitlines()[0] for w in caught
                                 if str(w.message).strip() and not issubclass(w.category, DeprecationWarning)})

    stem = _stem(name)
    written: list[str] = []
    record["outputs"] = written
    target = out / f"{stem}_pattern.csv"
    write_text(target, _pattern_csv(grid.values(), profile))
    written.append(target.name)
    target = out / f"{stem}_peaks.csv"
    write_text(target, _peaks_csv(peaks))
    written.append(target.name)
    if plot:
        from synthxrd.plot import plot_pattern

        title = record["formula"]
        if symbol:
            title += f"  {symbol} (No. {number})"
        title += f"  [{Path(name).name}]"
        target = out / f"{stem}.png"
        atomic_write(target, lambda tmp: plot_pattern(tmp, grid.values(), profile, peaks, title=title,
                                                        wavelength=lam))
        written.append(target.name)


def _previous_outputs(out: Path) -> set[str]:
    """The file names that the run.json of an earlier run in ``out`` lists as its outputs (empty when there
    is none or it cannot be read). With --overwrite, those this run does not write again are removed, so
    that the folder holds exactly what the new run.json lists; other files in ``out`` are never touched."""
    try:
        record = json.loads((out / "run.json").read_text(encoding="utf-8"))
        names = {name for entry in record["files"] for name in entry.get("outputs", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()
    return {n for n in names if isinstance(n, str) and n and Path(n).name == n and n not in (".", "..", "run.json")}


def _message(name: str, exc: BaseException) -> str:
    """One line naming the file: SynthXRDError text as is, anything else as 'unexpected error'."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, SynthXRDError):
        return text if text.startswith(name) else f"{name}: {text}"
    return f"{name}: unexpected error: {type(exc).__name__}: {text}"


# ----------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if not args.inputs and not args.examples:
        raise ConfigError("no input: give CIF files or directories, or --examples for the shipped structures")
    lam = _wavelength(args.wavelength)
    grid = _grid(args.two_theta_range)
    fixed_size = _crystallite_size(args.crystallite_size)
    out = Path(args.out)

    with ExitStack() as stack:
        jobs, notes = _collect_inputs(args, stack)
        if not jobs:
            raise ConfigError("no CIF files found in " + ", ".join(args.inputs))
        _check_targets(out, jobs, args.plot, args.overwrite)

        import datetime
        import platform
        from importlib.metadata import version

        import numpy as np
        from tqdm import tqdm

        from synthxrd import __version__
        for note in notes:
            print(note, file=sys.stderr)
        seed = args.seed
        if fixed_size is None:
            seed = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**63)
            children = np.random.SeedSequence(seed).spawn(len(jobs))
            sizes = [float(np.random.default_rng(c).uniform(*RANDOM_SIZE_RANGE_NM)) for c in children]
        else:
            sizes = [fixed_size] * len(jobs)
        out.mkdir(parents=True, exist_ok=True)
        previous = _previous_outputs(out)

        files = []
        n_ok = 0
        bar = tqdm(jobs, desc="simulate", unit="file", file=sys.stderr, disable=None, dynamic_ncols=True)
        for (name, path), size in zip(bar, sizes):
            entry = {"input": name, "status": "failed",
                     "path": str(path.resolve()) if path is not None else None}
            try:
                _simulate_one(entry, name, path, out, lam=lam, two_theta_range=(grid.start, grid.stop), grid=grid,
                              size_nm=size, plot=args.plot)
                entry["status"] = "ok"
                n_ok += 1
            except OutputError:  # the disk is full or read-only: the next files would fail alike
                raise
            except Exception as exc:  # one line per bad file, the others go on
                entry["error"] = _message(name, exc)
                tqdm.write(entry["error"], file=sys.stderr)
            files.append(entry)
        bar.close()

        n_failed = len(jobs) - n_ok
        record = {
            "command": "simulate",
            "synthxrd_version": __version__,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "config": {
                "inputs": list(args.inputs),
                "examples": bool(args.examples),
                "out": str(out.resolve()),
                "wavelength": args.wavelength,
                "wavelength_angstrom": lam,
                "two_theta_range": [grid.start, grid.stop],
                "grid": {"start": grid.start, "stop": grid.stop, "n": grid.n, "step": grid.step},
                "profile": "gaussian, FWHM(2theta, rad) = 0.9 lambda / (tau cos theta)",
                "crystallite_size_nm": fixed_size if fixed_size is not None else "random U(20, 100)",
                "seed": seed,
                "plot": bool(args.plot),
                "overwrite": bool(args.overwrite),
            },
            "versions": {"synthxrd": __version__, "python": platform.python_version(),
                         "numpy": np.__version__, "pymatgen": version("pymatgen")},
            "summary": {"simulated": n_ok, "failed": n_failed},
            "files": files,
        }
        written = {name for entry in files for name in entry.get("outputs", [])}
        for name in sorted(previous - written):  # an earlier run's outputs this run replaced by nothing
            (out / name).unlink(missing_ok=True)
        write_text(out / "run.json", json.dumps(record, indent=1) + "\n")
    print(f"{n_ok} simulated, {n_failed} failed (outputs and run.json in {out})")
    return 1 if n_failed else 0
