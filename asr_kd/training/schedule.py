"""Learning-rate schedules with a tiny, exactly resumable state.

``plateau`` is the newbob schedule of hybrid-DNN training: after every epoch whose validation
frame accuracy is not ``plateau_threshold`` (absolute) above the best so far, multiply the LR
by ``plateau_factor``. It is ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (mode ``max``,
``threshold_mode="abs"``, ``patience=0``) rather than our own rule. With the trainer's early
stopping (``train.patience`` epochs in a row without a gain of ``train.min_delta``) it ends
training the way Kaldi nnet1's ``newbob`` does: halve while the gains are small, stop once
halving no longer gains. (Kaldi also keeps halving every epoch once it has started; here an
epoch that gains ``plateau_threshold`` again keeps its LR.)
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from asr_kd.training.config import OptimConfig
from asr_kd.utils.errors import AsrKdError

SCHEDULES = ("plateau", "cosine", "constant")


class LrSchedule:
    """LR at step ``s`` = ``base * warmup(s) * shape(s)``, floored at ``min_lr``.

    ``warmup`` ramps linearly over ``warmup_steps``; ``shape`` is the cosine curve over
    ``total_steps`` for ``cosine`` (1 otherwise); ``base`` is ``lr``, or for ``plateau`` the
    LR that ``ReduceLROnPlateau`` has left after its reductions (updated once per epoch from
    validation frame accuracy, :meth:`step_epoch`).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int) -> None:
        if config.schedule not in SCHEDULES:
            raise AsrKdError(f"unknown LR schedule {config.schedule!r}; choose from {SCHEDULES}")
        self.optimizer, self.config, self.total_steps = optimizer, config, max(total_steps, 1)
        self.plateau = None
        if config.schedule == "plateau":
            if not 0.0 < config.plateau_factor < 1.0:
                raise AsrKdError(f"optim.plateau_factor must be in (0, 1), got {config.plateau_factor}")
            for group in optimizer.param_groups:
                group["lr"] = config.lr
            self.plateau = ReduceLROnPlateau(optimizer, mode="max", factor=config.plateau_factor, patience=0,
                                             threshold=config.plateau_threshold, threshold_mode="abs",
                                             min_lr=config.min_lr)

    @property
    def base_lr(self) -> float:
        """The LR before warm-up and cosine shaping: ``lr``, lowered by the plateau reductions so far."""
        return self.plateau.get_last_lr()[0] if self.plateau is not None else self.config.lr

    def lr_at(self, step: int) -> float:
        c = self.config
        lr = self.base_lr
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

    def step_epoch(self, valid_accuracy: float) -> None:
        """Newbob: let ``ReduceLROnPlateau`` lower the LR after an epoch without enough validation gain."""
        if self.plateau is None:
            return
        base = self.base_lr
        for group in self.optimizer.param_groups:  # it reduces the groups' LR: give it the un-warmed one
            group["lr"] = base
        self.plateau.step(valid_accuracy)

    def state_dict(self) -> dict:
        return {"plateau": self.plateau.state_dict() if self.plateau is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
