"""The repository's documents and scripts name no path of the machine they were written on."""

from __future__ import annotations

import re
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
