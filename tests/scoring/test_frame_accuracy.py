"""Frame accuracy counts (checked against the trainer in tests/training/test_ensemble_and_scoring.py)."""

from __future__ import annotations

import torch

from asr_kd.scoring.frame_accuracy import FrameAccuracy


def test_frame_accuracy_counts_by_hand():
    acc = FrameAccuracy()
    acc.update(torch.tensor([1, 2, 3, 0]), torch.tensor([1, 2, 0, 0]), torch.tensor([False, True, True, True]))
    result = acc.to_dict()
    assert result["frame_acc"] == 0.75 and result["frames"] == 4
    assert result["silence"] == {"frame_acc": 2 / 3, "frames": 3}
    assert result["nonsilence"] == {"frame_acc": 1.0, "frames": 1}
    assert FrameAccuracy().to_dict()["frame_acc"] is None
