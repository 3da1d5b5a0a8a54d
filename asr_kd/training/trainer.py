"""Frame-level acoustic model training (icefall style: flat functions, no framework).

``run(config)`` trains one model: a DNN on globally shuffled frames with context windows,
or a conformer on batches of whole utterances, against the frame targets of
``<exp>/ali/<subset>/`` (:mod:`asr_kd.experiment`), with any
:class:`~asr_kd.training.objectives.Objective` (cross-entropy by default; distillation passes
its own through ``make_objective``). Works on CPU, one CUDA GPU with autocast
(bf16, or fp16 with a gradient scaler), and several processes under ``torchrun`` with
DistributedDataParallel (gloo on CPU, nccl on GPU): rank ``r`` of ``W`` takes minibatches
``r, r + W, ...`` of the shared epoch plan (with ``data.loader=stream`` those are batches of
its own part of the data: :mod:`asr_kd.training.stream_batches`).

Validation: after every epoch the model is scored on the validation utterances of
``data.valid_utts`` (by default the experiment's split, ``<exp>/splits/<train_subset>/valid.txt``,
written by ``asr-kd valid-split``: training utterances that are never trained on). The LR
schedule, early stopping and the choice of ``model.pt`` read only that score; the trainer never
opens the dev/test subsets a recipe reports (unless ``data.valid_subset`` names one).

Outputs in ``out_dir``: ``config.yaml``, ``train_utts.txt``, ``checkpoint.pt`` (every
``checkpoint_every`` steps and every epoch, atomic), ``best.pt`` (best validation frame accuracy
so far), ``log.csv`` (one row per epoch: ``train_*`` and ``valid_*`` columns), and at the end
``model.pt`` (the best model, an :mod:`asr_kd.models.io` model file; its metadata records the validation set) and
``summary.json`` (epochs run, best epoch, why training stopped).

Augmentation (``augment`` section, :mod:`asr_kd.training.augment`): SpecAugment-style masks and
noise on the training batches only; validation and evaluation read clean features.

Exact resumption (``--resume`` after ``kill -9`` gives bit-identical results on the same
hardware): the data order of an epoch is a function of ``(seed, epoch)``, dropout is reseeded
from ``(seed, step, rank)`` before every step, and the checkpoint holds model, optimiser,
schedule, scaler, position in the epoch and the epoch's running statistics.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import nn
from tqdm import tqdm

from asr_kd.features.dataset import IGNORE_INDEX
from asr_kd.models import build, save
from asr_kd.models.io import read_payload
from asr_kd.training.augment import augment_batch
from asr_kd.training.batches import batcher_for
from asr_kd.training.config import ExperimentConfig, TrainConfig, add_train_arguments, load_config
from asr_kd.training.data import (
    TrainingFrames,
    feature_metadata,
    frame_table,
    resolve_num_senones,
    training_frames,
    training_utterances,
    validation_metadata,
    validation_utterances,
)
from asr_kd.training.objectives import CrossEntropyObjective, Objective
from asr_kd.training.schedule import LrSchedule
from asr_kd.training.tasks import FrameTask
from asr_kd.utils.atomic import atomic_open, write_json, write_with
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("training")

CHECKPOINT_FORMAT = "asr_kd.checkpoint/1"
#: Config keys that may change between a run and its resumption (they do not affect results).
RESUME_FREE_KEYS = {("train", "progress"), ("train", "threads")}
AMP_MODES = ("bf16", "fp16", "none")

MakeObjective = Callable[[TrainingFrames, torch.device], Objective]


@dataclass
class TrainState:
    """Everything besides module/optimiser states that a checkpoint restores.

    Attributes:
        epoch: current epoch, 0-based.
        batch: batches of this epoch this rank has finished.
        step: optimiser steps done since the start.
        best_acc, best_epoch: best validation frame accuracy so far and its epoch (0-based).
        bad_epochs: consecutive epochs without a gain of ``train.min_delta`` (early stopping).
        finished: training is over (early stop or last epoch).
        stop_reason: ``"patience"`` (early stopping), ``"newbob"`` (the schedule's stop rule) or
            ``"max_epochs"``, once finished.
        history: one record per finished epoch (what ``log.csv`` shows).
        running: sums of the current epoch's training statistics (weighted by frames).
    """

    epoch: int = 0
    batch: int = 0
    step: int = 0
    best_acc: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    finished: bool = False
    stop_reason: str = ""
    history: list[dict] = field(default_factory=list)
    running: dict[str, float] = field(default_factory=dict)


@dataclass
class Distributed:
    """Process group membership: ``rank`` of ``world_size``; ``owns_group`` if we created it."""

    rank: int = 0
    world_size: int = 1
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        if self.world_size == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train an acoustic model on frame targets. Under torchrun, trains with DDP "
        "(e.g. torchrun --nproc_per_node 2 -m asr_kd.training.trainer --config c.yaml).",
    )
    add_train_arguments(parser)
    return parser


def resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AsrKdError(f"train.device={name} but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise AsrKdError(f"process with local rank {local_rank} wants {name} but only {torch.cuda.device_count()} "
                         "CUDA device(s) exist: start torchrun with --nproc_per_node <= the GPU count, "
                         "or set train.device=cpu")
    return device


def setup_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Read torchrun's environment; join (or create) the process group when ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(device_name, int(os.environ.get("LOCAL_RANK", "0")))
    owns = False
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    return Distributed(rank, world, owns), device


def make_optimizer(params, config) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise AsrKdError(f"unknown optimizer {config.optimizer!r}; choose adam or sgd")


def autocast(device: torch.device, amp: str):
    """Mixed-precision context on CUDA (``bf16``/``fp16``); a no-op on CPU or with ``none``."""
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def step_seed(seed: int, step: int, rank: int) -> int:
    """Dropout seed of one optimiser step: independent of how the run was interrupted."""
    return ((seed * 1_000_003 + step) * 1024 + rank) % (2**63)


def compute_loss(model: nn.Module, batcher, batch: dict, objective: Objective,
                 device: torch.device, amp: str) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """Forward one batch -> ``(loss, stats, logits (N, S) float32)``; the objective runs in float32."""
    with autocast(device, amp):
        logits = batcher.logits(model, batch)
    logits = logits.float()
    loss, stats = objective(logits, batch)
    return loss, stats, logits


def train_one_epoch(model: nn.Module, batcher, objective: Objective, optimizer: torch.optim.Optimizer,
                    schedule: LrSchedule, scaler: torch.amp.GradScaler, state: TrainState,
                    config: ExperimentConfig, device: torch.device, ddp: Distributed,
                    save_checkpoint: Callable[[], None]) -> dict[str, float]:
    """Train from ``state.batch`` to the end of epoch ``state.epoch``; returns frame-averaged train stats."""
    tc = config.train
    plan = batcher.plan(seed=tc.seed * 100_003 + state.epoch)
    usable = len(plan) // ddp.world_size * ddp.world_size  # every rank must take the same number of steps
    mine = plan[ddp.rank:usable:ddp.world_size]
    model.train()
    bar = tqdm(total=len(mine), initial=state.batch, desc=f"epoch {state.epoch + 1}/{tc.epochs}", unit="batch",
               disable=not (tc.progress and ddp.is_main), leave=False)
    start = time.perf_counter()
    frames_here = 0
    for spec in mine[state.batch:]:
        torch.manual_seed(step_seed(tc.seed, state.step, ddp.rank))
        batch = batcher.build(spec, device)
        if config.augment.enabled:
            batch = augment_batch(batch, config.augment)
        lr = schedule.step_batch(state.step)
        loss, stats, logits = compute_loss(model, batcher, batch, objective, device, tc.amp)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.optim.grad_clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()

        targets = batch["targets"]
        valid = targets != IGNORE_INDEX
        n, loss_value = int(valid.sum()), float(loss.detach())
        if not math.isfinite(loss_value) and not scaler.is_enabled():  # fp16 overflow is the scaler's job
            raise AsrKdError(f"non-finite training loss at step {state.step} (epoch {state.epoch + 1}) in "
                             f"{config.out_dir}; lower optim.lr or set optim.grad_clip")
        update = {"loss": loss_value * n, "correct": float((logits.argmax(-1) == targets)[valid].sum()),
                  "frames": float(n), **{k: v * n for k, v in stats.items()}}
        for k, v in update.items():
            state.running[k] = state.running.get(k, 0.0) + v
        frames_here += n
        state.batch += 1
        state.step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
        if tc.checkpoint_every and state.step % tc.checkpoint_every == 0:
            save_checkpoint()
    bar.close()
    elapsed = time.perf_counter() - start
    keys = sorted(state.running)
    totals = dict(zip(keys, ddp.all_sum([state.running[k] for k in keys], device)))
    frames = max(totals.pop("frames", 0.0), 1.0)
    correct = totals.pop("correct", 0.0)
    out = {"train_" + k: v / frames for k, v in totals.items()}
    out["train_frame_acc"] = correct / frames
    speed = ddp.all_sum([frames_here / elapsed if elapsed > 0 else 0.0], device)[0]
    out["train_frames_per_s"] = speed
    return out


@torch.no_grad()
def evaluate(net: nn.Module, batcher, device: torch.device, amp: str, ddp: Distributed) -> dict[str, float]:
    """Validation cross-entropy (hard targets, nats/frame) and frame accuracy of ``net`` (ranks split the batches)."""
    net.eval()
    loss_sum = correct = frames = 0.0
    for spec in batcher.plan(seed=0, shuffle=False)[ddp.rank::ddp.world_size]:
        batch = batcher.build(spec, device)
        with autocast(device, amp):
            logits = batcher.logits(net, batch)
        logits, targets = logits.float(), batch["targets"]
        valid = targets != IGNORE_INDEX
        loss_sum += float(F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum"))
        correct += float((logits.argmax(-1) == targets)[valid].sum())
        frames += float(valid.sum())
    loss_sum, correct, frames = ddp.all_sum([loss_sum, correct, frames], device)
    return {"valid_loss": loss_sum / max(frames, 1.0), "valid_frame_acc": correct / max(frames, 1.0)}


def save_training_checkpoint(path: Path, net: nn.Module, optimizer, schedule: LrSchedule,
                             scaler: torch.amp.GradScaler, state: TrainState, config: ExperimentConfig) -> None:
    payload = {"format": CHECKPOINT_FORMAT, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
               "schedule": schedule.state_dict(), "scaler": scaler.state_dict(), "state": asdict(state),
               "config": config.to_dict()}
    write_with(path, lambda tmp: torch.save(payload, tmp), suffix=".pt")


def _resume_relevant(config: dict) -> dict:
    return {s: {k: v for k, v in keys.items() if (s, k) not in RESUME_FREE_KEYS} if isinstance(keys, dict) else keys
            for s, keys in config.items()}


def load_training_checkpoint(path: Path, net: nn.Module, optimizer, schedule: LrSchedule,
                             scaler: torch.amp.GradScaler, config: ExperimentConfig,
                             device: torch.device) -> TrainState:
    # a checkpoint is only ever replaced atomically, so an unreadable one is not ours
    payload = read_payload(path, "training checkpoint", device)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise AsrKdError(f"{path}: not an asr_kd training checkpoint")
    # Re-parsed so that keys added to the config classes since the checkpoint take their defaults.
    saved = ExperimentConfig.from_dict(payload["config"], str(path)).to_dict()
    if _resume_relevant(saved) != _resume_relevant(config.to_dict()):
        raise AsrKdError(f"{path}: was written with a different configuration; resume with the same config "
                         f"or use a new out_dir (checkpoint config: {payload['config']})")
    net.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    schedule.load_state_dict(payload["schedule"])
    scaler.load_state_dict(payload["scaler"])
    return TrainState(**payload["state"])


def check_valid_every(config: ExperimentConfig) -> None:
    """Refuse ``train.valid_every`` > 1 where an epoch's validation decides something."""
    tc = config.train
    if tc.valid_every < 1:
        raise AsrKdError(f"train.valid_every must be >= 1, got {tc.valid_every}")
    readers = [f"train.keep={tc.keep}"] if tc.keep != "last" else []
    readers += [f"train.patience={tc.patience}"] if tc.patience else []
    readers += [f"optim.schedule={config.optim.schedule}"] if config.optim.schedule in ("newbob", "plateau") else []
    if tc.valid_every > 1 and readers:
        raise AsrKdError(f"train.valid_every={tc.valid_every} skips validations that {', '.join(readers)} reads "
                         "every epoch: use train.keep=last, train.patience=0 and another schedule, or valid_every=1")


def validates(epoch: int, tc: TrainConfig) -> bool:
    """Whether 0-based ``epoch`` ends with a validation pass (every ``valid_every``-th, and the last)."""
    return (epoch + 1) % tc.valid_every == 0 or epoch + 1 == tc.epochs


def write_log_csv(path: Path, history: list[dict]) -> None:
    keys: list[str] = []
    for record in history:
        keys += [k for k in record if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    with atomic_open(path) as f:
        f.write(buf.getvalue())


def run(config: ExperimentConfig, make_objective: MakeObjective | None = None, resume: bool = False,
        task: FrameTask | None = None) -> dict:
    """Train one model as configured; returns the summary (also in ``<out_dir>/summary.json``).

    Args:
        config: the run's configuration.
        make_objective: ``(train_frames, device) -> Objective``; default frame cross-entropy.
            Called once, after the training frames are built (a :class:`FrameTable`, or with
            ``data.loader=stream`` this process's :class:`FrameStream`), so an objective can map
            ``batch["frame_index"]`` to its own per-frame data (teacher posteriors) or attach
            per-frame arrays to the stream (they then arrive in the batch).
        resume: continue from ``<out_dir>/checkpoint.pt`` if it exists.
        task: train on a relabelled part of the frames with ``task.num_classes`` outputs and
            initial weights of the task's choosing (:mod:`asr_kd.training.tasks`); needs
            ``data.loader=memory``.
    """
    ddp, device = setup_distributed(config.train.device)
    try:
        return _run(config, make_objective, resume, ddp, device, task)
    finally:
        if ddp.owns_group:
            dist.destroy_process_group()


def _run(config: ExperimentConfig, make_objective: MakeObjective | None, resume: bool,
         ddp: Distributed, device: torch.device, task: FrameTask | None = None) -> dict:
    tc, out = config.train, Path(config.out_dir)
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        raise AsrKdError(f"{ckpt_path} exists: pass --resume to continue that run, or choose another out_dir")
    if tc.amp not in AMP_MODES:
        raise AsrKdError(f"unknown train.amp {tc.amp!r}; choose from {AMP_MODES}")
    if tc.keep not in ("best", "last"):
        raise AsrKdError(f"train.keep must be 'best' or 'last', got {tc.keep!r}")
    check_valid_every(config)
    config.augment.check()
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)

    data = config.data
    data.check_train_subset()
    train_utts = training_utterances(data)
    valid_utts = validation_utterances(data)
    if data.validation_subset != data.train_subset:
        log.warning("validating on %s, not on held-out %s utterances: numbers reported on %s are selected on it",
                    data.validation_subset, data.train_subset, data.validation_subset)
    if task is not None and data.loader != "memory":
        raise AsrKdError(f"{config.out_dir}: training on a frame task (e.g. a specialist) needs data.loader=memory, "
                         f"got {data.loader!r}")
    num_senones = task.num_classes if task is not None else resolve_num_senones(config)
    train_frames = training_frames(data, train_utts, ddp.rank, ddp.world_size, device, num_senones)
    valid_table = frame_table(data, data.validation_subset, valid_utts)
    if task is not None:
        train_frames, valid_table = task.select(train_frames, "train"), task.select(valid_table, "valid")
    for name, frames in (("train", train_frames), ("validation", valid_table)):
        top = frames.max_target()
        if top >= num_senones:
            raise AsrKdError(f"{name} targets contain senone {top} but the model has {num_senones} outputs")

    torch.manual_seed(tc.seed)
    net = build(config.model.arch, config.model.preset, input_dim=train_frames.dim,
                num_senones=num_senones, **config.model.overrides).to(device)
    if task is not None:
        task.initialise(net)
    model = net
    if ddp.world_size > 1:
        model = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    batcher = batcher_for(net, train_frames, tc.batch_size, tc.max_frames)
    valid_batcher = batcher_for(net, valid_table, tc.max_frames, tc.max_frames)
    objective = make_objective(train_frames, device) if make_objective else CrossEntropyObjective()
    optimizer = make_optimizer(net.parameters(), config.optim)
    steps_per_epoch = len(batcher.plan(seed=0)) // ddp.world_size
    schedule = LrSchedule(optimizer, config.optim, steps_per_epoch * tc.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and tc.amp == "fp16")

    state = TrainState()
    if resume and ckpt_path.exists():
        state = load_training_checkpoint(ckpt_path, net, optimizer, schedule, scaler, config, device)
        if not ddp.is_main:  # the checkpoint's running stats are already the sum over ranks
            state.running = dict.fromkeys(state.running, 0.0)
        log.info("resuming %s at epoch %d, batch %d (step %d)", out, state.epoch + 1, state.batch, state.step)
    if ddp.is_main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_open(out / "config.yaml") as f:
            yaml.safe_dump(config.to_dict(), f, sort_keys=False)
        with atomic_open(out / "train_utts.txt") as f:
            f.writelines(u + "\n" for u in train_utts)
    params = sum(p.numel() for p in net.parameters())
    metadata = {"feature": feature_metadata(data, data.train_subset),
                "training": {"preset": config.model.preset, "train_subset": data.train_subset,
                             "train_fraction": data.train_fraction, "train_utterances": len(train_utts),
                             "train_frames": len(train_frames), "seed": tc.seed, "parameters": params,
                             "validation": validation_metadata(data, valid_utts, len(valid_table))}}
    if task is not None:
        metadata["task"] = task.metadata()
    if config.augment.enabled:
        metadata["training"]["augment"] = asdict(config.augment)

    def checkpoint() -> None:
        # Called on every rank at the same step: rank 0 stores the sum of all ranks' running stats.
        if ddp.world_size > 1 and state.running:
            keys = sorted(state.running)
            totals = ddp.all_sum([state.running[k] for k in keys], device)
            state.running = dict(zip(keys, totals)) if ddp.is_main else dict.fromkeys(keys, 0.0)
        if ddp.is_main:
            save_training_checkpoint(ckpt_path, net, optimizer, schedule, scaler, state, config)

    log.info("training %s/%s (%d parameters) on %d frames of %d utterances, validating on %d frames of %d, "
             "%d ranks on %s -> %s", config.model.arch, config.model.preset, params, len(train_frames),
             len(train_utts), len(valid_table), len(valid_utts), ddp.world_size, device, out)
    while not state.finished and state.epoch < tc.epochs:
        t0 = time.perf_counter()
        record = {"epoch": state.epoch + 1}
        record.update(train_one_epoch(model, batcher, objective, optimizer, schedule, scaler, state, config,
                                      device, ddp, checkpoint))
        validated = validates(state.epoch, tc)
        if validated:
            record.update(evaluate(net, valid_batcher, device, tc.amp, ddp))
        record["lr"] = schedule.lr_at(max(state.step - 1, 0))
        record["step"] = state.step
        record["wall_s"] = time.perf_counter() - t0
        if validated:
            acc = record["valid_frame_acc"]
            schedule.step_epoch(acc)
            progress = acc > state.best_acc + tc.min_delta
            if acc > state.best_acc:
                state.best_acc, state.best_epoch = acc, state.epoch
                if ddp.is_main:
                    best_meta = dict(metadata, training=dict(metadata["training"], epoch=state.epoch + 1,
                                                             valid_frame_acc=acc))
                    save(out / "best.pt", net, best_meta)
            state.bad_epochs = 0 if progress else state.bad_epochs + 1
            valid = f"valid loss {record['valid_loss']:.4f} acc {acc:.4f}"
        else:
            valid = "not validated"
        state.history.append(record)
        log.info("epoch %d: train loss %.4f acc %.4f | %s | lr %.2e | %.0f frames/s, %.0f s", record["epoch"],
                 record["train_loss"], record["train_frame_acc"], valid, record["lr"], record["train_frames_per_s"],
                 record["wall_s"])
        state.epoch, state.batch, state.running = state.epoch + 1, 0, {}
        if tc.patience and state.bad_epochs >= tc.patience:
            log.info("early stopping: validation frame accuracy gained <= %g for %d epochs", tc.min_delta,
                     state.bad_epochs)
            state.finished, state.stop_reason = True, "patience"
        elif schedule.finished:
            log.info("newbob: an epoch with a halved LR gained < %g validation frame accuracy: converged",
                     config.optim.newbob_stop_threshold)
            state.finished, state.stop_reason = True, "newbob"
        if ddp.is_main:
            write_log_csv(out / "log.csv", state.history)
        checkpoint()
    state.finished = True
    state.stop_reason = state.stop_reason or "max_epochs"
    kept_acc = state.best_acc if tc.keep == "best" else state.history[-1]["valid_frame_acc"]
    kept_epoch = state.best_epoch + 1 if tc.keep == "best" else len(state.history)
    summary = {"out_dir": str(out), "model": str(out / "model.pt"), "keep": tc.keep, "kept_epoch": kept_epoch,
               "best_epoch": state.best_epoch + 1, "valid_frame_acc": kept_acc, "best_valid_frame_acc": state.best_acc,
               "epochs_run": len(state.history), "max_epochs": tc.epochs, "stop_reason": state.stop_reason,
               "validation": metadata["training"]["validation"], "steps": state.step, "parameters": params,
               "history": state.history}
    if ddp.is_main:
        checkpoint()
        if tc.keep == "best":
            write_with(out / "model.pt", lambda tmp: shutil.copyfile(out / "best.pt", tmp), suffix=".pt")
        else:
            save(out / "model.pt", net, dict(metadata, training=dict(
                metadata["training"], epoch=len(state.history), valid_frame_acc=kept_acc)))
        write_json(out / "summary.json", summary)
    ddp.barrier()
    return summary


def summary_line(summary: dict) -> str:
    """``validation frame accuracy 0.4123 at epoch 9 of 11 (stopped: patience; ...)``: the CLIs' summary."""
    v = summary["validation"]
    where = (f"{v['utterances']} held-out {v['subset']} utterances" if v["held_out_of_training"]
             else f"{v['utterances']} utterances of {v['subset']}")
    return (f"validation frame accuracy {summary['valid_frame_acc']:.4f} at epoch {summary['kept_epoch']} of "
            f"{summary['epochs_run']} (stopped: {summary['stop_reason']}; validated on {where})")


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m asr_kd.training.trainer`` (e.g. under torchrun)."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run(load_config(args.config, args.overrides), resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {summary['model']}: {summary_line(summary)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
