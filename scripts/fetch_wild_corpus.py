"""Download the optional corpus of measured pattern files into tests/data/wild_optional/.

The files listed in ``tests/data/wild/optional_corpus.json`` are too large to store in the repository
or come without a licence that allows redistribution; ``tests/test_io_wild.py`` reads them when they
are present and skips them otherwise. Each is fetched from raw.githubusercontent.com at the pinned
commit, decompressed where the manifest says so, and checked against its SHA-256.

    python scripts/fetch_wild_corpus.py            # fetch what is missing
    python scripts/fetch_wild_corpus.py --force    # fetch everything again
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "tests" / "data" / "wild" / "optional_corpus.json"
TARGET = ROOT / "tests" / "data" / "wild_optional"
#: Seconds to wait for one download.
TIMEOUT = 60


def url_of(entry: dict) -> str:
    """The raw.githubusercontent.com address of a manifest entry (path quoted)."""
    return (f"https://raw.githubusercontent.com/{entry['repo']}/{entry['commit']}/"
            f"{urllib.parse.quote(entry['path'])}")


def fetch(entry: dict, target: Path) -> Path:
    """Download one entry into ``target``; raises ValueError when its SHA-256 is not the manifest's."""
    with urllib.request.urlopen(url_of(entry), timeout=TIMEOUT) as response:
        data = response.read()
    if entry.get("decompress") == "bz2":
        data = bz2.decompress(data)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise ValueError(f"{entry['name']}: SHA-256 {digest} is not the manifest's {entry['sha256']}")
    path = target / entry["name"]
    path.write_bytes(data)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="fetch files that are already present again")
    args = parser.parse_args(argv)
    TARGET.mkdir(parents=True, exist_ok=True)
    failed = 0
    for entry in json.loads(MANIFEST.read_text(encoding="utf-8"))["files"]:
        if (TARGET / entry["name"]).exists() and not args.force:
            continue
        try:
            path = fetch(entry, TARGET)
            print(f"{path.name}: {path.stat().st_size} bytes ({entry['repo']}, licence: {entry['licence']})")
        except (OSError, ValueError) as exc:
            print(f"{entry['name']}: not fetched ({exc})", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
