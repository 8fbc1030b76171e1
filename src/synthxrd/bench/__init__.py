"""Benchmarks behind ``synthxrd bench``: synthxrd against the reference implementations, measured
in the same run on one pinned core, reported as medians and ratios (never asserted in tests)."""
