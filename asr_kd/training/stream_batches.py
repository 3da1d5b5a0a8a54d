"""Batchers over a :class:`~asr_kd.features.frame_stream.FrameStream` (``data.loader=stream``).

The trainer's batcher protocol (:mod:`asr_kd.training.batches`): ``plan(seed)`` is the epoch's
list of batch specs, rank ``r`` of ``W`` builds specs ``r, r + W, ...``, and a resumed run
replays the same plan and skips the specs it finished. Here every rank reads only its own part
of the data, so the plan interleaves the ranks' own batch lists (spec ``i W + r`` is rank
``r``'s batch ``i``) and is cut to the shortest list, so that every rank takes the same number
of optimiser steps (DDP); one process loses nothing. Every rank computes the whole plan from
utterance lengths alone (no frames are read), so all agree on it.

Batches have the keys of :mod:`asr_kd.training.objectives` (``inputs``, ``targets``,
``frame_index`` = global frame index, FrameTable row order) plus ``batch[name]`` for every set
of per-frame arrays attached to the stream (e.g. ``batch["teacher"]``), all on the device.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from asr_kd.features.dataset import batches_by_frames
from asr_kd.features.frame_stream import FrameStream
from asr_kd.utils.errors import AsrKdError


class FrameSpec(NamedTuple):
    """Batch of rank ``rank``: positions ``start:stop`` of the frame order of its chunk ``chunk`` of epoch ``seed``."""

    seed: int
    shuffle: bool
    rank: int
    chunk: int
    start: int
    stop: int


class UtteranceSpec(NamedTuple):
    """Batch of rank ``rank``: whole utterances ``utts`` (corpus indices)."""

    rank: int
    utts: tuple[int, ...]


def interleave(per_rank: list[list]) -> list:
    """``[r0[0], r1[0], ..., r0[1], r1[1], ...]`` cut to the shortest rank's list."""
    steps = min(len(p) for p in per_rank)
    return [p[i] for i in range(steps) for p in per_rank]


def _check_rank(stream: FrameStream, rank: int) -> None:
    if rank != stream.rank:
        raise AsrKdError(f"batch of rank {rank} built by rank {stream.rank}: rank r builds plan[r::world_size]")


def _decoded(stream: FrameStream, arrays: dict[str, dict[str, torch.Tensor]]) -> dict:
    """``{name: decode(tensors)}`` for the attached per-frame arrays of a batch (already on its device)."""
    out = {}
    for name, tensors in arrays.items():
        decode = stream.corpus.extras[name].decode
        out[name] = decode(tensors) if decode is not None else tensors
    return out


class StreamFrameBatcher:
    """Shuffled frames with ``(N, left + 1 + right, D)`` context windows, chunk by chunk.

    Args:
        stream: this rank's frame stream (chunks live on the training device).
        context: ``(left, right)`` frames of the model's window.
        batch_size: frames per minibatch (a chunk's last batch may be smaller).
    """

    def __init__(self, stream: FrameStream, context: tuple[int, int], batch_size: int) -> None:
        self.stream, self.context, self.batch_size = stream, context, batch_size

    def plan(self, seed: int, shuffle: bool = True) -> list[FrameSpec]:
        per_rank = [[FrameSpec(seed, shuffle, rank, c, start, min(start + self.batch_size, n))
                     for c, n in enumerate(self.stream.chunk_sizes(seed, rank, shuffle))
                     for start in range(0, n, self.batch_size)]
                    for rank in range(self.stream.world_size)]
        return interleave(per_rank)

    def build(self, spec: FrameSpec, device: torch.device) -> dict:
        _check_rank(self.stream, spec.rank)
        chunk, order = self.stream.chunk(spec.seed, spec.chunk, spec.shuffle)
        local = order[spec.start:spec.stop]
        targets, extras = chunk.take(local)
        batch = _to({"inputs": chunk.context_windows(local, *self.context), "targets": targets,
                     "frame_index": chunk.frame_index(local)}, device)
        batch.update(_decoded(self.stream, _to(extras, device)))
        return batch

    @staticmethod
    def logits(model: nn.Module, batch: dict) -> torch.Tensor:
        """``(N, S)`` logits; the model runs in window mode (``lengths=None``)."""
        return model(batch["inputs"])


class StreamUtteranceBatcher:
    """Length-sorted batches of whole utterances of this rank's part, read from the stores per batch.

    Args:
        stream: this rank's frame stream (only its corpus and part are used: no chunks).
        max_frames: padded frames per batch.
    """

    def __init__(self, stream: FrameStream, max_frames: int) -> None:
        self.stream, self.max_frames = stream, max_frames

    def plan(self, seed: int, shuffle: bool = True) -> list[UtteranceSpec]:
        per_rank = []
        for rank, part in enumerate(self.stream.parts):
            batches = batches_by_frames(self.stream.corpus.lengths[part], self.max_frames, shuffle=shuffle, seed=seed)
            per_rank.append([UtteranceSpec(rank, tuple(int(part[i]) for i in b)) for b in batches])
        return interleave(per_rank)

    def build(self, spec: UtteranceSpec, device: torch.device) -> dict:
        _check_rank(self.stream, spec.rank)
        corpus = self.stream.corpus
        read = [corpus.read(u) for u in spec.utts]
        lengths = torch.tensor([len(f) for f, _, _ in read], dtype=torch.int64)
        feats = nn.utils.rnn.pad_sequence([torch.from_numpy(f) for f, _, _ in read], batch_first=True)
        mask = torch.arange(feats.shape[1])[None, :] < lengths[:, None]  # (B, T), row-major = frame order
        frame_index = torch.cat([int(corpus.offsets[u]) + torch.arange(n) for u, n in zip(spec.utts, lengths.tolist())])
        batch = {"inputs": (feats, lengths), "mask": mask, "frame_index": frame_index}
        if corpus.targets is not None:
            batch["targets"] = torch.from_numpy(np.concatenate([t for _, t, _ in read]).astype(np.int64))
        extras = {name: {key: torch.from_numpy(np.concatenate([e[name][key] for _, _, e in read]))
                         for key in corpus.extras[name].stores} for name in corpus.extras}
        batch = _to(batch, device)
        batch.update(_decoded(self.stream, _to(extras, device)))
        return batch

    @staticmethod
    def logits(model: nn.Module, batch: dict) -> torch.Tensor:
        """``(N, S)`` logits of the valid frames, in ``frame_index`` order."""
        return model(*batch["inputs"])[batch["mask"]]


def _to(value, device: torch.device):
    """``value`` (tensors in plain dicts / tuples) on ``device``; a no-op for tensors already there."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_to(v, device) for v in value)
    return value
