"""The run folder, checkpoints, validation and the distributed stop of a training session.

Helpers of :func:`synthxrd.train.train`: the rules of a run folder (new, resumed, or continued from
``init_weights``), the checkpoints written in the loop and at its end, validation on the cached sets
with ``best.pt``, the final temperature fit, and the stop that every DDP rank agrees on.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthxrd import __version__
from synthxrd.config import to_dict
from synthxrd.errors import ConfigError, DataError
from synthxrd.models.checkpoint import InputSpec, checkpoint_input, load_checkpoint, load_model, save_checkpoint

if TYPE_CHECKING:
    from synthxrd.train import _Run

__all__ = ["CHECKPOINT", "BEST", "SNAPSHOTS"]

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
SNAPSHOTS = "snapshots"  # weights-only checkpoints every snapshot_every steps (synthxrd evaluate loads them)


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
    from synthxrd.evaluate.run import temperature_report

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


def _save(run: _Run, path: Path, *, weights_only: bool = False) -> None:
    """A checkpoint of the network (and, unless ``weights_only``, the training state resume needs)."""
    import torch

    payload = {
        "model": run.core.state_dict(), "step": run.step, "best": run.best, "config": to_dict(run.config),
        "classes": [int(c) for c in run.classes], "model_config": run.model_config, "input": run.spec.to_dict(),
        "synthxrd_version": __version__, "statistics_version": run.maker.generator.statistics.version,
    }
    if not weights_only:  # the training state resume needs
        payload.update(optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict(),
                       torch_rng=torch.get_rng_state())
    save_checkpoint(path, payload)


def _validate(run: _Run) -> dict[str, dict[str, float]]:
    """Loss, top-1 and top-5 on every validation set, logged; ``best.pt`` saved on a new best."""

    step, writer = run.step, run.writer
    results = {name: evaluate_arrays(run.core, x, y, device=run.device) for name, (x, y) in run.val_sets.items()}
    for name, r in results.items():
        for key in ("loss", "top1", "top5"):
            writer.add_scalar(f"val/{name}/{key}", r[key], step)
    if "random" in results and "match" in results:
        writer.add_scalar("val/gap_random_minus_match_top1", results["random"]["top1"] - results["match"]["top1"], step)
    key = "match" if "match" in results else "random" if "random" in results else None
    if key and results[key]["top1"] > run.best.get("top1", -1.0):
        run.best.update(set=key, top1=results[key]["top1"], step=step)
        _save(run, run.out / BEST)
    return results


def _validate_and_checkpoint(run: _Run, bar) -> str | None:
    """Validation, checkpoint and snapshot where due after a step (on rank 0), once the weights are
    checked finite on every rank; "non-finite weights" (nothing saved) if they are not, else None."""
    config, step, out = run.config, run.step, run.out
    due = (step % config.val_every == 0 or step == config.max_steps) \
        or step % config.checkpoint_every == 0 or (config.snapshot_every and step % config.snapshot_every == 0)
    if due and _agreed_stop(not _finite(run.core), run.world, run.device):  # before anything is saved; same on every rank
        run.failure = (f"the weights are not finite after step {step}: training diverged (lower --lr, or set "
                       "grad_clip)")
        return "non-finite weights"
    if run.rank == 0 and run.val_sets and (step % config.val_every == 0 or step == config.max_steps):
        run.last_val = _validate(run)
        bar.write(f"step {step}: " + ", ".join(f"{k} top1 {v['top1']:.3f} top5 {v['top5']:.3f}"
                                               for k, v in run.last_val.items()))
    if run.rank == 0 and step % config.checkpoint_every == 0:
        _save(run, run.ckpt_path)
    if run.rank == 0 and config.snapshot_every and step % config.snapshot_every == 0:
        (out / SNAPSHOTS).mkdir(exist_ok=True)
        _save(run, out / SNAPSHOTS / f"step_{step:08d}.pt", weights_only=True)
    return None


def _final_checkpoint(run: _Run, stop: _StopFlag) -> None:
    """On rank 0 after the loop: the last validation of a time-limited run, the final checkpoint (not of
    diverged weights: the last good one is kept) and the failure's note of what was saved."""
    config, step, ckpt_path = run.config, run.step, run.ckpt_path
    keep_last = stop.raised in ("non-finite loss", "non-finite weights")
    if run.rank == 0 and run.val_sets and stop.raised == "max_hours" and step % config.val_every:
        run.last_val = _validate(run)  # a time-limited run ends validated, like one that reaches max_steps
    if run.rank == 0:
        if not keep_last:
            _save(run, ckpt_path)
            if run.failure:
                run.failure += f"; checkpointed at step {step}"
        elif ckpt_path.is_file():
            run.failure += (f"; this state was not saved, the last checkpoint (step {load_checkpoint(ckpt_path)['step']}) "
                            "is kept")
        else:
            run.failure += "; no checkpoint was written yet"
        run.writer.flush()
        run.writer.close()
