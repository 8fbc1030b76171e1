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
from synthxrd.models.checkpoint import InputSpec, export_model, load_checkpoint, load_model, portable_config
from synthxrd.models.device import resolve_device
from synthxrd.real.compact import real_set_record
from synthxrd.stats.statistics import REPRESENTED_MIN_COUNT
from synthxrd.train_session import (BEST, CHECKPOINT, SNAPSHOTS, _agreed_stop, _calibrate,  # noqa: F401
                                    _check_run_folder, _distributed, _final_checkpoint, _initial_weights,
                                    _previous_summary, _resume_checkpoint, _StopFlag, _stream_failure,
                                    _validate_and_checkpoint, balance_new_rows, evaluate_arrays, predict_logits,
                                    topk_accuracy)

__all__ = ["TrainConfig", "train", "resume_config", "load_checkpoint", "load_model", "export_model", "evaluate_arrays",
           "topk_accuracy", "lr_factor", "predict_logits"]



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
    min_count: int = REPRESENTED_MIN_COUNT  # classes: groups with >= min_count structures in the statistics
    statistics: str | None = None  # None = shipped statistics
    ray_address: str | None = None  # None = local workers; "local", "auto" or "HOST:PORT" = Ray
    ray_resources: dict = field(default_factory=dict)  # custom Ray resources per actor, e.g. {data_node = 1} (docs/scaling.md)
    simulate_on: str = "worker"  # worker | device (GPU simulates, workers only generate)
    augment: str = "none"  # experimental realism: none | default | measured | path of a TOML file (synthxrd.augment)
    grid_step: float = 0.04  # model grid step in degrees (0.01, 0.02, 0.04, ...; synthxrd.models.checkpoint)
    clean_input: bool = False  # inputs with background and noise taken away (InputSpec.clean, as search-match)
    renders: int = 4  # augmented renderings per simulated crystal
    clean_fraction: float = 0.0  # with augment: share of the renderings drawn ideal (synthxrd.data)
    # real crystal set mixed into the batches: "shipped" (MP + AMCSD, synthxrd.real.compact), a file of
    # `synthxrd real build`, or "none"
    real: str | None = "shipped"
    real_fraction: float = 0.5  # share of each batch from `real` (1: the reference's "direct" baseline; 0: none)
    perturb: dict = field(default_factory=dict)  # synthxrd.real.PerturbConfig options for the real crystals
    label_smoothing: float = 0.0
    aux_weight: float = 0.0  # weight of the crystal-system and extinction-group losses (marginal_loss)
    calibrate: bool = True  # fit a softmax temperature of best.pt at the end, on the set that selects it
    val_every: int = 1000
    # best.pt is selected (and calibrated) on "calibration", else "random"; "match" is reported only
    val_sets: tuple[str, ...] = ("random", "calibration", "match")
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
        if self.real is None or str(self.real).strip().lower() in ("", "none") or self.real_fraction == 0:
            # one form of "synthetic only" (the TOML of a run omits None, so a resumed run reads it back the same)
            object.__setattr__(self, "real", None)
            object.__setattr__(self, "real_fraction", 0.0)
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


def _validation_sets(config: TrainConfig, classes: np.ndarray, *, stacklevel: int = 3
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Validation inputs (:meth:`InputSpec.apply`) and class indices; ``random`` from a separate synthetic stream.
    ``stacklevel``: of the warning about a missing validation_dir (3: the caller's caller)."""
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    names = list(config.val_sets)
    if names != ["random"] and not config.validation_dir and "random" in names:
        warnings.warn(f"no validation_dir: validating on the random set only (skipping {[n for n in names if n != 'random']}; "
                      "build real-crystal sets with `synthxrd validation build`)", stacklevel=stacklevel)
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

        names = _without_missing_calibration(config.validation_dir, names, stacklevel=stacklevel + 1)

        for name, ds in load_validation_sets(config.validation_dir, names).items():
            rows, labels = class_rows(ds.crystals.spacegroups, classes, config.val_max_patterns, config.seed)
            if ds.patterns is None or not len(rows):
                raise DataError(f"{config.validation_dir}: validation set {name!r} has no patterns of the classes")
            sets[name] = (spec.apply(ds.patterns[rows]), labels)
    return sets


def _without_missing_calibration(validation_dir: str, names: list[str], *, stacklevel: int) -> list[str]:
    """``names`` without ``calibration`` when the cache in ``validation_dir`` has no such set, or an empty one
    (built before it existed, or from a split without a calibration part), with one warning: best.pt is
    then selected and calibrated on ``random``."""
    from synthxrd.dataset import Manifest, rebuild_hint

    if "calibration" not in names:
        return names
    info = Manifest.load(validation_dir).sets.get("calibration")
    if info is not None and info.get("count"):
        return names
    why = "no calibration set (built before it existed)" if info is None else "an empty calibration set"
    warnings.warn(f"{validation_dir}: {why}: best.pt is selected and calibrated on the random set instead "
                  f"(never on match); rebuild the folder with {rebuild_hint(validation_dir)}",
                  stacklevel=stacklevel)
    return [n for n in names if n != "calibration"]


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
    left behind for the interpreter to wait for). The steps, in order: :func:`_open_run`,
    :func:`_build_model`, :func:`_build_optimizer`, :func:`_restore_weights`, :func:`_distribute_model`,
    :func:`_open_logs`, :func:`_open_stream`, :func:`_train_loop` (:func:`_train_step`,
    :func:`_log_window`, :func:`_validate_and_checkpoint`), :func:`_final_checkpoint`, :func:`_finish`."""
    from tqdm import tqdm

    run = _open_run(config, resume=resume)
    _build_model(run)
    _build_optimizer(run)
    _restore_weights(run)
    _distribute_model(run)
    _open_logs(run)
    stream = _open_stream(run, cleanup)
    loss_fn, groups = _objective(run)
    window = _new_window()
    bar = tqdm(total=config.max_steps, initial=run.step, desc="train", unit="step",
               disable=not progress or run.rank != 0)
    deadline = time.time() + 3600.0 * config.max_hours if config.max_hours > 0 else math.inf
    run.model.train()
    with _StopFlag() as stop:
        _train_loop(run, stream, stop, bar, window, deadline, loss_fn, groups)
        bar.close()
        _final_checkpoint(run, stop)
    return _finish(run, stream, stop)


@dataclass
class _Run:
    """The state of one training session that the steps of :func:`_train` share and advance."""

    config: TrainConfig
    resume: bool
    rank: int
    world: int
    device: Any
    out: Path
    cores: int
    workers: int
    threads: int
    stream_config: StreamConfig | None = None
    maker: BatchMaker | None = None
    classes: np.ndarray | None = None
    spec: InputSpec | None = None
    model: Any = None  # what is trained: the network, or its DDP wrapper
    core: Any = None  # the network itself (saved, validated)
    model_config: dict[str, Any] = field(default_factory=dict)
    optimizer: Any = None
    scheduler: Any = None
    autocast: Any = nullcontext
    step: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    writer: Any = None  # TensorBoard, on rank 0
    val_sets: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    last_val: dict[str, dict[str, float]] = field(default_factory=dict)
    failure: str | None = None
    head_map: dict[str, int] | None = None  # init_weights with other classes: output rows copied/new/dropped

    @property
    def ckpt_path(self) -> Path:
        return self.out / CHECKPOINT


def _open_run(config: TrainConfig, *, resume: bool) -> _Run:
    """Rank, device, the run folder checked on every rank, cores and threads, torch's seed."""
    import torch

    rank, world = _distributed()
    device = resolve_device(config.device, local_rank=int(os.environ.get("LOCAL_RANK", rank)))
    out = Path(config.out)
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
    return _Run(config=config, resume=resume, rank=rank, world=world, device=device, out=out, cores=cores,
                workers=workers, threads=threads)


def _build_model(run: _Run) -> None:
    """The stream's batch maker (classes, input spec) and the network for them, on the device."""
    from synthxrd.models import build

    config = run.config
    run.stream_config = _stream_config(config)
    run.maker = BatchMaker(run.stream_config)
    run.classes = run.maker.classes
    run.spec = run.maker.spec
    run.model = build(config.model, num_classes=len(run.classes), input_length=run.spec.n,
                      **config.model_kwargs).to(run.device)
    run.model_config = dict(run.model.config)


def _build_optimizer(run: _Run) -> None:
    """Adam or AdamW and the learning-rate schedule of :func:`lr_factor`."""
    import torch

    config = run.config
    opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    run.optimizer = opt_cls(run.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    run.scheduler = torch.optim.lr_scheduler.LambdaLR(run.optimizer, lambda s: lr_factor(config, s))


def _restore_weights(run: _Run) -> None:
    """A resumed run's full training state, or the ``init_weights`` of a new one (with a warning when
    they were trained on this very stream)."""
    import torch

    config = run.config
    if run.resume:
        ckpt = _resume_checkpoint(run.ckpt_path, run.classes, run.model_config)
        try:
            run.model.load_state_dict(ckpt["model"])
            run.optimizer.load_state_dict(ckpt["optimizer"])
            run.scheduler.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["torch_rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{run.ckpt_path}: cannot restore the training state ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        run.step, run.best = int(ckpt["step"]), dict(ckpt.get("best", {}))
    elif config.init_weights:
        _, prior = run.maker.generator.prior()
        weights, source, head = _initial_weights(Path(config.init_weights), run.classes, run.model_config, run.spec,
                                                 fresh=run.model.state_dict(), prior=prior)
        run.model.load_state_dict(weights)
        if head and head["new"]:
            head["bias_shift"] = _balance_new_classes(run, source, prior)
        run.head_map = head
        if head and run.rank == 0:
            warnings.warn(f"{config.init_weights} has {head['copied'] + head['dropped']} classes, this run "
                          f"{len(run.classes)}: {head['copied']} output rows copied, {head['new']} new (bias at "
                          f"the log prior, shifted by {head.get('bias_shift', 0.0):+.2f} to their prior mass on "
                          f"a batch of this stream; small weights), {head['dropped']} dropped", stacklevel=3)
        replayed = replayed_batches(source, config)
        if replayed and run.rank == 0:
            warnings.warn(f"{config.init_weights} was trained on batches 0-{replayed - 1} of this very stream "
                          f"(seed {config.seed}, same data settings): this run repeats them before it sees a new "
                          "pattern; pass another --seed to continue on new data", stacklevel=3)


def _balance_new_classes(run: _Run, meta: dict[str, Any], prior: np.ndarray) -> float:
    """:func:`balance_new_rows` on the inputs of this stream's batch 0 (the first batch the run trains
    on): the new classes start with their prior mass of probability. Without inputs (``simulate_on``
    "device") the biases stay at the log prior."""
    old = {int(c) for c in meta.get("classes", [])}
    new_rows = [i for i, c in enumerate(run.classes) if int(c) not in old]
    inputs = run.maker(0).inputs
    return balance_new_rows(run.model, inputs, new_rows, float(np.asarray(prior)[new_rows].sum()))


def _distribute_model(run: _Run) -> None:
    """DDP under torchrun, and bf16 autocast where it is on."""
    import torch

    config, device = run.config, run.device
    if run.world > 1:
        run.model = torch.nn.parallel.DistributedDataParallel(
            run.model, device_ids=[device.index] if device.type == "cuda" else None)
    run.core = run.model.module if run.world > 1 else run.model
    use_amp = device.type == "cuda" and config.amp != "off" or config.amp == "on"
    run.autocast = (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)) if use_amp else nullcontext


def _open_logs(run: _Run) -> None:
    """On rank 0: the run folder, ``config.toml`` (a new run) or the history so far (a resumed one),
    TensorBoard, the validation sets and ``run.json``."""
    if run.rank != 0:
        return
    import torch
    from torch.utils.tensorboard import SummaryWriter

    config, out, step = run.config, run.out, run.step
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    if not run.resume:
        write_text(out / "config.toml", to_toml(config))
    else:  # the history before this session is kept, and its last validation if no step is added
        previous = _previous_summary(out / "summary.json")
        run.history = [h for h in previous.get("history") or [] if isinstance(h, dict) and h.get("step", 0) <= step]
        if previous.get("step") == step and isinstance(previous.get("validation"), dict):
            run.last_val = previous["validation"]
    run.writer = SummaryWriter(log_dir=str(out), purge_step=step + 1 if run.resume else None)
    run.val_sets = _validation_sets(config, run.classes, stacklevel=4)
    write_json(out / "run.json", {
        "synthxrd_version": __version__, "torch_version": torch.__version__, "config": to_dict(config),
        "classes": [int(c) for c in run.classes], "model": run.model_config,
        "parameters": sum(p.numel() for p in run.core.parameters()), "world_size": run.world,
        "device": str(run.device), "cores": run.cores, "torch_threads": run.threads, "workers": run.workers,
        "input": run.spec.to_dict(),
        "statistics": {"path": config.statistics or "shipped", "version": run.maker.generator.statistics.version,
                       "n_structures": run.maker.generator.statistics.n_structures},
        "validation_sets": {k: len(v[1]) for k, v in run.val_sets.items()},
        "real": real_set_record(config.real) if config.real_fraction > 0 else None,
        "resumed_at_step": step if run.resume else None,
        "init_weights_rows": run.head_map,
    })


def _open_stream(run: _Run, cleanup: ExitStack):
    """The data stream from this session's first step, closed by ``cleanup`` however the run ends."""
    config = run.config
    stream = make_stream(run.stream_config, workers=run.workers, start=run.step, rank=run.rank, world_size=run.world,
                         ray_address=config.ray_address, ray_resources=config.ray_resources)
    if hasattr(stream, "close"):
        cleanup.callback(stream.close)
    return stream


def _objective(run: _Run):
    """The loss function (label smoothing) and the group tables of the auxiliary loss (None: off)."""
    import torch

    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=run.config.label_smoothing)
    groups = torch.as_tensor(group_tables(run.classes), device=run.device) if run.config.aux_weight > 0 else None
    return loss_fn, groups


def _new_window() -> dict[str, float]:
    """The running sums of one logging window."""
    return {"loss": 0.0, "acc": 0.0, "n": 0, "wait": 0.0, "t0": time.perf_counter(), "patterns": 0, "replaced": 0}


def _train_loop(run: _Run, stream, stop: _StopFlag, bar, window: dict[str, float], deadline: float, loss_fn,
                groups) -> None:
    """Steps until ``max_steps``, a stop (signal, ``max_hours``, another rank) or a failure (``stop.raised``
    and ``run.failure`` say which)."""
    import torch

    config = run.config
    while run.step < config.max_steps:
        if time.time() > deadline and stop.raised is None:
            stop.raised = "max_hours"
        if _agreed_stop(stop.raised is not None, run.world, run.device):
            stop.raised = stop.raised or "peer"
            break
        t_wait = time.perf_counter()
        try:
            batch = next(stream)
        except RuntimeError as exc:  # a data worker died (killed, out of memory): stop checkpointed
            stop.raised = "data worker failure"
            run.failure = _stream_failure(exc, f"before step {run.step + 1}")
            break
        y = torch.as_tensor(batch.labels, device=run.device)
        if batch.inputs is not None:
            x = torch.as_tensor(batch.inputs, device=run.device)
        else:
            from synthxrd.simulate.torch_sim import patterns_torch

            arrays = dict(batch.crystals)
            sizes = arrays.pop("crystallite_size_nm")
            x = run.spec.apply_torch(patterns_torch(arrays, crystallite_size_nm=sizes, device=run.device,
                                                    allow_empty=True))
            has_peaks = x.amax(dim=1) > 0  # workers pre-check this; a rare miss is counted, not hidden
            if not bool(has_peaks.all()):
                window["empty"] = window.get("empty", 0) + int((~has_peaks).sum())
                x, y = x[has_peaks], y[has_peaks]
        window["wait"] += time.perf_counter() - t_wait
        window["replaced"] += batch.replaced
        reason = _train_step(run, x, y, window, loss_fn, groups)
        if reason:  # (a signal's stop.raised, set during the step, is kept otherwise)
            stop.raised = reason
            break
        bar.update(1)
        if run.rank == 0 and (run.step % config.log_every == 0 or run.step == config.max_steps):
            window = _log_window(run, window, bar)
        reason = _validate_and_checkpoint(run, bar)
        if reason:
            stop.raised = reason
            break


def _train_step(run: _Run, x, y, window: dict[str, float], loss_fn, groups) -> str | None:
    """One optimisation step on (x, y), added to ``window``; "non-finite loss" (nothing updated) if the
    loss of any rank is not finite, else None."""
    import torch

    config = run.config
    with run.autocast():
        logits = run.model(x)
        loss = loss_fn(logits.float(), y)
        if groups is not None:
            loss = loss + config.aux_weight * marginal_loss(logits, y, groups)
    if _agreed_stop(not bool(torch.isfinite(loss)), run.world, run.device):
        run.failure = (f"the loss is {loss.item()} at step {run.step + 1}: training diverged (lower --lr, or set "
                       "grad_clip)")
        return "non-finite loss"
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    run.step += 1
    window["loss"] += loss.item()
    window["acc"] += float((logits.argmax(1) == y).float().mean())
    window["n"] += 1
    window["patterns"] += len(y)
    return None


def _log_window(run: _Run, window: dict[str, float], bar) -> dict[str, float]:
    """The window's means into the history, TensorBoard and the progress bar; returns a new window."""
    step, writer = run.step, run.writer
    elapsed = time.perf_counter() - window["t0"]
    row = {"step": step, "loss": window["loss"] / window["n"], "top1": window["acc"] / window["n"],
           "lr": run.scheduler.get_last_lr()[0], "data_wait_s": window["wait"] / window["n"],
           "data_wait_fraction": window["wait"] / max(elapsed, 1e-9),
           "patterns_per_s": window["patterns"] * run.world / max(elapsed, 1e-9)}
    run.history.append(row)
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
    return _new_window()


def _finish(run: _Run, stream, stop: _StopFlag) -> dict[str, Any]:
    """Close the stream, calibrate the weights predict uses, write ``summary.json`` and leave the process
    group; returns the summary."""
    out, rank = run.out, run.rank
    if hasattr(stream, "close"):
        stream.close()
    calibration = None
    if rank == 0 and run.config.calibrate and stop.raised in (None, "max_hours"):  # the weights predict uses
        calibration = _calibrate(run.core, run.val_sets, out / BEST if (out / BEST).is_file() else run.ckpt_path,
                                 device=run.device)
    summary = {"step": run.step, "stopped_by": stop.raised, "history": run.history, "validation": run.last_val,
               "best": run.best, "calibration": calibration, "out": str(out), "error": run.failure}
    if rank == 0:
        write_json(out / "summary.json", summary)
    if run.world > 1:
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
