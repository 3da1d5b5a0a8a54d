"""A conformer acoustic model with one senone posterior per 10 ms input frame."""

# No ``from __future__ import annotations``: TorchScript needs the attribute annotation of
# _MaskedDepthwiseConv.mask as a real type, not a string.

import torch
from torch import nn
from torchaudio.models import Conformer


class _MaskedDepthwiseConv(nn.Module):
    """Zeroes padded frames before a depthwise convolution, so padding never leaks into real frames.

    torchaudio's conformer masks padding in attention only; without this, the outputs of an
    utterance's last ``kernel_size // 2`` frames would depend on what it was batched with.
    ``mask`` is the ``(B, 1, T)`` valid-frame mask of the batch being processed, set by
    :class:`ConformerAM` (a typed attribute, so the model stays scriptable with TorchScript).
    """

    mask: torch.Tensor | None

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.conv = conv
        self.mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        mask = self.mask
        return self.conv(x if mask is None else x * mask)


class ConformerAM(nn.Module):
    """Input projection -> torchaudio conformer blocks -> senone logits, no subsampling.

    The hybrid decoder needs a posterior for every feature frame, so time is never
    subsampled; self-attention spans the whole utterance (cost grows as ``T**2``).

    Args:
        input_dim: feature dimension D.
        num_senones: output classes.
        d_model: width of the conformer blocks.
        num_heads: attention heads (must divide ``d_model``).
        ffn_dim: hidden units of the feed-forward modules.
        num_layers: conformer blocks.
        kernel_size: depthwise convolution kernel in frames (odd).
        dropout: dropout probability inside the blocks.
    """

    arch = "conformer"

    def __init__(self, input_dim: int, num_senones: int, d_model: int = 256, num_heads: int = 4,
                 ffn_dim: int = 1024, num_layers: int = 12, kernel_size: int = 31, dropout: float = 0.1) -> None:
        super().__init__()
        self.config = dict(input_dim=input_dim, num_senones=num_senones, d_model=d_model, num_heads=num_heads,
                           ffn_dim=ffn_dim, num_layers=num_layers, kernel_size=kernel_size, dropout=dropout)
        self.input_dim, self.num_senones = input_dim, num_senones
        self.input_proj = nn.Linear(input_dim, d_model)
        self.encoder = Conformer(input_dim=d_model, num_heads=num_heads, ffn_dim=ffn_dim, num_layers=num_layers,
                                 depthwise_conv_kernel_size=kernel_size, dropout=dropout)
        self.output = nn.Linear(d_model, num_senones)
        for layer in self.encoder.conformer_layers:
            convs = layer.conv_module.sequential
            convs[2] = _MaskedDepthwiseConv(convs[2])  # [pointwise, GLU, depthwise, ...]

    @property
    def context(self) -> None:
        """Whole-utterance model: no fixed context window."""
        return None

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``feats (B, T, D)``, ``lengths (B,)`` -> logits ``(B, T, num_senones)``.

        Padded positions are masked out of attention and convolutions (eval-mode outputs of
        an utterance do not depend on its batch); their own outputs are garbage.
        """
        positions = torch.arange(feats.shape[1], device=feats.device)
        self._set_conv_mask((positions[None, :] < lengths[:, None]).to(feats.dtype)[:, None, :])
        encoded, _ = self.encoder(self.input_proj(feats), lengths)
        self._set_conv_mask(None)  # no try/finally (not scriptable); every forward sets it anew anyway
        return self.output(encoded)

    def _set_conv_mask(self, mask: torch.Tensor | None) -> None:
        for layer in self.encoder.conformer_layers:
            layer.conv_module.sequential[2].mask = mask
