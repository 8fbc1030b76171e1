"""The run folder, checkpoints, validation and the distributed stop of a training session.

Helpers of :func:`synthxrd.train.train`: the rules of a run folder (new, resumed, or continued from
``init_weights``), the checkpoints written in the loop and at its end, validation on the cached sets
with ``best.pt``, the final temperature fit, and the stop that every DDP rank agrees on.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from collections.abc import Sequence
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


#: The validation sets that may select the best checkpoint and fit its temperature, first found first:
#: never a test-part set such as ``match`` (docs/architecture.md, "Evaluation protocol").
SELECTION_SETS = ("calibration", "random")


def selection_set(names) -> str | None:
    """The set of ``names`` (validation sets loaded) that selects ``best.pt`` and fits its temperature:
    ``calibration``, else ``random``, else None (no best checkpoint; the others are reported only)."""
    return next((s for s in SELECTION_SETS if s in names), None)


def _calibrate(model, val_sets: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, *, device
               ) -> dict[str, Any] | None:
    """Fit the softmax temperature (:func:`synthxrd.evaluate.temperature_report`) of the weights in
    ``path`` on the validation set that selects them (:func:`selection_set`: ``calibration``, else
    ``random``) and store it in that file."""
    from synthxrd.evaluate.run import temperature_report

    name = selection_set(val_sets)
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


#: Scale of the fresh output rows of classes that ``init_weights`` does not have: small, so that a new
#: class starts near its prior (its bias) and the trained features decide only after it has been learned.
NEW_ROW_SCALE = 0.01


def _initial_weights(path: Path, classes: np.ndarray, model_config: dict, spec: InputSpec,
                     fresh: dict[str, Any] | None = None, prior: np.ndarray | None = None
                     ) -> tuple[dict[str, Any], dict[str, Any], dict[str, int] | None]:
    """The float32 weights and the metadata of a checkpoint or exported model (``init_weights``, read by
    :func:`load_model`), checked to fit this run's network and input grid (:class:`DataError` naming what
    differs), and the head map (None when the classes are the same). Continues a campaign whose run
    folder is lost from its last export: the optimizer and schedule start afresh (with ``warmup_steps``),
    as in fine-tuning.

    Another class set (another ``min_count`` or statistics) is mapped by :func:`map_class_rows`: the
    output rows of the classes both have are copied, the rows of new classes start from ``fresh`` (this
    run's initialised weights) scaled by :data:`NEW_ROW_SCALE`, with the bias at the log of the class's
    ``prior`` on the scale of the copied biases."""
    loaded, loaded_classes, meta = load_model(path)
    same_classes = loaded_classes.tolist() == [int(c) for c in classes]

    def network(config: dict) -> dict:
        return {k: v for k, v in dict(config).items() if k != "num_classes"}

    differs = {
        "network": network(meta["model_config"]) != network(model_config),
        # the grid, not the cleaning: a network continues from raw to clean inputs as from any other data
        "input grid": {**checkpoint_input(meta).to_dict(), "clean": spec.clean} != spec.to_dict(),
    }
    bad = [k for k, d in differs.items() if d]
    if bad:
        raise DataError(f"{path}: init_weights has another {bad[0]} than this run "
                        f"(network {meta['model_config']} vs {model_config}); train with the same model and grid")
    if same_classes:
        return loaded.state_dict(), meta, None
    if fresh is None or prior is None:
        raise DataError(f"{path}: init_weights has other classes than this run ({len(loaded_classes)} vs "
                        f"{len(classes)}) and no fresh weights or prior to start the new ones from")
    weights, head = map_class_rows(loaded.state_dict(), loaded_classes, fresh, classes, prior, source=str(path))
    return weights, meta, head


def map_class_rows(state: dict[str, Any], old_classes: Sequence[int], fresh: dict[str, Any],
                   new_classes: Sequence[int], prior: Sequence[float], *, scale: float = NEW_ROW_SCALE,
                   source: str = "init_weights") -> tuple[dict[str, Any], dict[str, int]]:
    """Weights of a network trained on ``old_classes`` for a network on ``new_classes``.

    Parameters
    ----------
    state : state dict of the trained network (its output layer has ``len(old_classes)`` rows).
    old_classes, new_classes : ITA numbers of the logits, in order (sorted or not).
    fresh : state dict of a freshly initialised network for ``new_classes`` (same architecture).
    prior : (len(new_classes),) label probabilities of the new run (the bias of a new class).
    scale : factor on the fresh weights of a new class's row.

    Returns
    -------
    (state dict for ``new_classes``, ``{"copied", "new", "dropped"}`` row counts)

    Notes
    -----
    Every tensor whose shape differs between ``state`` and ``fresh`` must be an output-layer tensor:
    first dimension ``len(old_classes)`` resp. ``len(new_classes)``, the rest equal. Its rows of the
    classes common to both are copied, so the logits of those classes are unchanged and their softmax
    restricted to the common classes equals the old network's. A new class's weight row is the fresh one
    times ``scale``; its bias is ``log prior[c] + mean over common classes of (bias - log prior)``, i.e. the
    new class starts at its prior frequency relative to the old ones (with no common class, ``log prior``).
    Rows of classes no longer present are dropped.
    """
    import torch

    old = [int(c) for c in old_classes]
    new = [int(c) for c in new_classes]
    prior = np.asarray(prior, np.float64)
    if prior.shape != (len(new),) or not np.all(prior > 0):
        raise DataError(f"{source}: the prior must hold one positive probability per new class "
                        f"({len(new)}), got shape {prior.shape}")
    where = {c: i for i, c in enumerate(old)}
    common = [(j, where[c]) for j, c in enumerate(new) if c in where]
    added = [j for j, c in enumerate(new) if c not in where]
    dst = torch.as_tensor([j for j, _ in common], dtype=torch.long)
    src = torch.as_tensor([i for _, i in common], dtype=torch.long)
    log_prior = torch.as_tensor(np.log(prior))
    heads = _output_keys(state, fresh, len(new))
    out: dict[str, Any] = {}
    mapped = []
    for key, value in fresh.items():
        have = state.get(key)
        if have is None:
            raise DataError(f"{source}: init_weights has no {key!r}; train with the same model")
        if key not in heads:
            if tuple(have.shape) != tuple(value.shape):
                raise DataError(f"{source}: init_weights' {key!r} has shape {tuple(have.shape)}, this run's "
                                f"{tuple(value.shape)}: only the output layer may differ (one row per class)")
            out[key] = have.detach().clone()
            continue
        if not (have.dim() >= 1 and have.shape[0] == len(old) and value.shape[0] == len(new)
                and tuple(have.shape[1:]) == tuple(value.shape[1:])):
            raise DataError(f"{source}: init_weights' {key!r} has shape {tuple(have.shape)}, this run's "
                            f"{tuple(value.shape)}: only the output layer may differ (one row per class)")
        row = value.detach().clone().to(have.dtype)
        if added:
            index = torch.as_tensor(added, dtype=torch.long)
            if row.dim() == 1:  # the bias: log prior on the scale of the copied biases
                offset = float((have[src].double() - log_prior[dst]).mean()) if common else 0.0
                row[index] = (log_prior[index] + offset).to(row.dtype)
            else:
                row[index] = row[index] * scale
        if common:
            row[dst] = have[src].detach().clone()
        out[key] = row
        mapped.append(key)
    if not mapped:
        raise DataError(f"{source}: no output layer found to map {len(old)} classes onto {len(new)}")
    return out, {"copied": len(common), "new": len(added), "dropped": len(old) - len(common)}


def balance_new_rows(model, inputs, new_rows: Sequence[int], mass: float, *, bound: float = 60.0) -> float:
    """Shift the output biases of the classes ``new_rows`` by one amount so that, on ``inputs`` (a batch
    of the run's own stream), the network gives them ``mass`` of its probability on average (their prior
    mass): a data-free bias alone cannot, since the copied rows' logits carry the trunk's features, not
    just their biases. Returns the shift (0 when there is nothing to shift).

    The output bias is the network's last 1-D parameter with one entry per class (``model`` is in eval
    mode while the logits are computed, and left as it was). The mean new-class probability is monotone
    in the shift, found by bisection in [-bound, bound]."""
    import torch

    rows = [int(r) for r in new_rows]
    if not rows or not 0.0 < mass < 1.0 or inputs is None or not len(inputs):
        return 0.0
    bias = [p for p in model.parameters() if p.dim() == 1][-1]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=bias.device)).double()
    model.train(was_training)
    if bias.shape[0] != logits.shape[1]:
        return 0.0
    new = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
    new[rows] = True
    if bool(new.all()):
        return 0.0
    gap = torch.logsumexp(logits[:, new], 1) - torch.logsumexp(logits[:, ~new], 1)

    def share(shift: float) -> float:
        return float(torch.sigmoid(gap + shift).mean())

    lo, hi = -bound, bound
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if share(mid) < mass else (lo, mid)
    shift = 0.5 * (lo + hi)
    with torch.no_grad():
        bias[rows] += shift
    return shift


def _output_keys(state: dict[str, Any], fresh: dict[str, Any], n_new: int) -> set[str]:
    """Keys of the output layer: the tensors whose shapes differ (another number of classes), or, with as
    many classes on both sides, the last floating tensors with one row per class (weight and bias)."""
    differ = {k for k, v in fresh.items() if k in state and tuple(state[k].shape) != tuple(v.shape)}
    if differ:
        return differ
    keys = [k for k, v in fresh.items() if v.dim() >= 1 and v.shape[0] == n_new and v.is_floating_point()]
    return set(keys[-2:])


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
    """Loss, top-1 and top-5 on every validation set, logged; ``best.pt`` saved on a new best top-1 of
    the selection set (:func:`selection_set`)."""

    step, writer = run.step, run.writer
    results = {name: evaluate_arrays(run.core, x, y, device=run.device) for name, (x, y) in run.val_sets.items()}
    for name, r in results.items():
        for key in ("loss", "top1", "top5"):
            writer.add_scalar(f"val/{name}/{key}", r[key], step)
    if "random" in results and "match" in results:
        writer.add_scalar("val/gap_random_minus_match_top1", results["random"]["top1"] - results["match"]["top1"], step)
    key = selection_set(results)  # never match: a test-part set is reported only
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
