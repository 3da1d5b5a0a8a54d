"""The paper's hybrid DNN: a window of context frames -> ReLU layers -> senone logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asr_kd.models.windows import edge_padded


class DNN(nn.Module):
    """Feed-forward senone classifier over a window of ``left + 1 + right`` frames.

    Hinton et al. (2015) use 26 frames of 40 log-mel (20 past, 5 future, predicting the
    21st) and 8 hidden layers of 2560 ReLUs. Two equivalent ways to run it:

    * ``forward(feats (B, T, D), lengths (B,))`` -> ``(B, T, num_senones)``: whole padded
      utterances at once; the first layer runs as a 1-D convolution over time on the
      utterance padded by repeating its first/last real frame (no per-frame Python loop).
    * ``forward(windows (N, left + 1 + right, D))`` (``lengths=None``) -> ``(N, num_senones)``:
      pre-gathered windows from :meth:`FrameTable.context_windows`, for frame-shuffled
      training.

    Both give the same logits for the same frame (same window, same weights).

    Args:
        input_dim: feature dimension D (log-mel bins).
        num_senones: output classes.
        left, right: context frames before/after the centre frame.
        hidden_dim: units per hidden layer.
        num_layers: hidden layers (>= 1).
        dropout: dropout probability after every hidden ReLU.
    """

    arch = "dnn"

    def __init__(self, input_dim: int, num_senones: int, left: int = 20, right: int = 5,
                 hidden_dim: int = 2560, num_layers: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        if num_layers < 1 or left < 0 or right < 0:
            raise ValueError(f"DNN needs num_layers >= 1 and non-negative context, got {num_layers}, {left}, {right}")
        self.config = dict(input_dim=input_dim, num_senones=num_senones, left=left, right=right,
                           hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout)
        self.input_dim, self.num_senones = input_dim, num_senones
        self.left, self.right = left, right
        width = left + 1 + right
        self.input_layer = nn.Linear(width * input_dim, hidden_dim)
        self.hidden = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers - 1))
        self.output = nn.Linear(hidden_dim, num_senones)
        self.dropout = nn.Dropout(dropout)

    @property
    def context(self) -> tuple[int, int]:
        """``(left, right)`` context frames."""
        return self.left, self.right

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Senone logits.

        Args:
            feats: ``(B, T, D)`` padded utterances, or ``(N, left + 1 + right, D)`` windows
                when ``lengths`` is None.
            lengths: ``(B,)`` valid frames per utterance.

        Returns:
            ``(B, T, num_senones)`` (positions past ``lengths`` are garbage) or ``(N, num_senones)``.
        """
        if lengths is None:
            return self._tail(self.input_layer(feats.flatten(1)))
        # The window layer as a convolution: Linear weight (H, width*D) laid out as (H, width, D).
        hidden_dim = self.input_layer.out_features
        kernel = self.input_layer.weight.view(hidden_dim, -1, self.input_dim).transpose(1, 2)
        padded = edge_padded(feats, lengths, self.left, self.right)  # (B, left + T + right, D)
        h = F.conv1d(padded.transpose(1, 2), kernel, self.input_layer.bias).transpose(1, 2)
        return self._tail(h)

    def _tail(self, h: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.relu(h))
        for layer in self.hidden:
            h = self.dropout(torch.relu(layer(h)))
        return self.output(h)
