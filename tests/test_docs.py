"""The repository's documents and scripts name no path of the machine they were written on, and cite
no document outside the repository (a design note beside the checkout, ``../shared/DESIGN.md``): what
they cite, a reader of the repository alone can open."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: An absolute path into a machine's work, scratch or home folders (``/work/...``, ``/tmp/...``).
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|tmp|root|home|Users|scratch|mnt)/[\w.-]")
TEXT = {".md", ".py", ".sh", ".txt", ".json", ".cif", ".csv", ".toml", ".cfg", ".yml", ".yaml"}


def _documents() -> list[Path]:
    paths = [ROOT / "README.md", ROOT / "pyproject.toml", *sorted((ROOT / "docs").rglob("*")),
             *sorted((ROOT / "scripts").rglob("*")), *sorted((ROOT / ".ci").rglob("*")),
             *sorted((ROOT / "src" / "synthxrd" / "resources").rglob("*"))]
    return [p for p in paths if p.is_file() and (p.suffix in TEXT or p.parent.name == ".ci")]


def test_the_documents_are_found():
    names = {p.name for p in _documents()}
    assert {"README.md", "search_match.md", "fit_fusion.py", "run", "default.json"} <= names


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_machine_paths(path):
    text = path.read_text(encoding="utf-8", errors="replace")
    found = [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}..." for m in MACHINE_PATH.finditer(text)]
    assert not found, f"{path.relative_to(ROOT)} names paths of one machine: {found[:5]}"


def test_the_pattern_finds_machine_paths():
    assert MACHINE_PATH.search("see /work/tmp/validation and") and MACHINE_PATH.search("(/tmp/x.npz)")
    assert not MACHINE_PATH.search("../shared/data/x") and not MACHINE_PATH.search("runs/tmp/x")
    assert not MACHINE_PATH.search("https://example.org/home/page")


#: A cited document: a Markdown or reStructuredText file name, with or without a folder.
CITED = re.compile(r"(?<![\w/.-])((?:\.\.?/)*[\w./-]*[\w-]\.(?:md|rst))\b")


def _tracked() -> list[Path]:
    """The repository's files: ``git ls-files``, else the files below the root (an export without .git)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
        return [ROOT / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "venv", "build", "dist", "__pycache__"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


TRACKED = _tracked()
TRACKED_NAMES = {p.name for p in TRACKED}


def _citing_files() -> list[Path]:
    """Documents, scripts, and the package's and tests' sources (their docstrings cite documents too)."""
    sources = [p for p in TRACKED if p.suffix == ".py" and p.parts[len(ROOT.parts)] in ("src", "tests")
               and p.name != "test_docs.py"]
    return sorted(set(_documents()) | set(sources))


def outside_citations(path: Path, text: str) -> list[str]:
    """The documents ``text`` (of ``path``) cites that the repository does not hold: a path that leaves
    the repository, or a name that is neither a path (from the file's folder or the root) nor the
    name of a file in the repository."""
    root = ROOT.resolve()
    found = []
    for m in CITED.finditer(text):
        cited = m.group(1).rstrip(".")
        candidates = [(path.parent / cited).resolve(), (ROOT / cited).resolve()]
        if any(c.is_file() and c.is_relative_to(root) for c in candidates):
            continue  # a path to a file of the repository (from the file's folder or from the root)
        if not cited.startswith("../") and Path(cited).name in TRACKED_NAMES:
            continue  # a file of the repository named without its folder
        where = "outside" if any(not c.is_relative_to(root) for c in candidates) else "not in"
        found.append(f"line {text.count(chr(10), 0, m.start()) + 1}: {cited} ({where} the repository)")
    return found


@pytest.mark.parametrize("path", _citing_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_citation_of_documents_outside_the_repository(path):
    found = outside_citations(path, path.read_text(encoding="utf-8", errors="replace"))
    assert not found, f"{path.relative_to(ROOT)} cites documents the repository does not hold: {found[:5]}"


def test_the_citation_check_finds_outside_documents():
    doc = ROOT / "docs" / "training.md"
    assert outside_citations(doc, "see DESIGN.md and ../shared/DESIGN.md") == [
        "line 1: DESIGN.md (not in the repository)", "line 1: ../shared/DESIGN.md (outside the repository)"]
    assert outside_citations(doc, "see ../../shared/data/x/SOURCE.md") == [
        "line 1: ../../shared/data/x/SOURCE.md (outside the repository)"]
    assert not outside_citations(doc, "[map](architecture.md#two-sides), docs/refine.md, README.md, *.md, '.md'")
    assert not outside_citations(ROOT / "src" / "synthxrd" / "x.py", "(docs/architecture.md, SOURCE.md)")
    assert "architecture.md" in TRACKED_NAMES or (ROOT / "docs" / "architecture.md").is_file()
