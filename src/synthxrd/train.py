"""On-the-fly training: fresh synthetic crystals every step, validation on unseen structure types.

Optimisation follows the reference (Schopmans, Reiser & Friederich 2023): Adam, lr 1e-4 halved
every 500 x 900 steps, batch 145, sparse categorical cross-entropy on sqrt(pattern) inputs. Options:
AdamW, linear warm-up + cosine decay, gradient clipping, label smoothing, bf16 autocast on CUDA, DDP
with torchrun. What the network sees is the checkpoint's input spec
(:class:`synthxrd.models.checkpoint.InputSpec`: ``grid_step``), the data the stream of
:mod:`synthxrd.data` (synthetic and, with ``real``, perturbed real crystals; ``renders`` augmented
renderings per crystal). On a CPU torch gets every available core but the data worker's
(``threads``, :func:`cpu_threads`); the workers sleep whenever their prefetch queue is full. At the
end (also after ``max_hours``) the softmax temperature is fitted on the validation set that selects
``best.pt`` and stored in it (:mod:`synthxrd.models.calibration`).

A run folder holds ``config.toml`` (the resolved config), ``run.json`` (versions, classes, seed,
statistics version), TensorBoard event files, ``checkpoint.pt`` (written atomically every
``checkpoint_every`` steps, at the end and on Ctrl-C/SIGTERM) and ``best.pt`` (best ``match``
top-1, else best ``random``). ``train(config, resume=True)`` continues exactly: model, optimizer,
scheduler, step and RNG state are restored and the data stream restarts at the saved step (each
batch is a pure function of the seed and its index, see :mod:`synthxrd.data`).
"""

from __future__ import annotations

import math
import os
import signal
import time
import warnings
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd import __version__
from synthxrd.config import available_cores, merge, to_dict, to_toml
from synthxrd.data import BatchMaker, StreamConfig, make_stream
from synthxrd.errors import ConfigError, DataError
from synthxrd.files import lock_folder, remove_stale_temporaries, write_json, write_text
from synthxrd.models.checkpoint import (InputSpec, checkpoint_input, export_model, load_checkpoint, load_model,
                                        portable_config, save_checkpoint)
from synthxrd.models.device import resolve_device

__all__ = ["TrainConfig", "train", "resume_config", "load_checkpoint", "load_model", "export_model", "evaluate_arrays",
           "topk_accuracy", "lr_factor", "predict_logits"]

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
SNAPSHOTS = "snapshots"  # weights-only checkpoints every snapshot_every steps (synthxrd evaluate loads them)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; written to ``<out>/config.toml``."""

    out: str = "runs/train"
    model: str = "park_big"  # see synthxrd.models.list_models(); chosen by the CPU comparison of docs/training.md
    model_kwargs: dict = field(default_factory=dict)
    batch_size: int = 145  # reference: 145
    max_steps: int = 100_000
    max_hours: float = 0.0  # stop (checkpointed, resumable) after this wall time; 0 = no limit
    lr: float = 1e-4  # reference: Adam 1e-4
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 0.0
    schedule: str = "step"  # step (reference) | cosine (with warm-up) | constant
    lr_step_size: int = 450_000  # reference: halve every 500 epochs x 900 steps
    lr_gamma: float = 0.5
    warmup_steps: int = 0
    grad_clip: float = 0.0  # 0 = off
    seed: int = 0
    init_weights: str | None = None  # start a new run from these weights (checkpoint or exported model); fresh optimizer and schedule
    workers: int = -1  # data worker processes (or Ray actors); -1 = cores - 1 (at least 1)
    threads: int = 0  # torch threads on a CPU; 0 = cpu_threads(): every available core but the local data worker's
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16 autocast on CUDA) | on | off
    prior: str = "statistics"  # label prior: statistics | uniform
    min_count: int = 50  # classes: groups with >= min_count structures in the statistics
    statistics: str | None = None  # None = shipped statistics
    ray_address: str | None = None  # None = local workers; "local", "auto" or "HOST:PORT" = Ray
    ray_resources: dict = field(default_factory=dict)  # custom Ray resources per actor, e.g. {data_node = 1} (docs/scaling.md)
    simulate_on: str = "worker"  # worker | device (GPU simulates, workers only generate)
    augment: str = "none"  # experimental realism: none | default | measured | path of a TOML file (synthxrd.augment)
    grid_step: float = 0.04  # model grid step in degrees (0.01, 0.02, 0.04, ...; synthxrd.models.checkpoint)
    clean_input: bool = False  # inputs with background and noise taken away (InputSpec.clean, as search-match)
    renders: int = 4  # augmented renderings per simulated crystal
    clean_fraction: float = 0.0  # with augment: share of the renderings drawn ideal (synthxrd.data)
    real: str | None = None  # real crystal set (`synthxrd real build`) mixed into the batches
    real_fraction: float = 0.0  # share of each batch from `real` (1 = the reference's "direct" baseline)
    perturb: dict = field(default_factory=dict)  # synthxrd.real.PerturbConfig options for the real crystals
    label_smoothing: float = 0.0
    aux_weight: float = 0.0  # weight of the crystal-system and extinction-group losses (marginal_loss)
    calibrate: bool = True  # fit a softmax temperature on the best validation set at the end (best.pt)
    val_every: int = 1000
    val_sets: tuple[str, ...] = ("random", "match")
    n_val_random: int = 1000
    val_max_patterns: int = 0  # evaluate at most this many patterns per set (fixed subsample); 0 = all
    validation_dir: str | None = None  # cache of synthxrd.validation sets (match, all, ...)
    checkpoint_every: int = 1000
    snapshot_every: int = 0  # keep the weights every N steps in <out>/snapshots (learning curves, averaging); 0 = off
    log_every: int = 20

    def __post_init__(self) -> None:
        checks = {
            "optimizer": self.optimizer in ("adam", "adamw"),
            "schedule": self.schedule in ("step", "cosine", "constant"),
            "amp": self.amp in ("auto", "on", "off"),
            "prior": self.prior in ("statistics", "uniform"),
            "simulate_on": self.simulate_on in ("worker", "device"),
            "batch_size": self.batch_size >= 1,
            "max_steps": self.max_steps >= 1,
            "max_hours": self.max_hours >= 0,
            "lr": math.isfinite(self.lr) and self.lr > 0,
            "val_every": self.val_every >= 1,
            "checkpoint_every": self.checkpoint_every >= 1,
            "snapshot_every": self.snapshot_every >= 0,
            "log_every": self.log_every >= 1,
            "threads": self.threads >= 0,
            "label_smoothing": 0.0 <= self.label_smoothing < 1.0,
            "aux_weight": self.aux_weight >= 0.0,
            "lr_step_size": self.lr_step_size >= 1,
            "seed": self.seed >= 0,
            "n_val_random": self.n_val_random >= 0,
            "val_max_patterns": self.val_max_patterns >= 0,
            "warmup_steps": self.warmup_steps >= 0,
            "weight_decay": self.weight_decay >= 0,
            "grad_clip": self.grad_clip >= 0,
            "lr_gamma": 0.0 < self.lr_gamma <= 1.0,  # a decay: a factor <= 0 would train against the gradient
            "workers": self.workers >= -1,
            "min_count": self.min_count >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"train config: invalid {bad[0]} = {getattr(self, bad[0])!r}")
        if self.ray_resources:
            from synthxrd.data import _ray_resources

            _ray_resources(self.ray_resources)  # a bad name or amount fails here, not on the cluster
        step = self.model_kwargs.get("input_step", self.grid_step) if isinstance(self.model_kwargs, dict) else None
        if isinstance(step, (int, float)) and not math.isclose(step, self.grid_step):
            raise ConfigError(f"train config: model_kwargs input_step = {step} is not grid_step = {self.grid_step}")

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> TrainConfig:
        """Defaults < TOML file < overrides."""
        return merge(cls, file=path, overrides=overrides)


def lr_factor(config: TrainConfig, step: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based).

    step: gamma^(step // lr_step_size) after a linear warm-up; cosine: linear warm-up then
    0.5 (1 + cos(pi progress)) (Loshchilov & Hutter, arXiv 1608.03983); constant: 1 after warm-up.
    """
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "step":
        return config.lr_gamma ** (step // config.lr_step_size)
    if config.schedule == "cosine":
        span = max(1, config.max_steps - config.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - config.warmup_steps) / span)))
    return 1.0


def cpu_threads(config: TrainConfig, cores: int, world: int = 1, workers: int = 1) -> int:
    """Torch threads of a CPU run: ``config.threads``, else every core but one when local data workers
    run (``workers > 0``, no Ray), shared by the ``world`` processes of the node; at least 1.

    With 2 cores, one thread beside the data worker made 1.8-2.9x the patterns/s of two threads that
    share a core with it (``synthxrd bench train``, docs/training.md): an OpenMP step waits for its
    slowest thread."""
    spare = 1 if workers > 0 and config.ray_address is None else 0
    return config.threads or max(1, (cores - spare) // world)


def torch_seed(seed: int, rank: int) -> int:
    """The seed of torch's generator on ``rank``: ``seed * 1000 + rank``, wrapped into the int64 range that
    ``torch.manual_seed`` takes (every seed >= 0 is a valid run seed, as numpy's generators take any)."""
    return (seed * 1000 + rank) % 2**63


def group_tables(classes: np.ndarray) -> np.ndarray:
    """(2, n_classes) int64: crystal-system index and extinction-group id of each class (an ITA number)."""
    from synthxrd.symmetry import crystal_system_table, extinction_group_table

    classes = np.asarray(classes, dtype=np.int64)
    return np.stack([crystal_system_table()[classes], extinction_group_table()[classes]])


def marginal_loss(logits, labels, groups):
    """Mean cross-entropy of the group marginals of the class softmax, summed over the rows of ``groups``.

    With ``p = softmax(logits)`` over the space groups and a partition ``g`` of the classes (a row of
    :func:`group_tables`: crystal system, extinction group), the probability of the true group is
    ``P(g(y)) = Σ_{c: g(c) = g(y)} p_c`` and the loss is ``-log P(g(y)) = -logsumexp_{c: g(c)=g(y)} log p_c``.
    It is a multi-task objective (space group + crystal system + extinction group, the three labels
    of Park et al. 2017, IUCrJ 4, 520) whose heads are the one space-group head, so predictions stay
    consistent across the levels and the checkpoint contract is unchanged.
    """
    import torch

    logp = torch.log_softmax(logits.float(), dim=1)
    total = logp.new_zeros(())
    for table in groups:  # (n_classes,) long tensor per level
        same = table[None, :] == table[labels][:, None]
        total = total - torch.logsumexp(logp.masked_fill(~same, -math.inf), dim=1).mean()
    return total


def topk_accuracy(logits, labels, ks=(1, 5)) -> dict[int, float]:
    """Fraction of rows whose label is among the k largest logits, for each k (ties as in
    :func:`synthxrd.predict.ranking`)."""
    from synthxrd.predict import ranking

    top = ranking(np.asarray(logits, np.float64), max(ks))
    hits = top == np.asarray(labels).reshape(-1, 1)
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def predict_logits(model, inputs: np.ndarray, *, device, batch_size: int = 256) -> np.ndarray:
    """Logits (N, C) float32 of ``model`` in eval mode on network inputs (N, G)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            out.append(model(torch.as_tensor(inputs[i:i + batch_size], device=device)).float().cpu().numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def evaluate_arrays(model, inputs: np.ndarray, labels: np.ndarray, *, device, batch_size: int = 256) -> dict[str, float]:
    """Loss, top-1 and top-5 of ``model`` on (network inputs, class-index labels)."""
    import torch

    logits = torch.as_tensor(predict_logits(model, inputs, device=device, batch_size=batch_size))
    y = torch.as_tensor(labels, dtype=torch.int64)
    n = len(y)
    if n == 0:
        return {"loss": 0.0, "top1": 0.0, "top5": 0.0, "n": 0}
    acc = topk_accuracy(logits, y, ks=(1, min(5, logits.shape[1])))
    return {"loss": float(torch.nn.functional.cross_entropy(logits, y)), "top1": acc[1],
            "top5": acc[min(5, logits.shape[1])], "n": n}


def _calibrate(model, val_sets: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, *, device
               ) -> dict[str, Any] | None:
    """Fit the softmax temperature (:func:`synthxrd.evaluate.temperature_report`) of the weights in
    ``path`` on the validation set that selects them (``match``, else ``random``) and store it in that file."""
    from synthxrd.evaluate import temperature_report

    name = "match" if "match" in val_sets else "random" if "random" in val_sets else None
    if name is None or not path.is_file():
        return None
    ckpt = load_checkpoint(path)
    model.load_state_dict(ckpt["model"])
    x, y = val_sets[name]
    info = {**temperature_report(predict_logits(model, x, device=device), y), "fitted_on": name,
            "step": int(ckpt["step"]), "file": path.name}
    ckpt["calibration"] = info
    save_checkpoint(path, ckpt)
    return info


#: The :class:`TrainConfig` fields that define the training stream: those of :class:`synthxrd.data.StreamConfig`.
STREAM_FIELDS = tuple(f.name for f in fields(StreamConfig))


def _stream_config(config: TrainConfig, **changes: Any) -> StreamConfig:
    """The training stream of ``config`` (with ``changes``, e.g. another seed)."""
    return StreamConfig(**{**{k: getattr(config, k) for k in STREAM_FIELDS}, **changes})


def replayed_batches(meta: dict[str, Any], config: TrainConfig) -> int:
    """How many of the first batches of a run of ``config`` its ``init_weights`` (checkpoint metadata
    ``meta``) were already trained on: their step when they were trained on the same stream (every
    :data:`STREAM_FIELDS` equal, paths compared by file name as in an export), else 0. Batch ``t`` is
    a pure function of ``(seed, t)`` (:mod:`synthxrd.data`), so such a run repeats those batches,
    in the same order, before it sees a new pattern: continue a campaign with another seed."""
    source = portable_config(dict(meta.get("config") or {}))
    ours = portable_config(to_dict(config))
    missing = object()
    if any(source.get(k, missing) != ours[k] for k in STREAM_FIELDS):
        return 0
    return int(meta.get("step", 0))


def _validation_sets(config: TrainConfig, classes: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Validation inputs (:meth:`InputSpec.apply`) and class indices; ``random`` from a separate synthetic stream."""
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    names = list(config.val_sets)
    if names != ["random"] and not config.validation_dir and "random" in names:
        warnings.warn(f"no validation_dir: validating on the random set only (skipping {[n for n in names if n != 'random']}; "
                      "build real-crystal sets with `synthxrd validation build`)", stacklevel=3)
        names = ["random"]
    spec = InputSpec(step=config.grid_step, clean=config.clean_input)
    if "random" in names and config.n_val_random > 0:
        # the one definition of the random set (that of the validation cache), with the training stream's
        # generator and classes and a seed of its own
        from synthxrd.validation import random_set

        generator = BatchMaker(_stream_config(config)).generator
        drawn = random_set(generator, classes, config.n_val_random, config.seed + 1_000_003)
        sets["random"] = (spec.apply(drawn.patterns), np.searchsorted(classes, drawn.batch.spacegroups))
    names = [n for n in names if n != "random"]
    if names:
        if not config.validation_dir:
            raise ConfigError(f"val_sets {names} need validation_dir (build it with `synthxrd validation build`)")
        from synthxrd.dataset import class_rows, load_validation_sets

        for name, ds in load_validation_sets(config.validation_dir, names).items():
            rows, labels = class_rows(ds.crystals.spacegroups, classes, config.val_max_patterns, config.seed)
            if ds.patterns is None or not len(rows):
                raise DataError(f"{config.validation_dir}: validation set {name!r} has no patterns of the classes")
            sets[name] = (spec.apply(ds.patterns[rows]), labels)
    return sets


def _distributed() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment, initialising the process group if needed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def _agreed_stop(local: bool, world: int, device) -> bool:
    """Whether any rank wants to stop (a one-element all-reduce under DDP), so that all stop together."""
    if world <= 1:
        return local
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1.0 if local else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


class _StopFlag:
    """Set by SIGTERM/SIGINT; the loop checkpoints and exits at the next step boundary."""

    def __init__(self) -> None:
        self.raised: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _check_run_folder(out: Path, *, resume: bool) -> None:
    """The run folder rules: a new run needs a folder without a run (one whose start failed before its
    first checkpoint holds only config.toml/run.json and may be reused); a resumed run needs a checkpoint."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the run")
    has_checkpoint = (out / CHECKPOINT).is_file()
    if resume and not has_checkpoint:
        raise ConfigError(f"{out}: nothing to resume (no {CHECKPOINT}: the run stopped before its first checkpoint); "
                          f"start it again with --out {out}")
    if not resume and (out / CHECKPOINT).exists():
        raise ConfigError(f"{out} already holds a run; resume it with `synthxrd train --resume {out}` or choose another --out")


def _resume_checkpoint(path: Path, classes: np.ndarray, model_config: dict) -> dict[str, Any]:
    """The training checkpoint at ``path``, checked against this run's classes and network before any
    state is loaded (:class:`DataError` naming what differs)."""
    ckpt = load_checkpoint(path)
    missing = [k for k in ("model", "optimizer", "scheduler", "step", "torch_rng", "classes", "model_config")
               if k not in ckpt]
    if missing:
        raise DataError(f"{path}: not a checkpoint of synthxrd train (no {missing[0]!r}); an exported model "
                        "cannot be resumed")
    if [int(c) for c in ckpt["classes"]] != [int(c) for c in classes]:
        raise DataError(f"{path}: the statistics give other classes than the checkpoint ({len(classes)} against "
                        f"{len(ckpt['classes'])}); resume with the same statistics and min_count")
    if dict(ckpt["model_config"]) != dict(model_config):
        raise DataError(f"{path}: the checkpoint holds the network {ckpt['model_config']}, this run builds "
                        f"{model_config}; resume with the same model and options")
    return ckpt


def _initial_weights(path: Path, classes: np.ndarray, model_config: dict,
                     spec: InputSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The float32 weights and the metadata of a checkpoint or exported model (``init_weights``, read by
    :func:`load_model`), checked to fit this run's classes, network and input grid (:class:`DataError`
    naming what differs). Continues a campaign whose run folder is lost from its last export: the
    optimizer and schedule start afresh (with ``warmup_steps``), as in fine-tuning."""
    loaded, loaded_classes, meta = load_model(path)
    differs = {
        "classes": loaded_classes.tolist() != [int(c) for c in classes],
        "network": dict(meta["model_config"]) != dict(model_config),
        # the grid, not the cleaning: a network continues from raw to clean inputs as from any other data
        "input grid": {**checkpoint_input(meta).to_dict(), "clean": spec.clean} != spec.to_dict(),
    }
    bad = [k for k, d in differs.items() if d]
    if bad:
        raise DataError(f"{path}: init_weights has another {bad[0]} than this run "
                        f"(classes {len(loaded_classes)} vs {len(classes)}, network {meta['model_config']} vs "
                        f"{model_config}); train with the same statistics, min_count, model and grid")
    return loaded.state_dict(), meta


def _previous_summary(path: Path) -> dict[str, Any]:
    """The ``summary.json`` of an earlier session of the run (empty if it is unreadable)."""
    import json

    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def _stream_failure(exc: RuntimeError, when: str) -> str:
    """One line for a failed data stream (a killed data worker reaches the trainer from ``next(stream)``,
    :func:`synthxrd.data.make_stream`)."""
    what = "a data worker died" if "DataLoader worker" in str(exc) else "the data stream failed"
    return f"{what} {when} ({str(exc).splitlines()[0].strip() if str(exc) else type(exc).__name__})"


def _finite(model) -> bool:
    """Whether every parameter of ``model`` is finite (checked before weights are validated or saved)."""
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) training; returns a summary (steps, final losses, validation metrics).

    The run folder is owned by this run while it trains (:func:`synthxrd.files.lock_folder`): a second
    run or resume of it is a :class:`ConfigError` naming the process that has it."""
    rank, _ = _distributed()
    _check_run_folder(Path(config.out), resume=resume)  # before the lock creates the folder
    with lock_folder(config.out) if rank == 0 else nullcontext(), ExitStack() as cleanup:
        return _train(config, resume=resume, progress=progress, cleanup=cleanup)


def _train(config: TrainConfig, *, resume: bool, progress: bool, cleanup: ExitStack) -> dict[str, Any]:
    """:func:`train`; ``cleanup`` closes the data stream however this ends (a failed write: no worker is
    left behind for the interpreter to wait for)."""
    import torch
    from tqdm import tqdm

    from synthxrd.models import build

    rank, world = _distributed()
    device = resolve_device(config.device, local_rank=int(os.environ.get("LOCAL_RANK", rank)))
    out = Path(config.out)
    ckpt_path = out / CHECKPOINT
    _check_run_folder(out, resume=resume)
    if world > 1:  # every rank has checked before rank 0 writes anything
        import torch.distributed as dist

        dist.barrier()
    cores = available_cores()
    workers = config.workers if config.workers >= 0 else max(1, cores - 1)
    threads = 0
    if device.type == "cpu":  # every core but the local data worker's (cpu_threads)
        threads = cpu_threads(config, cores, world, workers)
        torch.set_num_threads(threads)
    torch.manual_seed(torch_seed(config.seed, rank))

    stream_config = _stream_config(config)
    maker = BatchMaker(stream_config)
    classes = maker.classes
    spec = maker.spec
    model = build(config.model, num_classes=len(classes), input_length=spec.n, **config.model_kwargs).to(device)
    model_config = dict(model.config)
    opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(config, s))
    step, best = 0, {}
    if resume:
        ckpt = _resume_checkpoint(ckpt_path, classes, model_config)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["torch_rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{ckpt_path}: cannot restore the training state ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        step, best = int(ckpt["step"]), dict(ckpt.get("best", {}))
    elif config.init_weights:
        weights, source = _initial_weights(Path(config.init_weights), classes, model_config, spec)
        model.load_state_dict(weights)
        replayed = replayed_batches(source, config)
        if replayed and rank == 0:
            warnings.warn(f"{config.init_weights} was trained on batches 0-{replayed - 1} of this very stream "
                          f"(seed {config.seed}, same data settings): this run repeats them before it sees a new "
                          "pattern; pass another --seed to continue on new data", stacklevel=2)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    core = model.module if world > 1 else model
    use_amp = device.type == "cuda" and config.amp != "off" or config.amp == "on"
    autocast = (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)) if use_amp else nullcontext

    writer = None
    val_sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    history: list[dict[str, float]] = []
    last_val: dict[str, dict[str, float]] = {}
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
        if not resume:
            write_text(out / "config.toml", to_toml(config))
        else:  # the history before this session is kept, and its last validation if no step is added
            previous = _previous_summary(out / "summary.json")
            history = [h for h in previous.get("history") or [] if isinstance(h, dict) and h.get("step", 0) <= step]
            if previous.get("step") == step and isinstance(previous.get("validation"), dict):
                last_val = previous["validation"]
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out), purge_step=step + 1 if resume else None)
        val_sets = _validation_sets(config, classes)
        write_json(out / "run.json", {
            "synthxrd_version": __version__, "torch_version": torch.__version__, "config": to_dict(config),
            "classes": [int(c) for c in classes], "model": model_config,
            "parameters": sum(p.numel() for p in core.parameters()), "world_size": world, "device": str(device),
            "cores": cores, "torch_threads": threads, "workers": workers, "input": spec.to_dict(),
            "statistics": {"path": config.statistics or "shipped", "version": maker.generator.statistics.version,
                           "n_structures": maker.generator.statistics.n_structures},
            "validation_sets": {k: len(v[1]) for k, v in val_sets.items()}, "resumed_at_step": step if resume else None,
        })

    def save(path: Path, *, weights_only: bool = False) -> None:
        payload = {
            "model": core.state_dict(), "step": step, "best": best, "config": to_dict(config),
            "classes": [int(c) for c in classes], "model_config": model_config, "input": spec.to_dict(),
            "synthxrd_version": __version__, "statistics_version": maker.generator.statistics.version,
        }
        if not weights_only:  # the training state resume needs
            payload.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                           torch_rng=torch.get_rng_state())
        save_checkpoint(path, payload)

    def validate() -> dict[str, dict[str, float]]:
        results = {name: evaluate_arrays(core, x, y, device=device) for name, (x, y) in val_sets.items()}
        for name, r in results.items():
            for key in ("loss", "top1", "top5"):
                writer.add_scalar(f"val/{name}/{key}", r[key], step)
        if "random" in results and "match" in results:
            writer.add_scalar("val/gap_random_minus_match_top1", results["random"]["top1"] - results["match"]["top1"], step)
        key = "match" if "match" in results else "random" if "random" in results else None
        if key and results[key]["top1"] > best.get("top1", -1.0):
            best.update(set=key, top1=results[key]["top1"], step=step)
            save(out / BEST)
        return results

    stream = make_stream(stream_config, workers=workers, start=step, rank=rank, world_size=world,
                         ray_address=config.ray_address, ray_resources=config.ray_resources)
    if hasattr(stream, "close"):
        cleanup.callback(stream.close)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    groups = torch.as_tensor(group_tables(classes), device=device) if config.aux_weight > 0 else None
    def new_window() -> dict[str, float]:
        return {"loss": 0.0, "acc": 0.0, "n": 0, "wait": 0.0, "t0": time.perf_counter(), "patterns": 0, "replaced": 0}

    window = new_window()
    failure = None
    bar = tqdm(total=config.max_steps, initial=step, desc="train", unit="step", disable=not progress or rank != 0)
    deadline = time.time() + 3600.0 * config.max_hours if config.max_hours > 0 else math.inf
    model.train()
    with _StopFlag() as stop:
        while step < config.max_steps:
            if time.time() > deadline and stop.raised is None:
                stop.raised = "max_hours"
            if _agreed_stop(stop.raised is not None, world, device):
                stop.raised = stop.raised or "peer"
                break
            t_wait = time.perf_counter()
            try:
                batch = next(stream)
            except RuntimeError as exc:  # a data worker died (killed, out of memory): stop checkpointed
                stop.raised = "data worker failure"
                failure = _stream_failure(exc, f"before step {step + 1}")
                break
            y = torch.as_tensor(batch.labels, device=device)
            if batch.inputs is not None:
                x = torch.as_tensor(batch.inputs, device=device)
            else:
                from synthxrd.simulate.torch_sim import patterns_torch

                arrays = dict(batch.crystals)
                sizes = arrays.pop("crystallite_size_nm")
                x = spec.apply_torch(patterns_torch(arrays, crystallite_size_nm=sizes, device=device,
                                                   allow_empty=True))
                has_peaks = x.amax(dim=1) > 0  # workers pre-check this; a rare miss is counted, not hidden
                if not bool(has_peaks.all()):
                    window["empty"] = window.get("empty", 0) + int((~has_peaks).sum())
                    x, y = x[has_peaks], y[has_peaks]
            window["wait"] += time.perf_counter() - t_wait
            window["replaced"] += batch.replaced
            with autocast():
                logits = model(x)
                loss = loss_fn(logits.float(), y)
                if groups is not None:
                    loss = loss + config.aux_weight * marginal_loss(logits, y, groups)
            if _agreed_stop(not bool(torch.isfinite(loss)), world, device):
                stop.raised = "non-finite loss"
                failure = (f"the loss is {loss.item()} at step {step + 1}: training diverged (lower --lr, or set "
                           "grad_clip)")
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            window["loss"] += loss.item()
            window["acc"] += float((logits.argmax(1) == y).float().mean())
            window["n"] += 1
            window["patterns"] += len(y)
            bar.update(1)
            if rank == 0 and (step % config.log_every == 0 or step == config.max_steps):
                elapsed = time.perf_counter() - window["t0"]
                row = {"step": step, "loss": window["loss"] / window["n"], "top1": window["acc"] / window["n"],
                       "lr": scheduler.get_last_lr()[0], "data_wait_s": window["wait"] / window["n"],
                       "data_wait_fraction": window["wait"] / max(elapsed, 1e-9),
                       "patterns_per_s": window["patterns"] * world / max(elapsed, 1e-9)}
                history.append(row)
                writer.add_scalar("train/loss", row["loss"], step)
                writer.add_scalar("train/top1", row["top1"], step)
                writer.add_scalar("train/lr", row["lr"], step)
                writer.add_scalar("time/data_wait_s_per_step", row["data_wait_s"], step)
                writer.add_scalar("time/data_wait_fraction", row["data_wait_fraction"], step)
                writer.add_scalar("throughput/patterns_per_s", row["patterns_per_s"], step)
                writer.add_scalar("data/replaced_per_batch", window["replaced"] / window["n"], step)
                if window.get("empty"):
                    writer.add_scalar("data/empty_patterns_dropped", window["empty"], step)
                bar.set_postfix(loss=f"{row['loss']:.3f}", wait=f"{row['data_wait_fraction']:.0%}")
                window = new_window()
            due = (step % config.val_every == 0 or step == config.max_steps) \
                or step % config.checkpoint_every == 0 or (config.snapshot_every and step % config.snapshot_every == 0)
            if due and _agreed_stop(not _finite(core), world, device):  # before anything is saved; same on every rank
                stop.raised = "non-finite weights"
                failure = (f"the weights are not finite after step {step}: training diverged (lower --lr, or set "
                           "grad_clip)")
                break
            if rank == 0 and val_sets and (step % config.val_every == 0 or step == config.max_steps):
                last_val = validate()
                bar.write(f"step {step}: " + ", ".join(f"{k} top1 {v['top1']:.3f} top5 {v['top5']:.3f}"
                                                       for k, v in last_val.items()))
            if rank == 0 and step % config.checkpoint_every == 0:
                save(ckpt_path)
            if rank == 0 and config.snapshot_every and step % config.snapshot_every == 0:
                (out / SNAPSHOTS).mkdir(exist_ok=True)
                save(out / SNAPSHOTS / f"step_{step:08d}.pt", weights_only=True)
        bar.close()
        keep_last = stop.raised in ("non-finite loss", "non-finite weights")
        if rank == 0 and val_sets and stop.raised == "max_hours" and step % config.val_every:
            last_val = validate()  # a time-limited run ends validated, like one that reaches max_steps
        if rank == 0:
            if not keep_last:
                save(ckpt_path)
                if failure:
                    failure += f"; checkpointed at step {step}"
            elif ckpt_path.is_file():
                failure += f"; this state was not saved, the last checkpoint (step {load_checkpoint(ckpt_path)['step']}) is kept"
            else:
                failure += "; no checkpoint was written yet"
            writer.flush()
            writer.close()
    if hasattr(stream, "close"):
        stream.close()
    calibration = None
    if rank == 0 and config.calibrate and stop.raised in (None, "max_hours"):  # the weights predict uses
        calibration = _calibrate(core, val_sets, out / BEST if (out / BEST).is_file() else ckpt_path, device=device)
    summary = {"step": step, "stopped_by": stop.raised, "history": history, "validation": last_val, "best": best,
               "calibration": calibration, "out": str(out), "error": failure}
    if rank == 0:
        write_json(out / "summary.json", summary)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return summary


def resume_config(out: str | Path, **overrides: Any) -> TrainConfig:
    """The config of the run in ``out`` (its config.toml), with overrides such as a new max_steps."""
    path = Path(out) / "config.toml"
    if not path.is_file():
        raise ConfigError(f"{out}: nothing to resume (no config.toml)")
    return replace(TrainConfig.load(path, **overrides), out=str(out))
