"""The examples in the docstrings are true (run as doctests)."""

import doctest
import importlib

import pytest

MODULES = ["synthxrd.simulate.pattern", "synthxrd.wyckoff", "synthxrd.generate", "synthxrd.io.manifest"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no doctest"
    assert result.failed == 0
