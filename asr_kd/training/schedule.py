"""Learning-rate schedules with a tiny, exactly resumable state."""

from __future__ import annotations

import math

import torch

from asr_kd.training.config import OptimConfig
from asr_kd.utils.errors import AsrKdError

SCHEDULES = ("plateau", "cosine", "constant")


class LrSchedule:
    """LR at step ``s`` = ``lr * warmup(s) * shape(s) * decay``, floored at ``min_lr``.

    ``warmup`` ramps linearly over ``warmup_steps``; ``shape`` is the cosine curve over
    ``total_steps`` for ``cosine`` (1 otherwise); ``decay`` is the product of the plateau
    factors applied so far (``plateau`` only, updated once per epoch from dev accuracy).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int) -> None:
        if config.schedule not in SCHEDULES:
            raise AsrKdError(f"unknown LR schedule {config.schedule!r}; choose from {SCHEDULES}")
        self.optimizer, self.config, self.total_steps = optimizer, config, max(total_steps, 1)
        self.decay = 1.0
        self.best = -math.inf

    def lr_at(self, step: int) -> float:
        c = self.config
        lr = c.lr * self.decay
        if c.warmup_steps > 0:
            lr *= min(1.0, (step + 1) / c.warmup_steps)
        if c.schedule == "cosine":
            lr *= 0.5 * (1 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))
        return max(lr, c.min_lr)

    def step_batch(self, step: int) -> float:
        """Set the LR of optimiser step ``step`` (0-based); returns it."""
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step_epoch(self, dev_accuracy: float) -> None:
        """Newbob rule: decay when the epoch's dev frame accuracy gained less than the threshold."""
        if self.config.schedule == "plateau" and dev_accuracy < self.best + self.config.plateau_threshold:
            self.decay *= self.config.plateau_factor
        self.best = max(self.best, dev_accuracy)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.best = float(state["decay"]), float(state["best"])
