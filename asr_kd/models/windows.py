"""Padding of utterance batches for context-window models."""

from __future__ import annotations

import torch


def edge_padded(feats: torch.Tensor, lengths: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Pad each utterance by repeating its first and last *real* frame.

    Matches :meth:`FrameTable.context_windows` (windows clamped to the utterance), so a
    model sees the same window whether it runs on whole utterances or on gathered frames.

    Args:
        feats: ``(B, T, D)`` zero-padded utterances.
        lengths: ``(B,)`` valid frames of each utterance.
        left, right: frames added before / after.

    Returns:
        ``(B, left + T + right, D)``; row ``p`` of utterance ``b`` is frame
        ``clamp(p - left, 0, lengths[b] - 1)``.
    """
    batch, frames, _ = feats.shape
    positions = torch.arange(-left, frames + right, device=feats.device)
    last = (lengths.to(feats.device) - 1).clamp(min=0)[:, None]
    index = torch.minimum(positions[None, :].clamp(min=0), last)  # (B, left + T + right)
    return torch.gather(feats, 1, index[:, :, None].expand(-1, -1, feats.shape[2]))
