"""Minibatches drawn from a :class:`FrameTable`: frames with context (DNN) or whole utterances (conformer).

Both batchers split an epoch into a deterministic list of batch *plans* (a function of the
seed and epoch only, so a resumed run replays the same order and can skip what is done)
and build batch dicts with the keys an :class:`~asr_kd.training.objectives.Objective`
reads: ``inputs``, ``targets`` ``(N,)``, ``frame_index`` ``(N,)``.
"""

from __future__ import annotations

import torch
from torch import nn

from asr_kd.features.dataset import FrameTable, batches_by_frames


class FrameBatcher:
    """Globally shuffled frames with ``(N, left + 1 + right, D)`` context windows.

    Args:
        table: all frames (with targets) of the set.
        context: ``(left, right)`` frames of the model's window.
        batch_size: frames per minibatch.
    """

    def __init__(self, table: FrameTable, context: tuple[int, int], batch_size: int) -> None:
        self.table, self.context, self.batch_size = table, context, batch_size

    def plan(self, seed: int, shuffle: bool = True) -> list[torch.Tensor]:
        return list(self.table.minibatches(self.batch_size, seed=seed, shuffle=shuffle))

    def build(self, frame_index: torch.Tensor, device: torch.device) -> dict:
        windows = self.table.context_windows(frame_index, *self.context)
        return {"inputs": windows.to(device, non_blocking=True),
                "targets": self.table.targets[frame_index].to(device, non_blocking=True),
                "frame_index": frame_index.to(device)}

    @staticmethod
    def logits(model: nn.Module, batch: dict) -> torch.Tensor:
        """``(N, S)`` logits; the model runs in window mode (``lengths=None``)."""
        return model(batch["inputs"])


class UtteranceBatcher:
    """Length-sorted batches of whole utterances, shuffled in batch order.

    Args:
        table: all frames (with targets) of the set; utterances are its ``offsets`` slices.
        max_frames: padded frames per batch.
    """

    def __init__(self, table: FrameTable, max_frames: int) -> None:
        self.table, self.max_frames = table, max_frames
        self.lengths = (table.offsets[1:] - table.offsets[:-1]).tolist()

    def plan(self, seed: int, shuffle: bool = True) -> list[list[int]]:
        return batches_by_frames(self.lengths, self.max_frames, shuffle=shuffle, seed=seed)

    def build(self, utt_indices: list[int], device: torch.device) -> dict:
        offsets = self.table.offsets
        spans = [torch.arange(int(offsets[i]), int(offsets[i + 1])) for i in utt_indices]
        lengths = torch.tensor([len(s) for s in spans], dtype=torch.int64)
        feats = nn.utils.rnn.pad_sequence([self.table.feats[s] for s in spans], batch_first=True)
        mask = torch.arange(feats.shape[1])[None, :] < lengths[:, None]  # (B, T), row-major = frame order
        frame_index = torch.cat(spans)
        return {"inputs": (feats.to(device, non_blocking=True), lengths.to(device)),
                "mask": mask.to(device),
                "targets": self.table.targets[frame_index].to(device, non_blocking=True),
                "frame_index": frame_index.to(device)}

    @staticmethod
    def logits(model: nn.Module, batch: dict) -> torch.Tensor:
        """``(N, S)`` logits of the valid frames, in ``frame_index`` order."""
        return model(*batch["inputs"])[batch["mask"]]


def batcher_for(model: nn.Module, frames, batch_size: int, max_frames: int):
    """Frame batches for models with a fixed context window, utterance batches otherwise.

    ``frames`` is a :class:`FrameTable` (``data.loader=memory``) or a
    :class:`~asr_kd.features.frame_stream.FrameStream` (``stream``: see :mod:`asr_kd.training.stream_batches`).
    """
    if not isinstance(frames, FrameTable):
        from asr_kd.training.stream_batches import StreamFrameBatcher, StreamUtteranceBatcher

        if model.context is not None:
            return StreamFrameBatcher(frames, model.context, batch_size)
        return StreamUtteranceBatcher(frames, max_frames)
    if model.context is not None:
        return FrameBatcher(frames, model.context, batch_size)
    return UtteranceBatcher(frames, max_frames)
