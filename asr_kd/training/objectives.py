"""Training objectives: the plug-in point that turns the trainer into a distillation trainer.

An objective receives the logits of the valid frames of a batch and the batch itself::

    logits:               (N, num_senones) float32 student logits (padding already removed)
    batch["targets"]:     (N,) int64 hard senone targets
    batch["frame_index"]: (N,) int64 global frame indices into the training FrameTable
                          (row order = FrameTable.utt_ids concatenated; the same numbering
                          with data.loader=stream, where no process holds the table)
    batch["inputs"]:      the model input the logits came from: (N, left+1+right, D) context
                          windows for a DNN, or (feats (B, T, D), lengths (B,)) for a conformer
    batch[name]:          with data.loader=stream, every set of per-frame arrays attached to the
                          stream, for the batch's N frames (e.g. batch["teacher"]: the teacher's
                          soft targets, see asr_kd.distillation.streamed_targets)

and returns the scalar loss plus float statistics for the log (averaged over frames).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from asr_kd.features.dataset import IGNORE_INDEX


class Objective(Protocol):
    def __call__(self, logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict[str, float]]: ...


class CrossEntropyObjective:
    """Frame cross-entropy against the hard senone targets (the baseline's loss).

    Args:
        label_smoothing: probability mass spread uniformly over all senones (0 = none).
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        loss = F.cross_entropy(logits, batch["targets"], ignore_index=IGNORE_INDEX,
                               label_smoothing=self.label_smoothing)
        return loss, {"ce": float(loss.detach())}
