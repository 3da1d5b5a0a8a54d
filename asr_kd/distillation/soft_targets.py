"""Soft targets at temperature T (Hinton, Vinyals & Dean 2015, eq. 1) and their top-k form.

``q_i = exp(z_i / T) / sum_j exp(z_j / T)``: a higher temperature ``T`` gives a softer
distribution over the senones, exposing how the teacher ranks the wrong classes.

An ensemble's members are combined by :func:`asr_kd.models.ensemble.combine_logits` (one
implementation for the whole package), in one of :data:`COMBINE_MODES`: ``"mean_prob"`` =
arithmetic mean of the members' tempered probabilities (the paper), ``"mean_logits"`` =
softmax of the mean logit at T, ``"geometric"`` = renormalised geometric mean of the tempered
distributions. All are computed in the log domain (no underflow for peaky teachers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from asr_kd.models.ensemble import COMBINE_MODES, combine_logits

__all__ = ["COMBINE_MODES", "TopKTargets", "check_temperature", "ensemble_soft_targets", "soft_targets",
           "top_k_targets"]


def check_temperature(temperature: float) -> None:
    """Raise ``ValueError`` unless ``temperature`` is a finite positive number."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite positive number, got {temperature}")


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(logits / T)`` over the last axis.

    Args:
        logits: ``(..., S)`` logits over ``S`` senones.
        temperature: ``T > 0``; ``T = 1`` is the ordinary softmax.

    Returns:
        ``(..., S)`` probabilities, summing to 1 over the last axis.

    Example:
        >>> p = soft_targets(torch.tensor([[2.0, 1.0, 0.0]]), temperature=2.0)
        >>> p.round(decimals=4)
        tensor([[0.5065, 0.3072, 0.1863]])
    """
    check_temperature(temperature)
    return torch.softmax(logits / temperature, dim=-1)


def ensemble_soft_targets(member_logits: torch.Tensor, temperature: float, combine: str = "mean_prob") -> torch.Tensor:
    """Soft targets of an ensemble at temperature T.

    Args:
        member_logits: ``(M, N, S)`` logits of ``M`` members for ``N`` frames (``M = 1``: one teacher).
        temperature: ``T > 0``, applied to every member before combining.
        combine: one of :data:`COMBINE_MODES`.

    Returns:
        ``(N, S)`` float32 probabilities.

    Example:
        >>> members = torch.tensor([[[2.0, 0.0, 0.0]], [[0.0, 2.0, 0.0]]])   # (M=2, N=1, S=3)
        >>> ensemble_soft_targets(members, 1.0, "mean_prob").round(decimals=4)
        tensor([[0.4467, 0.4467, 0.1065]])
        >>> ensemble_soft_targets(members, 1.0, "mean_logits").round(decimals=4)
        tensor([[0.4223, 0.4223, 0.1554]])
    """
    check_temperature(temperature)
    if member_logits.dim() != 3:
        raise ValueError(f"member logits must be (M, N, S), got shape {tuple(member_logits.shape)}")
    return combine_logits(list(member_logits), temperature, combine).exp()


@dataclass(frozen=True)
class TopKTargets:
    """The ``k`` most probable senones of each frame's soft targets, most probable first.

    Attributes:
        ids: ``(N, k)`` integer senone ids.
        probs: ``(N, k)`` their probabilities under the full distribution, *not* renormalised:
            ``1 - probs.sum(-1)`` is the tail mass of the ``S - k`` senones left out (how the
            loss uses it is its ``topk_policy``).
    """

    ids: torch.Tensor
    probs: torch.Tensor

    def __post_init__(self) -> None:
        if self.ids.dim() != 2 or self.ids.shape != self.probs.shape:
            raise ValueError(
                f"top-k ids and probs must both be (N, k), got {tuple(self.ids.shape)} and {tuple(self.probs.shape)}"
            )

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> TopKTargets:
        """Int64 ids and ``dtype`` probabilities on ``device`` (stores keep int16/fp16)."""
        return TopKTargets(self.ids.to(device=device, dtype=torch.int64), self.probs.to(device=device, dtype=dtype))


def top_k_targets(probs: torch.Tensor, k: int) -> TopKTargets:
    """Keep the ``k`` largest of ``(N, S)`` probabilities per frame (ids sorted by probability).

    Example:
        >>> t = top_k_targets(torch.tensor([[0.1, 0.6, 0.3]]), k=2)
        >>> t.ids, t.probs
        (tensor([[1, 2]]), tensor([[0.6000, 0.3000]]))
    """
    if not 1 <= k <= probs.shape[-1]:
        raise ValueError(f"k must be in 1..{probs.shape[-1]} (number of senones), got {k}")
    values, ids = torch.topk(probs, k, dim=-1, sorted=True)
    return TopKTargets(ids, values)
