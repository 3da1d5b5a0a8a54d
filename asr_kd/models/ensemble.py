"""An ensemble of acoustic models whose posteriors are combined at a temperature."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

COMBINE_MODES = ("mean_prob", "geometric", "mean_logits")
DEFAULT_COMBINE = "mean_prob"  # the paper's arithmetic mean of probabilities


def combine_logits(logits: Sequence[torch.Tensor], temperature: float = 1.0,
                   combine: str = "mean_prob") -> torch.Tensor:
    """Combine member logits ``M x (..., S)`` into log-probabilities ``(..., S)`` at ``temperature``.

    * ``mean_prob`` (the paper): ``log mean_m softmax(z_m / T)``.
    * ``geometric``: renormalised geometric mean of the tempered distributions,
      ``log_softmax(mean_m log_softmax(z_m / T))``.
    * ``mean_logits``: ``log_softmax(mean_m z_m / T)``.

    Computed in float32 whatever the input dtype (fp16 probabilities underflow).
    """
    if combine not in COMBINE_MODES:
        raise ValueError(f"unknown combine mode {combine!r}; choose from {COMBINE_MODES}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = torch.stack([x.float() for x in logits]) / temperature  # (M, ..., S)
    if combine == "mean_logits":
        return torch.log_softmax(z.mean(0), dim=-1)
    log_probs = torch.log_softmax(z, dim=-1)
    if combine == "geometric":
        return torch.log_softmax(log_probs.mean(0), dim=-1)
    return torch.logsumexp(log_probs, dim=0) - math.log(len(logits))


class Ensemble(nn.Module):
    """Members run on the same utterances; output = combined log-probabilities.

    Members may differ in architecture and context window (each pads its own edges), but
    must share the senone set and feature type.

    Args:
        members: acoustic models with ``forward(feats (B, T, D), lengths (B,)) -> (B, T, S)``.
        temperature: T applied to each member's logits before combining.
        combine: one of :data:`COMBINE_MODES`.
    """

    arch = "ensemble"

    def __init__(self, members: Sequence[nn.Module], temperature: float = 1.0, combine: str = "mean_prob") -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        senones = {m.num_senones for m in members}
        if len(senones) != 1:
            raise ValueError(f"ensemble members disagree on the number of senones: {sorted(senones)}")
        combine_logits([torch.zeros(1)], temperature, combine)  # validates the settings early
        self.members = nn.ModuleList(members)
        self.num_senones = senones.pop()
        self.input_dim = members[0].input_dim
        self.temperature = temperature
        self.combine = combine

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``feats (B, T, D)``, ``lengths (B,)`` -> log-probabilities ``(B, T, S)`` (float32)."""
        return combine_logits([m(feats, lengths) for m in self.members], self.temperature, self.combine)
