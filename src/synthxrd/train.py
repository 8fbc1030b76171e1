"""On-the-fly training: fresh synthetic crystals every step, validation on unseen structure types.

Defaults follow the reference (Schopmans, Reiser & Friederich 2023): Adam, lr 1e-4 halved every
500 x 900 steps, batch 145, sparse categorical cross-entropy on sqrt(pattern) inputs. Options:
AdamW, linear warm-up + cosine decay, gradient clipping, bf16 autocast on CUDA, DDP with torchrun.

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
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd import __version__
from synthxrd.config import merge, to_dict, to_toml
from synthxrd.data import BatchMaker, StreamConfig, make_stream
from synthxrd.errors import ConfigError, DataError
from synthxrd.files import atomic_write, write_json, write_text

__all__ = ["TrainConfig", "train", "resume_config", "load_checkpoint", "load_model", "export_model", "evaluate_arrays",
           "topk_accuracy", "lr_factor"]

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; written to ``<out>/config.toml``."""

    out: str = "runs/train"
    model: str = "resnet10"  # see synthxrd.models.list_models()
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
    workers: int = -1  # data worker processes (or Ray actors); -1 = cores - 1 (at least 1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16 autocast on CUDA) | on | off
    prior: str = "statistics"  # label prior: statistics | uniform
    min_count: int = 50  # classes: groups with >= min_count structures in the statistics
    statistics: str | None = None  # None = shipped statistics
    ray_address: str | None = None  # None = local workers; "local", "auto" or "HOST:PORT" = Ray
    simulate_on: str = "worker"  # worker | device (GPU simulates, workers only generate)
    augment: str = "none"  # experimental realism: none | default | path of a TOML file (synthxrd.augment)
    val_every: int = 1000
    val_sets: tuple[str, ...] = ("random", "match")
    n_val_random: int = 1000
    val_max_patterns: int = 0  # evaluate at most this many patterns per set (fixed subsample); 0 = all
    validation_dir: str | None = None  # cache of synthxrd.validation sets (match, all, ...)
    checkpoint_every: int = 1000
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
            "lr": self.lr > 0,
            "val_every": self.val_every >= 1,
            "checkpoint_every": self.checkpoint_every >= 1,
            "log_every": self.log_every >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"train config: invalid {bad[0]} = {getattr(self, bad[0])!r}")

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


def topk_accuracy(logits, labels, ks=(1, 5)) -> dict[int, float]:
    """Fraction of rows whose label is among the k largest logits, for each k."""
    import torch

    top = torch.topk(logits, max(ks), dim=1).indices
    hits = top == labels[:, None]
    return {k: float(hits[:, :k].any(dim=1).float().mean()) for k in ks}


def evaluate_arrays(model, inputs: np.ndarray, labels: np.ndarray, *, device, batch_size: int = 256) -> dict[str, float]:
    """Loss, top-1 and top-5 of ``model`` on (sqrt-pattern inputs, class-index labels)."""
    import torch

    model.eval()
    total, loss_sum, hits1, hits5 = 0, 0.0, 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(labels), batch_size):
            x = torch.as_tensor(inputs[i:i + batch_size], device=device)
            y = torch.as_tensor(labels[i:i + batch_size], device=device)
            logits = model(x).float()
            loss_sum += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            acc = topk_accuracy(logits, y, ks=(1, min(5, logits.shape[1])))
            n = len(y)
            hits1 += acc[1] * n
            hits5 += acc[min(5, logits.shape[1])] * n
            total += n
    model.train()
    return {"loss": loss_sum / max(total, 1), "top1": hits1 / max(total, 1), "top5": hits5 / max(total, 1), "n": total}


def _validation_sets(config: TrainConfig, classes: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Validation inputs (sqrt pattern) and class indices; ``random`` from a separate synthetic stream."""
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    names = list(config.val_sets)
    if "random" in names:
        maker = BatchMaker(StreamConfig(batch_size=min(250, config.n_val_random), seed=config.seed + 1_000_003,
                                        prior=config.prior, min_count=config.min_count, statistics=config.statistics,
                                        augment=config.augment))
        batches = [maker(i) for i in range(math.ceil(config.n_val_random / maker.config.batch_size))]
        sets["random"] = (np.concatenate([b.inputs for b in batches])[:config.n_val_random],
                          np.concatenate([b.labels for b in batches])[:config.n_val_random])
        names.remove("random")
    if names:
        if not config.validation_dir:
            raise ConfigError(f"val_sets {names} need validation_dir (build it with `synthxrd validation build`)")
        from synthxrd.validation import load_validation_sets

        index = {int(g): i for i, g in enumerate(classes)}
        for name, ds in load_validation_sets(config.validation_dir, names).items():
            labels = np.array([index.get(int(g), -1) for g in ds.crystals.spacegroups])
            keep = labels >= 0
            if ds.patterns is None or not keep.any():
                raise DataError(f"{config.validation_dir}: validation set {name!r} has no patterns of the classes")
            rows = np.flatnonzero(keep)
            if 0 < config.val_max_patterns < len(rows):
                rows = np.sort(np.random.default_rng(config.seed).choice(rows, config.val_max_patterns, replace=False))
            sets[name] = (np.sqrt(np.clip(ds.patterns[rows], 0, None)).astype(np.float32), labels[rows])
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


def _device(name: str, rank: int):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":  # one GPU per process: torchrun's LOCAL_RANK (else the rank)
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (``torch.load(weights_only=True)``); DataError naming the file otherwise."""
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise DataError(f"{path}: cannot load checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def load_model(path: str | Path):
    """(model in eval mode, classes as ITA numbers, checkpoint metadata) from a checkpoint alone."""
    from synthxrd.models import build

    ckpt = load_checkpoint(path)
    model = build(**ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, np.asarray(ckpt["classes"], np.int64), {k: v for k, v in ckpt.items() if k not in ("model", "optimizer")}


#: What an exported model keeps of a checkpoint besides the weights.
EXPORT_KEYS = ("step", "best", "config", "classes", "model_config", "synthxrd_version", "statistics_version")


def export_model(checkpoint: str | Path, out: str | Path, *, dtype: str = "float16") -> dict[str, Any]:
    """Write the inference part of a checkpoint (weights + metadata, no optimizer) to ``out``.

    ``dtype="float16"`` halves the file (the weights are cast back to float32 on loading, so
    predictions differ from the float32 model only by the rounding of the weights, relative
    2**-11). The file is a plain ``torch.save`` of tensors, numbers and strings, loadable with
    ``weights_only=True``. Returns the written payload without the weights.
    """
    import torch

    if dtype not in ("float16", "float32"):
        raise ConfigError(f"export dtype must be 'float16' or 'float32', got {dtype!r}")
    ckpt = load_checkpoint(checkpoint)
    missing = [k for k in ("model", "classes", "model_config") if k not in ckpt]
    if missing:
        raise DataError(f"{checkpoint}: not a synthxrd checkpoint (no {missing[0]!r})")
    cast = getattr(torch, dtype)
    weights = {k: v.to(cast) if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    meta = {k: ckpt[k] for k in EXPORT_KEYS if k in ckpt}
    meta["export"] = {"dtype": dtype, "source": str(checkpoint)}
    atomic_write(Path(out), lambda tmp: torch.save({"model": weights, **meta}, tmp))
    return meta


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


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) training; returns a summary (steps, final losses, validation metrics)."""
    import torch
    from tqdm import tqdm

    from synthxrd.models import build

    rank, world = _distributed()
    device = _device(config.device, rank)
    out = Path(config.out)
    ckpt_path = out / CHECKPOINT
    if resume and not ckpt_path.is_file():
        raise ConfigError(f"{out}: nothing to resume (no {CHECKPOINT})")
    if not resume and (ckpt_path.exists() or (out / "config.toml").exists()):
        raise ConfigError(f"{out} already holds a run; resume it with `synthxrd train --resume {out}` or choose another --out")
    if world > 1:  # every rank has checked before rank 0 writes anything
        import torch.distributed as dist

        dist.barrier()
    workers = config.workers if config.workers >= 0 else max(1, (os.cpu_count() or 2) - 1)
    if device.type == "cpu" and not config.ray_address:  # leave the data workers their cores
        torch.set_num_threads(max(1, ((os.cpu_count() or 1) - workers) // world))
    torch.manual_seed(config.seed * 1000 + rank)

    stream_config = StreamConfig(batch_size=config.batch_size, seed=config.seed, prior=config.prior,
                                 min_count=config.min_count, statistics=config.statistics, simulate_on=config.simulate_on,
                                 augment=config.augment)
    maker = BatchMaker(stream_config)
    classes = maker.classes
    from synthxrd.simulate import Grid

    grid = Grid()
    model = build(config.model, num_classes=len(classes), input_length=grid.n, **config.model_kwargs).to(device)
    model_config = dict(model.config)
    opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(config, s))
    step, best = 0, {}
    if resume:
        ckpt = load_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step, best = int(ckpt["step"]), dict(ckpt.get("best", {}))
        torch.set_rng_state(ckpt["torch_rng"])
        if list(ckpt["classes"]) != [int(c) for c in classes]:
            raise DataError(f"{ckpt_path}: the statistics give other classes than the checkpoint; resume with the same statistics")
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    core = model.module if world > 1 else model
    use_amp = device.type == "cuda" and config.amp != "off" or config.amp == "on"
    autocast = (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)) if use_amp else nullcontext

    writer = None
    val_sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            write_text(out / "config.toml", to_toml(config))
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out), purge_step=step + 1 if resume else None)
        val_sets = _validation_sets(config, classes)
        write_json(out / "run.json", {
            "synthxrd_version": __version__, "torch_version": torch.__version__, "config": to_dict(config),
            "classes": [int(c) for c in classes], "model": model_config,
            "parameters": sum(p.numel() for p in core.parameters()), "world_size": world, "device": str(device),
            "statistics": {"path": config.statistics or "shipped", "version": maker.generator.statistics.version,
                           "n_structures": maker.generator.statistics.n_structures},
            "validation_sets": {k: len(v[1]) for k, v in val_sets.items()}, "resumed_at_step": step if resume else None,
        })

    def save(path: Path) -> None:
        payload = {
            "model": core.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "step": step, "torch_rng": torch.get_rng_state(), "best": best, "config": to_dict(config),
            "classes": [int(c) for c in classes], "model_config": model_config, "synthxrd_version": __version__,
            "statistics_version": maker.generator.statistics.version,
        }
        atomic_write(path, lambda tmp: torch.save(payload, tmp))

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
                         ray_address=config.ray_address)
    loss_fn = torch.nn.CrossEntropyLoss()
    last_val: dict[str, dict[str, float]] = {}
    history: list[dict[str, float]] = []
    window = {"loss": 0.0, "acc": 0.0, "n": 0, "wait": 0.0, "t0": time.perf_counter(), "patterns": 0}
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
            batch = next(stream)
            y = torch.as_tensor(batch.labels, device=device)
            if batch.inputs is not None:
                x = torch.as_tensor(batch.inputs, device=device)
            else:
                from synthxrd.simulate.torch_sim import patterns_torch

                arrays = dict(batch.crystals)
                sizes = arrays.pop("crystallite_size_nm")
                x = torch.sqrt(patterns_torch(arrays, crystallite_size_nm=sizes, device=device,
                                              allow_empty=True).clamp_min(0))
                has_peaks = x.amax(dim=1) > 0  # workers pre-check this; a rare miss is counted, not hidden
                if not bool(has_peaks.all()):
                    window["empty"] = window.get("empty", 0) + int((~has_peaks).sum())
                    x, y = x[has_peaks], y[has_peaks]
            window["wait"] += time.perf_counter() - t_wait
            with autocast():
                logits = model(x)
                loss = loss_fn(logits.float(), y)
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
                if window.get("empty"):
                    writer.add_scalar("data/empty_patterns_dropped", window["empty"], step)
                bar.set_postfix(loss=f"{row['loss']:.3f}", wait=f"{row['data_wait_fraction']:.0%}")
                window = {"loss": 0.0, "acc": 0.0, "n": 0, "wait": 0.0, "t0": time.perf_counter(), "patterns": 0}
            if rank == 0 and val_sets and (step % config.val_every == 0 or step == config.max_steps):
                last_val = validate()
                bar.write(f"step {step}: " + ", ".join(f"{k} top1 {v['top1']:.3f} top5 {v['top5']:.3f}"
                                                       for k, v in last_val.items()))
            if rank == 0 and step % config.checkpoint_every == 0:
                save(ckpt_path)
        bar.close()
        if rank == 0:
            save(ckpt_path)
            writer.flush()
            writer.close()
    if hasattr(stream, "close"):
        stream.close()
    summary = {"step": step, "stopped_by": stop.raised, "history": history, "validation": last_val, "best": best,
               "out": str(out)}
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
