"""Learning-rate schedules with a tiny, exactly resumable state.

Two schedules read the validation frame accuracy after every epoch:

* ``plateau``: multiply the LR by ``plateau_factor`` after every epoch whose validation frame
  accuracy is not ``plateau_threshold`` (absolute) above the best so far. This is
  ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (mode ``max``, ``threshold_mode="abs"``,
  ``patience=0``), not our own rule; the trainer's ``train.patience`` ends training.
* ``newbob``: Kaldi nnet1's schedule (``steps/nnet/train_scheduler.sh``): train at ``lr`` until an
  epoch gains less than ``plateau_threshold`` over the best; from then on multiply the LR by
  ``plateau_factor`` after *every* epoch, and stop once an epoch gains less than
  ``newbob_stop_threshold``. ReduceLROnPlateau cannot say "keep halving once started", and that
  is what bounds the epochs: on the Mini LibriSpeech DNN a halving bought +2.6 points of
  validation accuracy in one epoch where another epoch at the old LR bought +0.3, so annealing
  at once converges in a few epochs, while ReduceLROnPlateau spends several epochs on every LR
  level before it lowers the LR again (measured: recipes/mini_librispeech/README.md). Kaldi
  measures relative cross-entropy gains and rolls back an epoch that got worse; here the gains
  are absolute validation frame-accuracy points, and ``keep: best`` picks the best epoch at the end.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from asr_kd.training.config import OptimConfig
from asr_kd.utils.errors import AsrKdError

SCHEDULES = ("newbob", "plateau", "cosine", "constant")


class LrSchedule:
    """LR at step ``s`` = ``base * warmup(s) * shape(s)``, floored at ``min_lr``.

    ``warmup`` ramps linearly over ``warmup_steps``; ``shape`` is the cosine curve over
    ``total_steps`` for ``cosine`` (1 otherwise); ``base`` is ``lr``, lowered once per epoch from
    validation frame accuracy by ``plateau`` (what ``ReduceLROnPlateau`` has left) or ``newbob``
    (:meth:`step_epoch`). :attr:`finished` is newbob's stop signal.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int) -> None:
        if config.schedule not in SCHEDULES:
            raise AsrKdError(f"unknown LR schedule {config.schedule!r}; choose from {SCHEDULES}")
        self.optimizer, self.config, self.total_steps = optimizer, config, max(total_steps, 1)
        self.plateau = None
        self.newbob = {"decay": 1.0, "best": -math.inf, "halving": False, "finished": False}
        if config.schedule in ("plateau", "newbob") and not 0.0 < config.plateau_factor < 1.0:
            raise AsrKdError(f"optim.plateau_factor must be in (0, 1), got {config.plateau_factor}")
        if config.schedule == "plateau":
            for group in optimizer.param_groups:
                group["lr"] = config.lr
            self.plateau = ReduceLROnPlateau(optimizer, mode="max", factor=config.plateau_factor, patience=0,
                                             threshold=config.plateau_threshold, threshold_mode="abs",
                                             min_lr=config.min_lr)

    @property
    def base_lr(self) -> float:
        """The LR before warm-up and cosine shaping: ``lr``, lowered by the plateau reductions so far."""
        if self.plateau is not None:
            return self.plateau.get_last_lr()[0]
        return self.config.lr * self.newbob["decay"]

    @property
    def finished(self) -> bool:
        """Newbob's stop rule fired: an epoch after the halving started gained too little."""
        return self.newbob["finished"]

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
        """Lower the LR from the epoch's validation frame accuracy (``plateau``, ``newbob``)."""
        if self.config.schedule == "newbob":
            self._newbob(valid_accuracy)
        if self.plateau is None:
            return
        base = self.base_lr
        for group in self.optimizer.param_groups:  # it reduces the groups' LR: give it the un-warmed one
            group["lr"] = base
        self.plateau.step(valid_accuracy)

    def _newbob(self, accuracy: float) -> None:
        c, nb = self.config, self.newbob
        gain = accuracy - nb["best"]
        nb["best"] = max(nb["best"], accuracy)
        if nb["halving"] and gain < c.newbob_stop_threshold:
            nb["finished"] = True
            return
        if not nb["halving"] and gain < c.plateau_threshold:
            nb["halving"] = True
        if nb["halving"]:
            nb["decay"] *= c.plateau_factor

    def state_dict(self) -> dict:
        return {"plateau": self.plateau.state_dict() if self.plateau is not None else None,
                "newbob": dict(self.newbob)}

    def load_state_dict(self, state: dict) -> None:
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
        self.newbob = dict(state.get("newbob") or self.newbob)
