"""Acceptance test of the exact simulator: ``synthxrd.simulate.peaks`` equals pymatgen's ``XRDCalculator``.

For every structure both peak lists must have the same number of peaks, positions within
``POSITION_TOL`` degrees 2theta and intensities (normalised to a maximum of 1) within
``INTENSITY_TOL``. Structures come from four sources, spanning all 7 crystal systems:

* ``experimental``: the distinct CIFs of ``<shared>/experimental/manifest.csv`` (COD; some disordered),
  given to synthxrd as file paths;
* ``mp_experimental``: a deterministic sample stratified by crystal system (``MP_PER_SYSTEM`` each,
  at most ``MP_MAX_ATOMS`` atoms, as many distinct space groups as possible) read straight out of
  ``structures.tar.xz`` in one streaming pass;
* ``aflow``: a deterministic subset of pymatgen's bundled AFLOW prototype library;
* ``random``: random structures with partially occupied, mixed sites that together use every element
  of the scattering table, some with Debye-Waller factors, at several wavelengths and 2theta ranges;
* ``fixtures``: the partially occupied CIFs of ``tests/data``.

Run with ``-s`` to see the summary (structures per source and crystal system, worst errors); set
``SYNTHXRD_AGREEMENT_REPORT=path.json`` to also write it as JSON.

Golden values (NaCl, Si, CsCl at lambda = 1.5406 A, 5-90 degrees), cross-checked with pymatgen:

>>> import numpy as np
>>> from pymatgen.analysis.diffraction.xrd import XRDCalculator
>>> from pymatgen.core import Lattice, Structure
>>> from synthxrd import simulate
>>> def first(structure, n):
...     p = simulate.peak_list(structure)
...     ref = XRDCalculator(wavelength=1.5406).get_pattern(structure, two_theta_range=(5, 90))
...     assert len(ref.x) == len(p.two_theta)
...     assert np.allclose(ref.x, p.two_theta, rtol=0, atol=1e-6)
...     assert np.allclose(ref.y / 100, p.intensity, rtol=0, atol=1e-6)
...     assert np.allclose(ref.d_hkls, p.d, rtol=1e-9, atol=0)
...     return [(round(float(t), 3), round(float(i), 4), round(float(d), 5)) for t, i, d
...             in zip(p.two_theta[:n], p.intensity[:n], p.d[:n])]
>>> nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
>>> first(nacl, 4)  # (111), (200), (220), (311): 2theta, I/I_max, d
[(27.367, 0.0808, 3.25626), (31.704, 1.0, 2.82), (45.449, 0.6564, 1.99404), (53.87, 0.0195, 1.70052)]
>>> si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]])
>>> first(si, 4)  # (111), (220), (311), (400); (200) is forbidden
[(28.442, 1.0, 3.13559), (47.302, 0.6666, 1.92015), (56.122, 0.396, 1.63751), (69.129, 0.1071, 1.35775)]
>>> cscl = Structure(Lattice.cubic(4.209), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
>>> first(cscl, 4)  # (100), (110), (111), (200)
[(21.091, 0.3648, 4.209), (30.0, 1.0, 2.97621), (36.962, 0.1213, 2.43007), (42.941, 0.1788, 2.1045)]
>>> [tuple(int(v) for v in hkl) for hkl in simulate.peak_list(cscl).hkl[:4]]
[(1, 0, 0), (1, 1, 0), (1, 1, 1), (2, 0, 0)]
"""

from __future__ import annotations

import csv
import doctest
import gzip
import json
import math
import os
import sys
import tarfile
import warnings
from collections import defaultdict
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifParser

from synthxrd import simulate
from synthxrd.structure import scattering_table

# pymatgen warns about rounded CIF coordinates, missing _chemical_formula_sum, etc.; not our concern.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

#: Acceptance bounds of the issue "exact powder-XRD simulator".
POSITION_TOL = 1e-6  # degrees 2theta
INTENSITY_TOL = 1e-6  # fraction of the strongest peak
D_REL_TOL = 1e-9  # d-spacings: relative

DEFAULT_WAVELENGTH = 1.5406
CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
MIN_TOTAL = 200

MP_PER_SYSTEM = 25
MP_MIN_PER_SYSTEM = 20  # a few CIFs may fail to parse; fewer than this fails the test
MP_MAX_ATOMS = 80
MP_SEED = 20230314

AFLOW_PER_SYSTEM = 10

RANDOM_SEED = 1414
RANDOM_GROUP_SIZE = 4  # elements per random structure: 98 elements -> 25 structures
RANDOM_SPACE_GROUPS = {
    "triclinic": (1, 2),
    "monoclinic": (3, 5, 11, 12, 14, 15),
    "orthorhombic": (19, 33, 55, 62, 63, 70),
    "tetragonal": (75, 85, 99, 122, 136, 139),
    "trigonal": (143, 146, 148, 160, 164, 166),
    "hexagonal": (168, 174, 176, 186, 191, 194),
    "cubic": (195, 198, 205, 215, 221, 225, 227),
}
#: (wavelength, 2theta range) settings cycled through by the random structures.
RANDOM_SETTINGS = (
    (DEFAULT_WAVELENGTH, (5.0, 90.0)),
    ("MoKa1", (5.0, 60.0)),
    ("CoKa1", (10.0, 120.0)),
    (1.2345, (0.0, 90.0)),
    ("CuKa1", (20.0, 150.0)),
    (0.95, (2.5, 75.0)),
)

#: pymatgen's bundled AFLOW prototype library (what ``pymatgen.analysis.prototypes`` loads with ``loadfn``).
AFLOW_LIBRARY = files("pymatgen.analysis.prototypes").joinpath("aflow_prototypes.json.gz")


def crystal_system(number: int) -> str:
    """Crystal system of an ITA space-group number."""
    for system, last in zip(CRYSTAL_SYSTEMS, (2, 15, 74, 142, 167, 194, 230)):
        if 1 <= number <= last:
            return system
    raise ValueError(f"space group {number} not in 1-230")


# ----------------------------------------------------------------------------------------------
# comparison and report


RECORDS: list[dict] = []


def compare(structure: Structure, name: str, source: str, system: str, *, ours=None,
            wavelength: float | str = DEFAULT_WAVELENGTH, two_theta_range=(5.0, 90.0),
            debye_waller: dict[str, float] | None = None) -> dict:
    """Peaks of ``ours`` (default: ``structure``) by synthxrd vs ``structure`` by pymatgen; one record."""
    calc = XRDCalculator(wavelength=wavelength, debye_waller_factors=debye_waller)
    ref = calc.get_pattern(structure, scaled=True, two_theta_range=two_theta_range)
    x_ref, y_ref, d_ref = np.asarray(ref.x), np.asarray(ref.y) / 100.0, np.asarray(ref.d_hkls)
    two_theta, intensity = simulate.peaks(structure if ours is None else ours, wavelength, two_theta_range,
                                          debye_waller=debye_waller)
    d = simulate.peak_list(structure, wavelength=wavelength, two_theta_range=two_theta_range,
                           debye_waller=debye_waller).d
    same = len(two_theta) == len(x_ref) == len(d)
    record = {
        "source": source,
        "name": name,
        "crystal_system": system,
        "n_sites": len(structure),
        "ordered": bool(structure.is_ordered),
        "wavelength": wavelength,
        "two_theta_range": list(two_theta_range),
        "debye_waller": bool(debye_waller),
        "n_peaks": int(len(two_theta)),
        "n_peaks_pymatgen": int(len(x_ref)),
        "position_error": float(np.max(np.abs(two_theta - x_ref), initial=0.0)) if same else math.inf,
        "intensity_error": float(np.max(np.abs(intensity - y_ref), initial=0.0)) if same else math.inf,
        "d_rel_error": float(np.max(np.abs(d - d_ref) / d_ref, initial=0.0)) if same else math.inf,
    }
    record["ok"] = bool(
        same and record["position_error"] <= POSITION_TOL and record["intensity_error"] <= INTENSITY_TOL
        and record["d_rel_error"] <= D_REL_TOL and len(x_ref) > 0
    )
    RECORDS.append(record)
    return record


def assert_all_agree(records: list[dict], minimum: int) -> None:
    assert len(records) >= minimum, f"only {len(records)} structures compared, expected >= {minimum}"
    bad = [r for r in records if not r["ok"]]
    assert not bad, f"{len(bad)} of {len(records)} structures disagree with pymatgen:\n" + "\n".join(
        f"  {r['source']}:{r['name']} ({r['crystal_system']}, lambda={r['wavelength']}, "
        f"range={r['two_theta_range']}): peaks {r['n_peaks']} vs {r['n_peaks_pymatgen']}, "
        f"d2theta={r['position_error']:.3g}, dI={r['intensity_error']:.3g}, dd/d={r['d_rel_error']:.3g}"
        for r in bad[:15]
    )


def summarize(records: list[dict]) -> dict:
    """Counts per source and crystal system and the worst errors (JSON-ready)."""
    def worst(rs: list[dict], key: str) -> dict:
        r = max(rs, key=lambda r: r[key])
        return {"value": r[key], "structure": f"{r['source']}:{r['name']}"}

    def block(rs: list[dict]) -> dict:
        systems = defaultdict(int)
        for r in rs:
            systems[r["crystal_system"]] += 1
        return {
            "n": len(rs),
            "n_failed": sum(not r["ok"] for r in rs),
            "by_crystal_system": {s: systems[s] for s in CRYSTAL_SYSTEMS if systems[s]},
            "n_disordered": sum(not r["ordered"] for r in rs),
            "n_with_debye_waller": sum(r["debye_waller"] for r in rs),
            "n_peaks": sum(r["n_peaks"] for r in rs),
            "max_position_error_deg": worst(rs, "position_error"),
            "max_intensity_error": worst(rs, "intensity_error"),
            "max_d_rel_error": worst(rs, "d_rel_error"),
        }

    by_source = defaultdict(list)
    for r in records:
        by_source[r["source"]].append(r)
    import pymatgen.core
    import synthxrd

    return {
        "reference": f"pymatgen {pymatgen.core.__version__} XRDCalculator.get_pattern(scaled=True) / 100",
        "synthxrd_version": synthxrd.__version__,
        "tolerances": {"position_deg": POSITION_TOL, "intensity": INTENSITY_TOL, "d_relative": D_REL_TOL},
        "total": block(records) if records else {"n": 0},
        "sources": {s: block(rs) for s, rs in by_source.items()},
        "wavelengths": sorted({str(r["wavelength"]) for r in records}),
        "two_theta_ranges": sorted({tuple(r["two_theta_range"]) for r in records}),
    }


def format_summary(summary: dict) -> str:
    head = f"{'source':<16}{'n':>5}" + "".join(f"{s[:5]:>7}" for s in CRYSTAL_SYSTEMS)
    head += f"{'max|d2theta|':>14}{'max|dI|':>11}{'fail':>6}"
    lines = ["", f"synthxrd.simulate.peaks vs {summary['reference']}", head]
    for name, b in [*summary["sources"].items(), ("total", summary["total"])]:
        if not b.get("n"):
            continue
        lines.append(
            f"{name:<16}{b['n']:>5}" + "".join(f"{b['by_crystal_system'].get(s, 0):>7}" for s in CRYSTAL_SYSTEMS)
            + f"{b['max_position_error_deg']['value']:>14.2e}{b['max_intensity_error']['value']:>11.2e}"
            + f"{b['n_failed']:>6}"
        )
    t = summary["total"]
    if t.get("n"):
        lines.append(f"worst position error: {t['max_position_error_deg']}")
        lines.append(f"worst intensity error: {t['max_intensity_error']}")
        lines.append(f"wavelengths: {', '.join(summary['wavelengths'])}; 2theta ranges: {summary['two_theta_ranges']}")
    return "\n".join(lines)


@pytest.fixture(scope="module", autouse=True)
def agreement_report():
    """Collect the records of this module; print the summary and write it as JSON if asked."""
    RECORDS.clear()
    yield RECORDS
    if not RECORDS:
        return
    summary = summarize(RECORDS)
    print(format_summary(summary), file=sys.stdout)
    target = os.environ.get("SYNTHXRD_AGREEMENT_REPORT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps({"summary": summary, "records": RECORDS}, indent=1, default=str))


# ----------------------------------------------------------------------------------------------
# sources


def parse_cif_text(text: str) -> Structure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CifParser.from_str(text).parse_structures(primitive=False)[0]


@pytest.fixture(scope="module")
def experimental_cifs(experimental_data: Path) -> list[tuple[Path, str]]:
    """Distinct CIFs of the experimental manifest with their crystal system, sorted by path."""
    with open(experimental_data / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["cif_path"].strip()]
    systems = {r["cif_path"]: r["crystal_system"] or crystal_system(int(r["spacegroup"])) for r in rows}
    return [(experimental_data / p, systems[p]) for p in sorted(systems)]


def select_mp(rows: list[dict]) -> dict[str, list[tuple[str, int]]]:
    """Deterministic stratified sample: per crystal system, distinct space groups first."""
    by_system = defaultdict(list)
    for r in sorted(rows, key=lambda r: int(r["mp_id"].split("-")[1])):
        if int(r["n_atoms"]) <= MP_MAX_ATOMS:
            sg = int(r["spacegroup"])
            by_system[crystal_system(sg)].append((r["mp_id"], sg))
    selection = {}
    for i, system in enumerate(CRYSTAL_SYSTEMS):
        candidates = by_system[system]
        order = np.random.default_rng(MP_SEED + i).permutation(len(candidates))
        seen, first, rest = set(), [], []
        for j in order:
            mp_id, sg = candidates[j]
            (rest if sg in seen else first).append(candidates[j])
            seen.add(sg)
        selection[system] = (first + rest)[:MP_PER_SYSTEM]
    return selection


@pytest.fixture(scope="module")
def mp_selection(mp_experimental_data: Path) -> dict[str, list[tuple[str, int]]]:
    with open(mp_experimental_data / "index.csv", newline="") as fh:
        return select_mp(list(csv.DictReader(fh)))


@pytest.fixture(scope="module")
def mp_structures(mp_experimental_data: Path, mp_selection) -> dict[str, list[tuple[str, int, Structure]]]:
    """The selected structures, parsed during one streaming pass over ``structures.tar.xz``."""
    wanted = {mp_id: (system, sg) for system, items in mp_selection.items() for mp_id, sg in items}
    found: dict[str, list] = {s: [] for s in CRYSTAL_SYSTEMS}
    remaining = set(wanted)
    with tarfile.open(mp_experimental_data / "structures.tar.xz", mode="r|xz") as archive:
        for member in archive:
            stem = Path(member.name).name.removesuffix(".cif")
            if not member.isfile() or stem not in remaining:
                continue
            remaining.discard(stem)
            text = archive.extractfile(member).read().decode("utf-8", errors="replace")
            system, sg = wanted[stem]
            try:
                found[system].append((stem, sg, parse_cif_text(text)))
            except Exception:  # noqa: BLE001 - counted below through MP_MIN_PER_SYSTEM
                pass
            if not remaining:
                break
    for items in found.values():
        items.sort(key=lambda t: int(t[0].split("-")[1]))
    return found


@pytest.fixture(scope="module")
def aflow_prototypes() -> list[tuple[str, str, Structure]]:
    """Up to AFLOW_PER_SYSTEM prototypes per crystal system, evenly spaced in label order."""
    with AFLOW_LIBRARY.open("rb") as raw, gzip.open(raw, "rt") as fh:
        library = json.load(fh)
    by_system = defaultdict(list)
    for entry in library:
        label = entry["tags"]["aflow"]
        by_system[crystal_system(int(label.split("_")[2]))].append((label, entry))
    chosen = []
    for system in CRYSTAL_SYSTEMS:
        entries = sorted(by_system[system], key=lambda t: t[0])
        picks = np.unique(np.linspace(0, len(entries) - 1, min(AFLOW_PER_SYSTEM, len(entries))).round().astype(int))
        for j in picks:
            label, entry = entries[j]
            chosen.append((label, system, Structure.from_dict(entry["snl"])))
    return chosen


def random_lattice(system: str, rng: np.random.Generator) -> Lattice:
    a, b, c = rng.uniform(3.5, 9.0, size=3)
    if system == "triclinic":
        while True:
            alpha, beta, gamma = rng.uniform(70.0, 115.0, size=3)
            lat = Lattice.from_parameters(a, b, c, alpha, beta, gamma)
            if lat.volume > 0.6 * a * b * c:
                return lat
    if system == "monoclinic":
        return Lattice.monoclinic(a, b, c, rng.uniform(92.0, 118.0))
    if system == "orthorhombic":
        return Lattice.orthorhombic(a, b, c)
    if system == "tetragonal":
        return Lattice.tetragonal(a, c)
    if system in ("trigonal", "hexagonal"):
        return Lattice.hexagonal(a, c + 3.0)
    return Lattice.cubic(a + 2.0)


def random_cases() -> list[dict]:
    """Random structures with mixed, partially occupied sites using every element of the table.

    Elements are shuffled and dealt out RANDOM_GROUP_SIZE per structure; each structure has one site
    at the origin (a special position) and the other sites at random coordinates. Crystal systems,
    wavelengths and 2theta ranges are cycled; every third structure gets Debye-Waller factors.
    """
    rng = np.random.default_rng(RANDOM_SEED)
    symbol_to_z = scattering_table()[0]
    # D shares Z = 1 (and its coefficients) with H; pymatgen turns "D" into H anyway.
    elements = sorted((s for s in symbol_to_z if s != "D"), key=symbol_to_z.get)
    elements = [elements[i] for i in rng.permutation(len(elements))]
    cases = []
    for i, start in enumerate(range(0, len(elements), RANDOM_GROUP_SIZE)):
        group = elements[start:start + RANDOM_GROUP_SIZE]
        system = CRYSTAL_SYSTEMS[i % len(CRYSTAL_SYSTEMS)]
        sg = int(rng.choice(RANDOM_SPACE_GROUPS[system]))
        # first site: two elements sharing it, not fully occupied; then one site per remaining element
        species = [{group[0]: round(rng.uniform(0.2, 0.6), 3), group[1]: round(rng.uniform(0.1, 0.35), 3)}]
        species += [{el: round(rng.uniform(0.3, 1.0), 3)} for el in group[2:]]
        coords = [[0.0, 0.0, 0.0]] + rng.uniform(0.0, 1.0, size=(len(species) - 1, 3)).round(4).tolist()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_spacegroup(sg, random_lattice(system, rng), species, coords)
        wavelength, two_theta_range = RANDOM_SETTINGS[i % len(RANDOM_SETTINGS)]
        dw = ({el: round(float(rng.uniform(0.1, 3.0)), 3) for el in group} if i % 3 == 0 else None)
        cases.append({"name": f"random{i:02d}-sg{sg}-{'-'.join(group)}", "system": system, "structure": structure,
                      "wavelength": wavelength, "two_theta_range": two_theta_range, "debye_waller": dw})
    return cases


@pytest.fixture(scope="module")
def random_structures() -> list[dict]:
    return random_cases()


# ----------------------------------------------------------------------------------------------
# tests


def test_experimental_cifs(experimental_cifs):
    """Every distinct CIF of the experimental manifest, given to synthxrd as a path."""
    records = []
    for path, system in experimental_cifs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = CifParser(path).parse_structures(primitive=False)[0]
        name = "/".join(path.parts[-3:])
        records.append(compare(structure, name, "experimental", system, ours=str(path)))
    assert_all_agree(records, minimum=15)
    assert any(not r["ordered"] for r in records), "expected some partially occupied experimental CIFs"


@pytest.mark.parametrize("system", CRYSTAL_SYSTEMS)
def test_mp_experimental(system, mp_structures):
    """A stratified sample of mp_experimental, read from the archive, per crystal system."""
    items = mp_structures[system]
    records = [compare(s, mp_id, "mp_experimental", system) for mp_id, _, s in items]
    assert_all_agree(records, minimum=MP_MIN_PER_SYSTEM)
    n_groups = len({sg for _, sg, _ in items})
    assert n_groups >= min(2 if system == "triclinic" else 5, len(items)), f"only {n_groups} space groups"


def test_aflow_prototypes(aflow_prototypes):
    records = [compare(s, label, "aflow", system) for label, system, s in aflow_prototypes]
    assert_all_agree(records, minimum=40)


def test_random_structures(random_structures):
    records = [
        compare(c["structure"], c["name"], "random", c["system"], wavelength=c["wavelength"],
                two_theta_range=c["two_theta_range"], debye_waller=c["debye_waller"])
        for c in random_structures
    ]
    assert_all_agree(records, minimum=20)


def test_random_structures_cover_the_scattering_table(random_structures):
    """Every element with coefficients appears at least once; DW, wavelengths and ranges vary."""
    used = {sp.symbol for c in random_structures for site in c["structure"] for sp in site.species}
    symbols = set(scattering_table()[0]) - {"D"}  # D is H (Z = 1, same coefficients)
    assert symbols <= used, f"elements never used: {sorted(symbols - used)}"
    assert all(not c["structure"].is_ordered for c in random_structures)
    assert sum(c["debye_waller"] is not None for c in random_structures) >= 5
    assert {str(c["wavelength"]) for c in random_structures} >= {"MoKa1", "CoKa1", "1.2345", "1.5406"}
    assert len({c["two_theta_range"] for c in random_structures}) >= 5
    assert {c["system"] for c in random_structures} == set(CRYSTAL_SYSTEMS)


@pytest.mark.parametrize("name", ["partial_occupancy.cif", "partial_occupancy_hexagonal.cif"])
def test_fixture_cifs(name, test_data):
    path = test_data / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = CifParser(path).parse_structures(primitive=False)[0]
    assert not structure.is_ordered
    system = "cubic" if "hexagonal" not in name else "hexagonal"
    assert_all_agree([compare(structure, name, "fixtures", system, ours=path)], minimum=1)


def test_other_inputs_give_the_same_peaks(mp_structures, tmp_path):
    """ASE Atoms, a synthxrd Crystal and a CIF file written by pymatgen give the peaks of the Structure."""
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.cif import CifWriter

    from synthxrd.structure import to_crystal

    ordered = [(mp_id, s) for items in mp_structures.values() for mp_id, _, s in items[:2] if s.is_ordered]
    assert len(ordered) >= 7
    for mp_id, s in ordered:
        tt, ii = simulate.peaks(s)
        path = tmp_path / f"{mp_id}.cif"
        CifWriter(s).write_file(path)
        for other, tol in ((AseAtomsAdaptor.get_atoms(s), 1e-9), (to_crystal(s), 1e-9), (path, 1e-6)):
            tt2, ii2 = simulate.peaks(other)
            assert len(tt2) == len(tt), (mp_id, type(other).__name__)
            np.testing.assert_allclose(tt2, tt, rtol=0, atol=tol, err_msg=mp_id)
            np.testing.assert_allclose(ii2, ii, rtol=0, atol=tol, err_msg=mp_id)


def test_coverage(experimental_cifs, mp_structures, aflow_prototypes, random_structures):
    """At least MIN_TOTAL structures over all sources, and every crystal system in each big source."""
    counts = defaultdict(lambda: defaultdict(int))
    for _, system in experimental_cifs:
        counts["experimental"][system] += 1
    for system, items in mp_structures.items():
        counts["mp_experimental"][system] += len(items)
    for _, system, _ in aflow_prototypes:
        counts["aflow"][system] += 1
    for c in random_structures:
        counts["random"][c["system"]] += 1
    total = sum(sum(v.values()) for v in counts.values())
    assert total >= MIN_TOTAL, f"{total} structures, expected >= {MIN_TOTAL}: {dict(counts)}"
    for source in ("mp_experimental", "aflow", "random"):
        missing = set(CRYSTAL_SYSTEMS) - {s for s, n in counts[source].items() if n}
        assert not missing, f"{source}: no structure of {sorted(missing)}"
    assert all(counts["mp_experimental"][s] >= MP_MIN_PER_SYSTEM for s in CRYSTAL_SYSTEMS)


def test_golden_values_doctest():
    """The module docstring: NaCl, Si and CsCl peaks, checked against pymatgen inside the doctest."""
    test = doctest.DocTestParser().get_doctest(__doc__, {}, "golden_values", __file__, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    output: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.run(test, out=output.append)
    assert test.examples, "the golden-value doctest is empty"
    assert runner.failures == 0, "".join(output)
