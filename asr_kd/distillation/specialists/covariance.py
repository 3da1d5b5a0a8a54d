"""The covariance of a generalist's predicted senone distributions, accumulated over frames.

Hinton et al. (2015, section 5.1) find the classes a generalist confuses from its predictions
alone: classes that are often predicted together have covarying predicted probabilities, so
the columns of the covariance matrix of the predicted distributions group them (no labels
needed). The sums are accumulated utterance batch by utterance batch in float64 (``(S, S)``:
8 MB for 1000 senones, 1.6 GB for the paper's 14k), so any number of frames fits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm import tqdm

from asr_kd.features.dataset import FeatureSet
from asr_kd.models.inference import utterance_log_posteriors
from asr_kd.utils.errors import AsrKdError


class CovarianceAccumulator:
    """Streaming sums of ``p`` and ``p p^T`` over frames of predicted distributions ``p`` ``(S,)``.

    >>> acc = CovarianceAccumulator(2)
    >>> acc.update(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> acc.covariance().tolist()
    [[0.5, -0.5], [-0.5, 0.5]]
    """

    def __init__(self, num_senones: int, device: str | torch.device = "cpu") -> None:
        self.num_senones = num_senones
        self.frames = 0
        self.sum = torch.zeros(num_senones, dtype=torch.float64, device=device)
        self.outer = torch.zeros(num_senones, num_senones, dtype=torch.float64, device=device)

    def update(self, probs: torch.Tensor) -> None:
        """Add ``(N, S)`` predicted distributions (rows sum to 1) of ``N`` frames."""
        if probs.ndim != 2 or probs.shape[1] != self.num_senones:
            raise ValueError(f"expected (N, {self.num_senones}) probabilities, got {tuple(probs.shape)}")
        p = probs.to(self.outer.device, torch.float64)
        self.frames += len(p)
        self.sum += p.sum(0)
        self.outer += p.T @ p

    def mean(self) -> torch.Tensor:
        """``(S,)`` float64 mean predicted distribution."""
        return self.sum / max(self.frames, 1)

    def covariance(self) -> torch.Tensor:
        """``(S, S)`` float64 sample covariance ``(sum p p^T - N mean mean^T) / (N - 1)``."""
        if self.frames < 2:
            raise AsrKdError(f"the covariance of predictions needs at least 2 frames, got {self.frames}")
        mean = self.mean()
        return (self.outer - self.frames * torch.outer(mean, mean)) / (self.frames - 1)


def prediction_covariance(model: nn.Module, features: FeatureSet, utt_ids: Sequence[str] | None = None,
                          device: str | torch.device = "cpu", max_frames: int = 20000,
                          progress: bool = True) -> CovarianceAccumulator:
    """Run ``model`` (a generalist, or an ensemble) over ``utt_ids`` of ``features`` and accumulate
    the covariance of its predicted distributions (softmax at T = 1) over all their frames."""
    ids = list(utt_ids) if utt_ids is not None else features.utt_ids()
    acc = CovarianceAccumulator(int(model.num_senones), device)
    for _, log_post in tqdm(utterance_log_posteriors(model, features, ids, device, max_frames), total=len(ids),
                            desc="generalist predictions", unit="utt", disable=not progress):
        acc.update(log_post.exp())
    return acc
