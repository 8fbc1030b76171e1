"""Labelled inputs: the rows of a manifest CSV of measured pattern files."""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

from synthxrd.errors import ConfigError, DataError
from synthxrd.predict import N_SPACEGROUPS

__all__ = ["ManifestEntry", "read_manifest"]

@dataclass(frozen=True)
class ManifestEntry:
    """One row of a manifest: the pattern file (resolved), its label and wavelength (None: not given)."""

    sample_id: str
    path: Path
    spacegroup: int
    wavelength: float | None
    variant: str | None
    line: int


def read_manifest(path: str | Path, *, variant: str | None = None) -> list[ManifestEntry]:
    """Rows of a manifest CSV (see the docstring of :mod:`synthxrd.evaluate`), optionally only those of ``variant``.

    Raises
    ------
    DataError
        Missing file or column, a space group that is not 1..230, a wavelength that is not a number.
        Rows with an empty space group are skipped with a warning (their true group is unknown).
    ConfigError
        ``variant`` given but the CSV has no ``variant`` column or no row of that variant.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such manifest file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the manifest ({exc})") from None
    missing = [c for c in ("pattern_path", "spacegroup") if c not in columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} (a manifest needs pattern_path and spacegroup; "
                        f"found: {', '.join(columns) or 'nothing'})")
    if variant is not None:
        if "variant" not in columns:
            raise ConfigError(f"--variant {variant}: {path} has no 'variant' column")
        available = sorted({r["variant"] for r in rows if r.get("variant")})
        rows_kept = [(i, r) for i, r in enumerate(rows, 2) if r.get("variant") == variant]
        if not rows_kept:
            raise ConfigError(f"--variant {variant}: no row of {path} has that variant; "
                              f"variants: {', '.join(available)}")
    else:
        rows_kept = list(enumerate(rows, 2))
    entries, unlabelled = [], []
    for line, row in rows_kept:
        if not str(row["spacegroup"] or "").strip():  # e.g. a measured pattern whose group is unknown
            unlabelled.append(line)
            continue
        try:
            sg = int(str(row["spacegroup"]).strip())
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
    if not entries:
        raise DataError(f"{path}: no row with a space group to evaluate")
    return entries
