"""Option parsing shared by several subcommands."""

from __future__ import annotations

from synthxrd.errors import ConfigError

__all__ = ["wavelength_option"]


def wavelength_option(value: str | None) -> float | None:
    """``--wavelength`` (a line name such as CuKa1, or Angstrom) in Angstrom; None when not given."""
    if value is None:
        return None
    from synthxrd.simulate.common import resolve_wavelength

    try:
        return resolve_wavelength(value)
    except ConfigError as exc:
        raise ConfigError(f"--wavelength: {exc}") from None
