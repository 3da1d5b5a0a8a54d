"""Soft targets at temperature T (Hinton, Vinyals & Dean 2015, eq. 1).

``q_i = exp(z_i / T) / sum_j exp(z_j / T)``: a higher temperature ``T`` gives a softer
distribution over the senones, exposing how the teacher ranks the wrong classes.

An ensemble's members are combined in one of two ways (:data:`COMBINE_MODES`):

* ``"prob_mean"``: arithmetic mean of the members' tempered probabilities (the paper's
  ensemble, section 3.1 / 4);
* ``"logit_mean"``: softmax of the mean of the members' logits at temperature T (a geometric
  mean of the probabilities, renormalised; sharper than ``prob_mean`` where members disagree).

Everything is computed in the log domain, so peaky teachers at ``T = 1`` do not underflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

COMBINE_MODES = ("prob_mean", "logit_mean")


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


def combine_log_probs(member_logits: torch.Tensor, temperature: float, mode: str = "prob_mean") -> torch.Tensor:
    """Log soft targets of an ensemble at temperature T.

    Args:
        member_logits: ``(M, ..., S)`` logits of ``M`` members (``M = 1`` for a single teacher),
            e.g. ``(M, N, S)`` for ``N`` frames.
        temperature: ``T > 0``, applied to every member before combining.
        mode: one of :data:`COMBINE_MODES`.

    Returns:
        ``(..., S)`` log-probabilities of the combined soft targets.

    Example:
        >>> members = torch.tensor([[[4.0, 0.0]], [[0.0, 4.0]]])       # (M=2, N=1, S=2)
        >>> combine_log_probs(members, 1.0, "prob_mean").exp()
        tensor([[0.5000, 0.5000]])
        >>> combine_log_probs(members, 1.0, "logit_mean").exp()
        tensor([[0.5000, 0.5000]])
    """
    check_temperature(temperature)
    if member_logits.dim() < 2:
        raise ValueError(f"member_logits must be (M, ..., S), got shape {tuple(member_logits.shape)}")
    if mode == "prob_mean":
        log_probs = torch.log_softmax(member_logits / temperature, dim=-1)
        return torch.logsumexp(log_probs, dim=0) - math.log(member_logits.shape[0])
    if mode == "logit_mean":
        return torch.log_softmax(member_logits.mean(dim=0) / temperature, dim=-1)
    raise ValueError(f"unknown combine mode {mode!r}; choose from {COMBINE_MODES}")


def combine_soft_targets(member_logits: torch.Tensor, temperature: float, mode: str = "prob_mean") -> torch.Tensor:
    """Soft targets ``(..., S)`` of an ensemble: :func:`combine_log_probs` exponentiated.

    Example:
        >>> members = torch.tensor([[[2.0, 0.0, 0.0]], [[0.0, 2.0, 0.0]]])   # (M=2, N=1, S=3)
        >>> combine_soft_targets(members, 1.0, "prob_mean").round(decimals=4)
        tensor([[0.4467, 0.4467, 0.1065]])
        >>> combine_soft_targets(members, 1.0, "logit_mean").round(decimals=4)
        tensor([[0.4223, 0.4223, 0.1554]])
    """
    return combine_log_probs(member_logits, temperature, mode).exp()


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
