"""The model card's figures are the shipped model's: recomputed here, and the test fails when they differ.

``python tests/test_modelcard.py`` rewrites the card's generated block (after shipping a model or a
fusion rule). The packaged patterns are measured from a fresh checkout; XRED and rruff_dev where the
shared data are (CI has them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from synthxrd.modelcard import FIGURES_BEGIN, FIGURES_END, card_figures, figures_markdown  # noqa: E402

CARD = Path(__file__).resolve().parents[1] / "docs" / "model_card.md"


def _shared() -> Path | None:
    from conftest import shared_data_root

    root = shared_data_root()
    return root if root.exists() else None


def test_the_cards_figures_are_the_shipped_models():
    rows = card_figures(CARD.read_text(encoding="utf-8"))
    assert [r.split(" | ")[0] for r in rows] == ["| packaged (17)", "| XRED (42)", "| rruff_dev (300)"]
    measured = figures_markdown(shared=_shared()).splitlines()[2:]
    for row in measured:
        assert row in rows, f"the card says {[r for r in rows if r.split(' | ')[0] == row.split(' | ')[0]]}, " \
                            f"the shipped model gives {row}: rewrite it with `python tests/test_modelcard.py`"


def test_a_card_without_the_block_is_an_error():
    from synthxrd.errors import ConfigError

    with pytest.raises(ConfigError, match="no figures block"):
        card_figures("# a card\n| set | ...\n")
    assert card_figures(f"x\n{FIGURES_BEGIN}\n| a | 1 |\n| b | 2 |\n{FIGURES_END}\n") == ["| a | 1 |", "| b | 2 |"]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    text = CARD.read_text(encoding="utf-8")
    head, rest = text.split(FIGURES_BEGIN, 1)
    tail = rest.split(FIGURES_END, 1)[1]
    CARD.write_text(f"{head}{FIGURES_BEGIN}\n{figures_markdown(shared=_shared())}\n{FIGURES_END}{tail}", encoding="utf-8")
    print(f"rewrote the figures of {CARD}")
