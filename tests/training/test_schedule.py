from __future__ import annotations

import math

import pytest
import torch

from asr_kd.training.config import OptimConfig
from asr_kd.training.schedule import LrSchedule
from asr_kd.utils.errors import AsrKdError


def schedule(**kw) -> LrSchedule:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return LrSchedule(opt, OptimConfig(**{"lr": 1.0, "min_lr": 0.0, **kw}), total_steps=100)


def test_newbob_halves_after_a_small_gain_and_resumes_exactly():
    s = schedule(schedule="plateau", plateau_factor=0.5, plateau_threshold=0.01)
    s.step_epoch(0.50)
    s.step_epoch(0.60)  # +10 points: keep
    assert s.step_batch(7) == 1.0
    s.step_epoch(0.605)  # +0.5 point < 1 point: halve
    assert s.step_batch(8) == 0.5 and s.optimizer.param_groups[0]["lr"] == 0.5
    other = schedule(schedule="plateau", plateau_factor=0.5, plateau_threshold=0.01)
    other.load_state_dict(s.state_dict())
    assert other.lr_at(9) == s.lr_at(9)


def test_warmup_and_cosine():
    s = schedule(schedule="cosine", warmup_steps=10)
    assert s.lr_at(0) == pytest.approx(0.1 * 0.5 * (1 + math.cos(0)))
    assert s.lr_at(50) == pytest.approx(0.5)
    assert s.lr_at(100) == pytest.approx(0.0)
    with pytest.raises(AsrKdError, match="unknown LR schedule"):
        schedule(schedule="step")


def test_newbob_is_reduce_lr_on_plateau_in_max_mode_with_an_absolute_threshold():
    """Our plateau schedule follows torch's scheduler epoch by epoch, also under warm-up."""
    ours = schedule(schedule="plateau", plateau_factor=0.5, plateau_threshold=0.01, warmup_steps=1000)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0, threshold=0.01,
                                                           threshold_mode="abs")
    for epoch, acc in enumerate([0.30, 0.35, 0.355, 0.37, 0.371, 0.372, 0.40]):
        ours.step_batch(epoch)  # mid warm-up: the group LR is scaled, the reduction must not compound it
        ours.step_epoch(acc)
        reference.step(acc)
        assert ours.base_lr == reference.get_last_lr()[0]
    assert ours.base_lr == 0.125
    assert ours.lr_at(499) == pytest.approx(0.125 * 0.5)  # warm-up still scales the reduced LR


def test_plateau_lr_floor_and_bad_factor():
    s = schedule(schedule="plateau", plateau_factor=0.1, plateau_threshold=0.5, min_lr=0.05)
    for _ in range(4):
        s.step_epoch(0.1)
    assert s.lr_at(0) == 0.05
    with pytest.raises(AsrKdError, match="plateau_factor must be in"):
        schedule(schedule="plateau", plateau_factor=1.5)


def test_newbob_keeps_halving_once_started_and_stops_on_a_small_gain():
    s = schedule(schedule="newbob", plateau_factor=0.5, plateau_threshold=0.01, newbob_stop_threshold=0.002)
    lrs = []
    for acc in [0.30, 0.35, 0.355, 0.37, 0.375, 0.376]:
        assert not s.finished
        s.step_epoch(acc)
        lrs.append(s.base_lr)
    # +5 points: keep; +0.5 < 1 point: start halving; then halve every epoch, even after +1.5 points
    assert lrs[:5] == [1.0, 1.0, 0.5, 0.25, 0.125]
    assert s.finished  # +0.1 point < 0.2 while halving: converged
    resumed = schedule(schedule="newbob", plateau_factor=0.5, plateau_threshold=0.01, newbob_stop_threshold=0.002)
    resumed.load_state_dict(s.state_dict())
    assert resumed.base_lr == s.base_lr and resumed.finished
