"""Neural networks that read the space group off a powder pattern (PyTorch).

Networks of Schopmans, Reiser & Friederich, Digital Discovery 2 (2023) 1414 (arXiv 2303.11699;
reference code aimat-lab/ML4pXRDs, ``training/models.py``), rebuilt in PyTorch:

==================  ==========================================================================
name                network
==================  ==========================================================================
park_small          Park et al. 2017 CNN, 3 conv + dense 700-70 (:mod:`synthxrd.models.park`)
park_medium         ... dense 4040-202
park_big            ... dense 2300-1150
park_extended       4 conv of 120 channels + dense 3000-2000-1000
resnet10/50/101     1D ResNet, GroupNorm, flatten + dense 256 head (:mod:`synthxrd.models.resnet1d`)
resnet*_pool        same trunk, global-average-pooling head (any input length)
==================  ==========================================================================

Every model maps float tensors (B, L) or (B, 1, L) to logits (B, num_classes)::

    from synthxrd import models
    net = models.build("resnet101", num_classes=145)       # input_length=8501
    ckpt = {"config": net.config, "state_dict": net.state_dict()}
    again = models.build(**ckpt["config"]); again.load_state_dict(ckpt["state_dict"])

This is the only package (with ``train``/``evaluate``) that imports torch; it needs neither
pymatgen, spglib nor ray. torch is imported on first use of a network name below, not by importing
the package: :mod:`synthxrd.models.checkpoint` (the contract between training and inference),
:mod:`~synthxrd.models.device` and :mod:`~synthxrd.models.calibration` load without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synthxrd.models.park import ParkCNN
    from synthxrd.models.registry import (
        DEFAULT_INPUT_LENGTH,
        build,
        count_parameters,
        get_builder,
        get_model,
        list_models,
        model_options,
        register_model,
    )
    from synthxrd.models.resnet1d import BasicBlock1D, Bottleneck1D, ResNet1D

__all__ = [
    "build",
    "get_model",
    "list_models",
    "register_model",
    "get_builder",
    "model_options",
    "count_parameters",
    "DEFAULT_INPUT_LENGTH",
    "ParkCNN",
    "ResNet1D",
    "BasicBlock1D",
    "Bottleneck1D",
]

#: Where each public name lives; importing one imports park and resnet1d first (they register the
#: builders, and import torch).
_HOMES = {"ParkCNN": "park", "ResNet1D": "resnet1d", "BasicBlock1D": "resnet1d", "Bottleneck1D": "resnet1d",
          **{name: "registry" for name in __all__ if name not in ("ParkCNN", "ResNet1D", "BasicBlock1D",
                                                                    "Bottleneck1D")}}


def __getattr__(name: str) -> Any:
    """The networks and their registry, imported on first use (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for builders in ("park", "resnet1d"):  # registers the builders
        importlib.import_module(f"{__name__}.{builders}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
