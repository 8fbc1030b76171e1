"""The torch device a run or a predictor uses."""

from __future__ import annotations

from synthxrd.errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(name: str, *, local_rank: int = 0):
    """``torch.device`` of ``name``: auto (CUDA when available, else CPU) | cpu | cuda | cuda:N.

    Plain ``cuda`` means this process's GPU, ``cuda:<local_rank>`` (torchrun gives each process of a
    node its LOCAL_RANK). :class:`ConfigError` for a CUDA device without CUDA or an unknown name.
    """
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{int(local_rank)}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}") from None
