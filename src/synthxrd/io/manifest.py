"""Manifests of measured pattern files: the one reader of the manifest CSV layout.

The layout is that of ``experimental/manifest.csv`` of the shared data and of the package's
``resources/measured/manifest.csv``: column ``pattern_path`` (relative to the CSV's folder, or
absolute), ``spacegroup`` (ITA number; needed for evaluation, may be empty for an unlabelled
pattern), optional ``wavelength_A`` (Angstrom; used where the file states none), ``sample_id`` and
``variant`` (e.g. ``raw``, ``bg_removed``). Evaluation (labelled rows), realism (any row) and the
scripts read manifests through :func:`read_manifest`.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "manifest.csv").write_text("sample_id,variant,pattern_path,spacegroup,wavelength_A\\n"
...                                          "a,raw,a.xy,225,1.5406\\nb,raw,/data/b.xy,,\\n")
>>> [(e.sample_id, e.path.name, e.spacegroup, e.wavelength, e.line)
...  for e in read_manifest(folder / "manifest.csv", labelled=False)]
[('a', 'a.xy', 225, 1.5406, 2), ('b', 'b.xy', None, None, 3)]
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

from synthxrd.errors import ConfigError, DataError
from synthxrd.wyckoff import N_SPACEGROUPS

__all__ = ["ManifestEntry", "read_manifest", "measured_manifest"]


@dataclass(frozen=True)
class ManifestEntry:
    """One row of a manifest.

    Attributes
    ----------
    sample_id : the row's ``sample_id``, else its ``pattern_path``.
    path : the pattern file, resolved against the manifest's folder.
    spacegroup : ITA number 1..230; None for an unlabelled row (only with ``labelled=False``).
    wavelength : ``wavelength_A`` in Angstrom; None where the row gives none.
    variant : the row's ``variant``; None where the manifest has no such column.
    line : line number in the CSV (the header is line 1).
    """

    sample_id: str
    path: Path
    spacegroup: int | None
    wavelength: float | None
    variant: str | None
    line: int


def _rows(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Columns and (line, row) of a manifest CSV; a missing file or column is a :class:`DataError`."""
    if not path.is_file():
        raise DataError(f"{path}: no such manifest file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(enumerate(reader, 2))
            columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the manifest ({exc})") from None
    missing = [c for c in required if c not in columns]
    if missing:
        need = " and ".join(required)
        raise DataError(f"{path}: no column {missing[0]!r} (a manifest needs {need}; "
                        f"found: {', '.join(columns) or 'nothing'})")
    return columns, rows


def read_manifest(path: str | Path, *, variant: str | None = None, labelled: bool = True) -> list[ManifestEntry]:
    """Rows of a manifest CSV (see the module docstring), optionally only those of ``variant``.

    Parameters
    ----------
    path : the manifest CSV.
    variant : keep only the rows of this variant (None: every row).
    labelled : rows need a space group (evaluation): the ``spacegroup`` column is required, rows with
        an empty one are skipped with a warning (their true group is unknown) and a manifest with no
        labelled row is an error. False: any row (``spacegroup`` None where empty or absent).

    Raises
    ------
    DataError
        Missing file or column, a space group that is not 1..230, a wavelength that is not a number,
        an empty ``pattern_path``; with ``labelled``, no row with a space group.
    ConfigError
        ``variant`` given but the CSV has no ``variant`` column or no row of that variant.
    """
    path = Path(path)
    columns, rows = _rows(path, ("pattern_path", "spacegroup") if labelled else ("pattern_path",))
    if variant is not None:
        if "variant" not in columns:
            raise ConfigError(f"--variant {variant}: {path} has no 'variant' column")
        available = sorted({r["variant"] for _, r in rows if r.get("variant")})
        rows = [(i, r) for i, r in rows if r.get("variant") == variant]
        if not rows:
            raise ConfigError(f"--variant {variant}: no row of {path} has that variant; "
                              f"variants: {', '.join(available)}")
    entries, unlabelled = [], []
    for line, row in rows:
        label = str(row.get("spacegroup") or "").strip()
        sg = None
        if not label:  # e.g. a measured pattern whose group is unknown
            if labelled:
                unlabelled.append(line)
                continue
        else:
            try:
                sg = int(label)
            except ValueError:
                sg = 0
            if not 1 <= sg <= N_SPACEGROUPS:
                raise DataError(f"{path}: line {line}: spacegroup {row['spacegroup']!r} is not an ITA number 1..230")
        lam_text = (row.get("wavelength_A") or "").strip()
        try:
            lam = float(lam_text) if lam_text else None
        except ValueError:
            raise DataError(f"{path}: line {line}: wavelength_A {lam_text!r} is not a number (Angstrom)") from None
        rel = (row["pattern_path"] or "").strip()
        if not rel:
            raise DataError(f"{path}: line {line}: empty pattern_path")
        file = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        entries.append(ManifestEntry(sample_id=(row.get("sample_id") or rel).strip(), path=file, spacegroup=sg,
                                     wavelength=lam, variant=row.get("variant"), line=line))
    if unlabelled:
        warnings.warn(f"{path}: {len(unlabelled)} row(s) without a space group skipped (lines "
                      f"{', '.join(map(str, unlabelled[:8]))}{', ...' if len(unlabelled) > 8 else ''})", stacklevel=2)
    if labelled and not entries:
        raise DataError(f"{path}: no row with a space group to evaluate")
    return entries


def measured_manifest() -> Path:
    """``manifest.csv`` of the measured patterns shipped with the package (``resources/measured``)."""
    from importlib.resources import files

    path = Path(str(files("synthxrd") / "resources" / "measured" / "manifest.csv"))
    if not path.is_file():
        raise DataError(f"{path}: the shipped measured patterns are missing (broken installation?)")
    return path

