"""The self-describing model contract: what a checkpoint holds and how a pattern becomes network input.

Training and inference meet only here (docs/architecture.md, "The checkpoint contract"). This module
needs numpy only: torch is imported inside the functions that read or write weights, so importing it
does not load torch. A checkpoint is a plain ``torch.save`` dict of tensors, numbers and strings, read
with ``torch.load(weights_only=True)``:

=================  ===================================================================================
key                meaning
=================  ===================================================================================
model              state dict (float32 in a run; float16 or float32 in an export)
model_config       ``model.config`` of :func:`synthxrd.models.build` (rebuilds the architecture)
classes            ITA numbers of the logits, in order
input              :class:`InputSpec` as a dict: the model grid, wavelength, transform, clean
calibration        ``{"temperature": T, ...}`` (:mod:`synthxrd.models.calibration`); T = 1 when absent
fusion             the fusion rule of this network with a reference library
                   (:class:`synthxrd.match.fusion.FusionRule` as a dict), bound to the hash of these
                   weights (:func:`weights_fingerprint`) and of the library; written by ``synthxrd export``
step, best, config, synthxrd_version, statistics_version
                   provenance (a training run adds optimizer, scheduler and RNG state)
=================  ===================================================================================

Checkpoints written before ``input`` existed are read as the legacy contract (5-90 degrees at
0.01 degrees, Cu K-alpha1, square root), which is what they were trained on.

:meth:`InputSpec.apply` is the one preprocessing function: patterns on the fine pattern grid
(:class:`synthxrd.simulate.Grid`, 5-90 degrees at 0.01 degrees) are averaged onto the model grid
(:func:`bin_patterns`), clipped at 0, divided by their maximum and square-rooted (with ``clean``,
background and noise are taken away first, as search-match does). The training
stream applies it to simulated patterns and :class:`synthxrd.predict.Predictor` to measured ones
after :func:`synthxrd.io.resample` onto the fine grid, so both sides see identical inputs.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.files import atomic_write
from synthxrd.simulate.common import DEFAULT_WAVELENGTH, Grid

__all__ = ["InputSpec", "bin_patterns", "bin_weights", "load_checkpoint", "load_model", "save_checkpoint",
           "export_model", "checkpoint_input", "checkpoint_temperature", "EXPORT_KEYS", "TRANSFORMS", "PATH_KEYS",
           "portable_config", "average_checkpoints", "weights_fingerprint"]

#: Input transforms of the max-normalised pattern: Schopmans et al. 2023 feed sqrt(I).
TRANSFORMS = ("sqrt", "linear")

#: What an exported model keeps of a checkpoint besides the weights.
EXPORT_KEYS = ("step", "best", "config", "classes", "model_config", "input", "calibration", "synthxrd_version",
               "statistics_version")


@dataclass(frozen=True)
class InputSpec:
    """The model's input: ``step``-degree grid from ``start`` to ``stop`` at ``wavelength``, then ``transform``.

    The model grid is a subsample of the fine pattern grid :class:`~synthxrd.simulate.Grid`
    (same start and stop, 0.01 degree step): ``step`` must be a whole multiple of the fine step
    that divides the range, e.g. 0.01 (8501 points), 0.02 (4251) or 0.04 (2126).
    """

    start: float = 5.0
    stop: float = 90.0
    step: float = 0.01
    wavelength: float = DEFAULT_WAVELENGTH
    transform: str = "sqrt"
    #: Take background and noise away first (:func:`synthxrd.io.clean_patterns`, the cleaning of
    #: search-match), so that the network sees synthetic and measured patterns alike.
    clean: bool = False

    def __post_init__(self) -> None:
        fine = Grid()
        if not (math.isclose(self.start, fine.start) and math.isclose(self.stop, fine.stop)):
            raise ConfigError(f"input grid: start/stop must be those of the pattern grid ({fine.start}-{fine.stop} "
                              f"degrees), got {self.start}-{self.stop}")
        factor = self.step / fine.step
        cells = (fine.n - 1) / max(round(factor), 1)
        if not (self.step > 0 and math.isclose(factor, round(factor), abs_tol=1e-6) and round(factor) >= 1
                and math.isclose(cells, round(cells), abs_tol=1e-6)):
            raise ConfigError(f"input grid: step must be a multiple of {fine.step} degrees that divides "
                              f"{fine.start}-{fine.stop}, e.g. 0.01, 0.02, 0.04 or 0.05; got {self.step!r}")
        if self.transform not in TRANSFORMS:
            raise ConfigError(f"input transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if not isinstance(self.clean, bool):
            raise ConfigError(f"input clean must be true or false, got {self.clean!r}")
        if not (math.isfinite(self.wavelength) and 0.1 < self.wavelength < 5.0):
            raise ConfigError(f"input wavelength must be in (0.1, 5) Angstrom, got {self.wavelength!r}")

    @property
    def factor(self) -> int:
        """Fine-grid points per model-grid step."""
        return round(self.step / Grid().step)

    @property
    def grid(self) -> Grid:
        """The model grid."""
        return Grid(self.start, self.stop, (Grid().n - 1) // self.factor + 1)

    @property
    def n(self) -> int:
        return self.grid.n

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> InputSpec:
        """From a checkpoint's ``input`` entry; None (a checkpoint older than the entry) gives the legacy spec."""
        if not data:
            return cls()
        try:
            return cls(**{k: data[k] for k in ("start", "stop", "step", "wavelength", "transform", "clean") if k in data})
        except TypeError as exc:
            raise DataError(f"checkpoint input spec {data!r}: {exc}") from None

    def apply(self, patterns: np.ndarray) -> np.ndarray:
        """Network inputs (N, n) float32 from patterns on the fine grid ((N, 8501) or (8501,)).

        x = T(b / max b), b = :func:`bin_patterns` (clipped at 0), T = sqrt or identity; with
        ``clean``, the fine-grid patterns go through :func:`synthxrd.io.clean_patterns` first. A row
        without positive intensity stays 0.
        """
        y = np.atleast_2d(np.asarray(patterns, np.float64))
        if y.shape[1] != Grid().n:
            raise DataError(f"patterns on the pattern grid need {Grid().n} points per row, got shape {y.shape}")
        if self.clean:
            from synthxrd.io.prepare import clean_patterns

            y = clean_patterns(y, Grid().step)
        b = np.clip(bin_patterns(y, self.factor), 0.0, None)
        peak = b.max(axis=1, keepdims=True)
        b = np.divide(b, peak, out=np.zeros_like(b), where=peak > 0)
        return (np.sqrt(b) if self.transform == "sqrt" else b).astype(np.float32)

    def apply_torch(self, patterns):
        """:meth:`apply` on a (N, 8501) torch tensor, on its device (the GPU-simulation path; not
        with ``clean``, whose filters run on the CPU)."""
        import torch
        import torch.nn.functional as F

        if self.clean:
            raise ConfigError("input clean = true runs on the CPU (InputSpec.apply), not on the device")

        y = patterns.float()
        if self.factor > 1:
            w = torch.as_tensor(bin_weights(self.factor), dtype=y.dtype, device=y.device)[None, None]
            pad = w.shape[-1] // 2
            num = F.conv1d(y[:, None], w, padding=pad)[:, 0, ::self.factor]
            den = F.conv1d(torch.ones_like(y[:1, None]), w, padding=pad)[0, 0, ::self.factor]
            y = num / den
        y = y.clamp_min(0)
        peak = y.amax(dim=1, keepdim=True)
        y = torch.where(peak > 0, y / peak.clamp_min(torch.finfo(y.dtype).tiny), torch.zeros_like(y))
        return y.sqrt() if self.transform == "sqrt" else y


def bin_weights(factor: int) -> np.ndarray:
    """Weights (2 ceil(factor/2) + 1,) of the cell average of a piecewise-linear signal.

    w_j = (1/k) integral_{-k/2}^{k/2} hat(x - j) dx with hat(t) = max(0, 1 - |t|): the average over
    a model cell of width k fine steps of the linear interpolant of the fine samples, exactly the
    box filter :func:`synthxrd.io.resample` applies to measured patterns finer than the grid.
    """

    def F(t):  # antiderivative of the hat function, 0 at -inf
        t = np.clip(t, -1.0, 1.0)
        return np.where(t <= 0, 0.5 * (t + 1.0) ** 2, 1.0 - 0.5 * (1.0 - t) ** 2)

    half = math.ceil(factor / 2)
    j = np.arange(-half, half + 1, dtype=np.float64)
    return (F(factor / 2 - j) - F(-factor / 2 - j)) / factor


def bin_patterns(patterns: np.ndarray, factor: int) -> np.ndarray:
    """Cell averages (:func:`bin_weights`) of rows of fine-grid patterns at every ``factor``-th point.

    ``factor = 1`` returns the input. At the two end points the half cell outside the grid is left
    out and the weights renormalised.
    """
    if factor == 1:
        return patterns
    from scipy.ndimage import correlate1d

    w = bin_weights(factor).astype(patterns.dtype)
    out = correlate1d(patterns, w, axis=1, mode="constant")[:, ::factor]
    inside = correlate1d(np.ones(patterns.shape[1], patterns.dtype), w, mode="constant")[::factor]
    return out / inside


def checkpoint_input(meta: dict[str, Any]) -> InputSpec:
    """The :class:`InputSpec` of a checkpoint's metadata (legacy default when absent)."""
    return InputSpec.from_dict(meta.get("input"))


def checkpoint_temperature(meta: dict[str, Any]) -> float:
    """The softmax temperature of a checkpoint (1 when it was never calibrated)."""
    t = float((meta.get("calibration") or {}).get("temperature", 1.0))
    if not (math.isfinite(t) and t > 0):
        raise DataError(f"checkpoint calibration temperature must be a positive number, got {t!r}")
    return t


def weights_fingerprint(state_dict: dict[str, Any]) -> str:
    """``sha256:`` + hex digest of a state dict's names, shapes and values (floating tensors as
    float32, as the loaded model holds them): what a fusion rule fitted with these weights is bound to."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for name in sorted(state_dict):
        v = state_dict[name].detach().cpu()
        v = v.to(torch.float32) if v.is_floating_point() else v
        h.update(f"{name}:{tuple(v.shape)}:{v.dtype};".encode())
        h.update(v.contiguous().numpy().tobytes())
    return "sha256:" + h.hexdigest()


def load_checkpoint(path: str | Path, *, default_name: str = "checkpoint.pt") -> dict[str, Any]:
    """Read a checkpoint safely (``torch.load(weights_only=True)``); DataError naming the file otherwise.

    A folder means its ``default_name`` file.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / default_name
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the checkpoint is empty (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        if isinstance(exc, pickle.UnpicklingError):  # torch's advice (weights_only=False) is never repeated:
            if "Unsupported global" in str(exc):    # it would run the file's code
                raise DataError(f"{path}: not a safe checkpoint: it holds Python objects besides tensors and "
                                "plain data, and synthxrd never unpickles those") from None
            raise DataError(f"{path}: cannot load checkpoint (not a PyTorch file, or a damaged one)") from None
        first = str(exc).splitlines()[0] if str(exc).strip() else "no details"
        raise DataError(f"{path}: cannot load checkpoint ({type(exc).__name__}: {first})") from None


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """``torch.save(payload)`` to ``path`` atomically (temporary file, then rename)."""
    import torch

    return atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


def load_model(path: str | Path):
    """(model in eval mode, classes as ITA numbers, checkpoint metadata without weights) from a checkpoint alone."""
    from synthxrd.models import build

    ckpt = load_checkpoint(path)
    missing = [k for k in ("model", "classes", "model_config") if k not in ckpt]
    if missing:
        raise DataError(f"{path}: not a synthxrd checkpoint (no {missing[0]!r})")
    try:
        model = build(**ckpt["model_config"])
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()})
    except (KeyError, TypeError, RuntimeError, ConfigError) as exc:
        raise DataError(f"{path}: not a usable synthxrd checkpoint ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    model.eval()
    bad = [k for k, v in ckpt["model"].items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise DataError(f"{path}: the weights are not finite ({bad[0]}{' and more' if len(bad) > 1 else ''}): "
                        "the training run diverged; use an earlier checkpoint")
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler", "torch_rng")}
    meta["weights_sha256"] = weights_fingerprint(ckpt["model"])
    spec = checkpoint_input(meta)
    length = ckpt["model_config"].get("input_length", spec.n)
    if length != spec.n:
        raise DataError(f"{path}: the model takes {length} input points but its input grid "
                        f"({spec.start}-{spec.stop} degrees at {spec.step}) has {spec.n}")
    return model, np.asarray(ckpt["classes"], np.int64), meta


#: Training-config keys that hold paths of the machine a run was made on.
PATH_KEYS = ("out", "statistics", "real", "validation_dir", "init_weights")


def portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with each path of :data:`PATH_KEYS` cut to its file name: a shipped model names its
    inputs, not the folders of the machine it was trained on."""
    return {k: Path(v).name if k in PATH_KEYS and isinstance(v, str) else v for k, v in config.items()}


def average_checkpoints(checkpoints: Sequence[str | Path]) -> dict[str, Any]:
    """One checkpoint whose weights are the mean of those of ``checkpoints`` (weight averaging along a
    run, Izmailov et al., UAI 2018, arXiv 1803.05407); the metadata is the last one's, without its
    calibration (a temperature fitted to other weights). :class:`DataError` unless all hold the same
    network, classes and input grid."""
    import torch

    if not checkpoints:
        raise ConfigError("average: no checkpoint given")
    loaded = [load_checkpoint(p) for p in checkpoints]
    first = loaded[0]
    for path, ckpt in zip(checkpoints, loaded):
        missing = [k for k in ("model", "classes", "model_config") if k not in ckpt]
        if missing:
            raise DataError(f"{path}: not a synthxrd checkpoint (no {missing[0]!r})")
        for key in ("model_config", "classes", "input"):
            if ckpt.get(key) != first.get(key):
                raise DataError(f"{path}: its {key} differs from {checkpoints[0]}'s; only checkpoints of one "
                                "network can be averaged")
    weights = {k: torch.stack([c["model"][k].double() for c in loaded]).mean(0).to(v.dtype)
               if v.is_floating_point() else loaded[-1]["model"][k] for k, v in first["model"].items()}
    out = {k: v for k, v in loaded[-1].items() if k not in ("optimizer", "scheduler", "torch_rng", "calibration")}
    return {**out, "model": weights, "averaged": [Path(p).name for p in checkpoints]}


def export_model(checkpoint: str | Path | Sequence[str | Path], out: str | Path, *,
                 dtype: str = "float16") -> dict[str, Any]:
    """Write the inference part of a checkpoint (weights + :data:`EXPORT_KEYS`, no optimizer) to ``out``.

    Several checkpoints are averaged first (:func:`average_checkpoints`). ``dtype="float16"`` halves
    the file (the weights are cast back to float32 on loading, so predictions differ from the float32
    model only by the rounding of the weights, relative 2**-11). The input spec is written explicitly
    (the legacy one for old checkpoints). Returns the written payload without the weights.
    """
    import torch

    if dtype not in ("float16", "float32"):
        raise ConfigError(f"export dtype must be 'float16' or 'float32', got {dtype!r}")
    sources = [checkpoint] if isinstance(checkpoint, (str, Path)) else list(checkpoint)
    ckpt = load_checkpoint(sources[0]) if len(sources) == 1 else average_checkpoints(sources)
    missing = [k for k in ("model", "classes", "model_config") if k not in ckpt]
    if missing:
        raise DataError(f"{sources[0]}: not a synthxrd checkpoint (no {missing[0]!r})")
    cast = getattr(torch, dtype)
    weights = {k: v.to(cast) if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    meta = {k: ckpt[k] for k in EXPORT_KEYS if k in ckpt}
    if isinstance(meta.get("config"), dict):
        meta["config"] = portable_config(meta["config"])
    meta["input"] = checkpoint_input(ckpt).to_dict()
    meta["export"] = {"dtype": dtype, "source": Path(sources[0]).name if len(sources) == 1
                      else [Path(p).name for p in sources]}
    save_checkpoint(out, {"model": weights, **meta})
    return meta
