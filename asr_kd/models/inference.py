"""Running acoustic models over whole utterances: log-posteriors per 10 ms frame."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from asr_kd.features.dataset import FeatureSet, UtteranceDataset, batches_by_frames, collate_utterances
from asr_kd.models.ensemble import Ensemble


def log_posteriors(model: nn.Module, feats: torch.Tensor, lengths: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """``feats (B, T, D)``, ``lengths (B,)`` -> float32 log-posteriors ``(B, T, S)`` at ``temperature``.

    An :class:`Ensemble` already returns log-probabilities at its own ``temperature``
    attribute, so ``temperature`` must stay 1 for it. Padded positions are garbage.
    """
    out = model(feats, lengths).float()
    if isinstance(model, Ensemble):
        if temperature != 1.0:
            raise ValueError("set Ensemble.temperature instead of passing a temperature for an ensemble")
        return out
    return torch.log_softmax(out / temperature, dim=-1)


def utterance_batches(features: FeatureSet, utt_ids: Sequence[str] | None = None,
                      max_frames: int = 20000) -> Iterator[dict]:
    """Padded batches (see :func:`collate_utterances`) of at most ``max_frames`` padded frames, length-sorted."""
    dataset = UtteranceDataset(features, utt_ids)
    lengths = [features.store.num_rows(u) for u in dataset.utt_ids]
    for indices in batches_by_frames(lengths, max_frames):
        yield collate_utterances([dataset[i] for i in indices])


@torch.no_grad()
def utterance_log_posteriors(model: nn.Module, features: FeatureSet, utt_ids: Sequence[str] | None = None,
                             device: str | torch.device = "cpu", max_frames: int = 20000,
                             temperature: float = 1.0) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(utt_id, (T, S) float32 CPU log-posteriors)`` for every utterance (length-sorted order)."""
    model.eval()
    for batch in utterance_batches(features, utt_ids, max_frames=max_frames):
        out = log_posteriors(model, batch["feats"].to(device), batch["lengths"].to(device), temperature).cpu()
        for utt_id, x, n in zip(batch["utt_ids"], out, batch["lengths"].tolist()):
            yield utt_id, x[:n]
