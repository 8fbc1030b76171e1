"""Registry of named network builders: ``register_model``, ``list_models``, ``build``.

Modelled on torchvision's ``models/_api.py`` and timm's ``_registry.py``: every architecture is a
plain function ``builder(num_classes, *, input_length=8501, **options) -> torch.nn.Module`` decorated
with :func:`register_model`; :func:`build` looks the name up, checks the arguments and records them
on the model as ``model.config`` so that a checkpoint can rebuild it::

    model = build("resnet101", 145)
    model.config
    # {'name': 'resnet101', 'num_classes': 145, 'input_length': 8501,
    #  'kwargs': {'head': 'flatten', 'head_activation': None, 'dropout': 0.0, 'zero_init_residual': False}}
    same = build(**model.config)          # identical architecture; load the state_dict into it

``kwargs`` holds every option of the builder with its resolved value (defaults included), so a
checkpoint does not depend on the defaults of a later version. All values are JSON types.

This module does not import torch itself; the builders (``park.py``, ``resnet1d.py``) do.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from numbers import Integral
from typing import TYPE_CHECKING, Any, TypeVar

from synthxrd.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["register_model", "list_models", "build", "get_model", "get_builder", "model_options",
           "count_parameters", "DEFAULT_INPUT_LENGTH"]

#: Points of the default 2θ grid (5…90°, 0.01° step; docs/architecture.md).
DEFAULT_INPUT_LENGTH = 8501
#: Builder arguments that :func:`build` passes itself (not options).
_FIXED = ("num_classes", "input_length")

_REGISTRY: dict[str, Callable[..., Any]] = {}

F = TypeVar("F", bound=Callable[..., Any])


def register_model(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Register a builder under ``name`` (default: the function's name); usable as ``@register_model``.

    The builder must accept ``num_classes`` as its first argument and ``input_length`` as a
    keyword; every other parameter must be keyword-only with a default (these are the options that
    :func:`build` records). Registering a name twice raises ``ValueError``.
    """

    def decorate(f: F) -> F:
        key = name or f.__name__
        if key in _REGISTRY and _REGISTRY[key] is not f:
            raise ConfigError(f"a model named {key!r} is already registered ({_REGISTRY[key].__module__})")
        params = inspect.signature(f).parameters
        missing = [p for p in _FIXED if p not in params]
        if missing:
            raise ConfigError(f"model builder {key!r} must accept {missing}")
        _REGISTRY[key] = f
        return f

    return decorate(fn) if fn is not None else decorate


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def get_builder(name: str) -> Callable[..., Any]:
    """The builder registered as ``name``; ``ValueError`` listing the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(list_models())}") from None


def model_options(name: str) -> dict[str, Any]:
    """The options of model ``name`` (everything but num_classes/input_length) with their defaults."""
    params = inspect.signature(get_builder(name)).parameters
    return {p.name: p.default for p in params.values() if p.name not in _FIXED}


def build(name: str, num_classes: int, *, input_length: int = DEFAULT_INPUT_LENGTH,
          kwargs: Mapping[str, Any] | None = None, **options: Any) -> nn.Module:
    """Build the registered model ``name`` for ``num_classes`` classes and ``input_length`` points.

    Parameters
    ----------
    name
        A name from :func:`list_models` (e.g. ``"park_small"``, ``"resnet101"``).
    num_classes
        Number of output logits, an integer >= 1.
    input_length
        Number of points of the input pattern (default 8501, the 5…90° grid at 0.01°).
    kwargs
        Options as one mapping: the ``"kwargs"`` entry of ``model.config``, so that
        ``build(**model.config)`` rebuilds a model. Merged with ``**options``.
    **options
        Architecture options of that builder (see :func:`model_options`), e.g. ``head="pool"``.

    Returns
    -------
    torch.nn.Module
        Maps (B, input_length) or (B, 1, input_length) float tensors to logits (B, num_classes);
        ``model.config`` holds name, num_classes, input_length and the resolved options.

    Raises
    ------
    ValueError
        (:class:`~synthxrd.errors.ConfigError`) for an unknown name (the message lists the valid
        ones), a bad ``num_classes``/``input_length`` or an unknown option; each message names the
        value received.
    """
    builder = get_builder(name)
    num_classes = _positive_int("num_classes", num_classes)
    input_length = _positive_int("input_length", input_length)
    merged = dict(kwargs or {})
    both = sorted(set(merged) & set(options))
    if both:
        raise ConfigError(f"model option(s) {both} given both in kwargs= and as keywords")
    merged.update(options)
    accepted = model_options(name)
    unknown = sorted(set(merged) - set(accepted))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for model {name!r}; accepted: "
                          f"{', '.join(accepted) or '(none)'}")
    resolved = {**accepted, **merged}
    model = builder(num_classes, input_length=input_length, **resolved)
    model.config = {"name": name, "num_classes": num_classes, "input_length": input_length,
                    "kwargs": resolved}
    return model


#: torchvision spelling of :func:`build`.
get_model = build


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``model``; works on the ``meta`` device too."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _positive_int(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ConfigError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)
