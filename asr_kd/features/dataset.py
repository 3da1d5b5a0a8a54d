"""Feature datasets for the model stages.

Two views of the same stored features:

* :class:`UtteranceDataset` + :func:`collate_utterances`: whole utterances, padded batches
  ``{"feats": (B, T, D), "lengths": (B,), "targets": (B, T)}`` for sequence models
  (conformer) and for whole-utterance DNN evaluation.
* :class:`FrameTable`: every frame of a set in memory with utterance boundaries, from which
  random minibatches of frames with context windows ``(B, left + 1 + right, D)`` are gathered
  with one vectorised index (the way hybrid DNNs are trained: frames shuffled globally).
  184 bytes per frame at D = 40, in every process; :mod:`asr_kd.features.frame_stream` serves
  the same frames chunk by chunk for sets that do not fit.

Targets are any :class:`~asr_kd.utils.array_store.ArrayStore` of ``(T,)`` integer arrays
aligned with the features (senone ids from ``asr-kd align``); padding uses
:data:`IGNORE_INDEX`, which ``torch.nn.functional.cross_entropy`` skips.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from asr_kd.features.cmvn import Cmvn
from asr_kd.features.extract import CMVN_FILE, read_utt2spk
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.errors import AsrKdError

IGNORE_INDEX = -100


class FeatureSet:
    """A feature directory opened for reading: store + speakers + CMVN, normalised access.

    Args:
        feature_dir: written by ``asr-kd features``.
        cmvn_mode: ``"speaker"``, ``"global"`` or ``"none"`` (see :class:`~asr_kd.features.cmvn.Cmvn`).
        cmvn: statistics to use instead of the directory's own (e.g. a model's training stats).
    """

    def __init__(self, feature_dir: str | os.PathLike, cmvn_mode: str = "speaker", cmvn: Cmvn | None = None) -> None:
        self.dir = Path(feature_dir)
        self.store = ArrayStore(self.dir)
        self.utt2spk = read_utt2spk(self.dir)
        self.cmvn = cmvn if cmvn is not None else Cmvn.load(self.dir / CMVN_FILE)
        self.cmvn_mode = cmvn_mode

    @property
    def dim(self) -> int:
        return int(self.store.trailing_shape[0])

    def utt_ids(self) -> list[str]:
        return sorted(self.store.keys())

    def __getitem__(self, utt_id: str) -> np.ndarray:
        """Normalised ``(T, D)`` float32 features of one utterance."""
        return self.cmvn.normalize(self.store[utt_id], self.utt2spk.get(utt_id), self.cmvn_mode)


def check_aligned(utt_id: str, feats: np.ndarray, targets: np.ndarray, source: str) -> None:
    """Raise if ``targets`` do not have one entry per feature frame."""
    if len(targets) != len(feats):
        raise AsrKdError(
            f"{utt_id}: {len(feats)} feature frames but {len(targets)} targets in {source} "
            "(features and alignment come from different runs?)"
        )


class UtteranceDataset(Dataset):
    """Utterances as dicts ``{"utt_id", "feats": (T, D) float32, "targets": (T,) int64}``.

    ``targets`` is omitted when no target store is given.
    """

    def __init__(self, features: FeatureSet, utt_ids: Sequence[str] | None = None,
                 targets: ArrayStore | None = None) -> None:
        self.features = features
        self.targets = targets
        ids = list(utt_ids) if utt_ids is not None else features.utt_ids()
        if targets is not None:
            missing = [u for u in ids if u not in targets]
            if missing:
                raise AsrKdError(f"{len(missing)} utterances have no targets in {targets.root}, e.g. {missing[:3]}")
        self.utt_ids = ids

    def __len__(self) -> int:
        return len(self.utt_ids)

    def __getitem__(self, index: int) -> dict:
        utt_id = self.utt_ids[index]
        item = {"utt_id": utt_id, "feats": torch.from_numpy(self.features[utt_id])}
        if self.targets is not None:
            targets = np.asarray(self.targets[utt_id], dtype=np.int64)
            check_aligned(utt_id, item["feats"], targets, str(self.targets.root))
            item["targets"] = torch.from_numpy(targets)
        return item


def collate_utterances(batch: list[dict]) -> dict:
    """Pad a list of :class:`UtteranceDataset` items.

    Returns:
        ``utt_ids`` (list of B), ``feats`` ``(B, T_max, D)`` zero-padded, ``lengths`` ``(B,)``
        int64 frames, and ``targets`` ``(B, T_max)`` int64 padded with :data:`IGNORE_INDEX`.
    """
    lengths = torch.tensor([len(item["feats"]) for item in batch], dtype=torch.int64)
    feats = torch.nn.utils.rnn.pad_sequence([item["feats"] for item in batch], batch_first=True)
    out = {"utt_ids": [item["utt_id"] for item in batch], "feats": feats, "lengths": lengths}
    if "targets" in batch[0]:
        out["targets"] = torch.nn.utils.rnn.pad_sequence(
            [item["targets"] for item in batch], batch_first=True, padding_value=IGNORE_INDEX
        )
    return out


def batches_by_frames(lengths: Sequence[int], max_frames: int, shuffle: bool = False,
                      seed: int = 0) -> list[list[int]]:
    """Group utterance indices into batches of at most ``max_frames`` padded frames.

    Utterances are sorted by length first so padding stays small; with ``shuffle`` the batch
    order (not the grouping) is permuted with ``seed``.
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches, current, longest = [], [], 0
    for i in order:
        longest_if_added = max(longest, int(lengths[i]))
        if current and longest_if_added * (len(current) + 1) > max_frames:
            batches.append(current)
            current, longest_if_added = [], int(lengths[i])
        current.append(int(i))
        longest = longest_if_added
    if current:
        batches.append(current)
    if shuffle:
        perm = np.random.default_rng(seed).permutation(len(batches))
        batches = [batches[i] for i in perm]
    return batches


class FrameTable:
    """All frames of a set of utterances in memory, for frame-level minibatches with context.

    Attributes:
        feats: ``(N, D)`` float32 normalised features of all utterances, concatenated.
        targets: ``(N,)`` int64 targets (or ``None``).
        utt_start, utt_end: ``(N,)`` int64, first and one-past-last frame of each frame's
            utterance (context windows are clamped to them: edge frames are repeated).
        utt_ids, offsets: utterance order and first frame (``offsets[i]`` .. ``offsets[i+1]``).
        selected: ``(n,)`` int64 indices of the frames :meth:`minibatches` draws, or ``None`` for
            all of them (a :meth:`relabelled` table leaves out the frames it gives no target).
    """

    def __init__(self, features: FeatureSet, utt_ids: Sequence[str] | None = None,
                 targets: ArrayStore | None = None) -> None:
        ids = list(utt_ids) if utt_ids is not None else features.utt_ids()
        feats, tgts, lengths = [], [], []
        for utt_id in ids:
            f = features[utt_id]
            feats.append(f)
            lengths.append(len(f))
            if targets is not None:
                t = np.asarray(targets[utt_id], dtype=np.int64)
                check_aligned(utt_id, f, t, str(targets.root))
                tgts.append(t)
        self.utt_ids = ids
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.feats = torch.from_numpy(np.concatenate(feats))
        self.targets = torch.from_numpy(np.concatenate(tgts)) if targets is not None else None
        lengths_t = torch.as_tensor(lengths, dtype=torch.int64)
        starts = torch.from_numpy(self.offsets[:-1])
        self.utt_start = torch.repeat_interleave(starts, lengths_t)
        self.utt_end = torch.repeat_interleave(starts + lengths_t, lengths_t)
        self.selected: torch.Tensor | None = None

    def relabelled(self, targets: torch.Tensor) -> FrameTable:
        """The same frames (features shared, not copied) with other targets.

        Args:
            targets: ``(N,)`` int64, one per frame of this table; frames given :data:`IGNORE_INDEX`
                are left out of :meth:`minibatches` (and of every loss), e.g. the frames a
                specialist does not train on (:mod:`asr_kd.distillation.specialists`).
        """
        if tuple(targets.shape) != (len(self),):
            raise ValueError(f"relabelled: expected ({len(self)},) targets, got {tuple(targets.shape)}")
        view = copy.copy(self)
        view.targets = targets.to(torch.int64)
        kept = view.targets != IGNORE_INDEX
        view.selected = None if bool(kept.all()) else torch.nonzero(kept).squeeze(1)
        return view

    def __len__(self) -> int:
        return len(self.feats)

    @property
    def dim(self) -> int:
        return int(self.feats.shape[1])

    def max_target(self) -> int:
        if self.targets is None:
            raise AsrKdError("frame table has no targets")
        return int(self.targets.max())

    def context_windows(self, frame_index: torch.Tensor, left: int, right: int) -> torch.Tensor:
        """Gather ``(B, left + 1 + right, D)`` windows centred on ``frame_index`` ``(B,)``."""
        offsets = torch.arange(-left, right + 1, dtype=torch.int64)
        idx = frame_index[:, None] + offsets[None, :]
        idx = torch.maximum(idx, self.utt_start[frame_index, None])
        idx = torch.minimum(idx, self.utt_end[frame_index, None] - 1)
        return self.feats[idx]

    def minibatches(self, batch_size: int, seed: int, shuffle: bool = True):
        """Yield frame index tensors ``(B,)`` covering every (selected) frame once (last batch smaller)."""
        n = len(self) if self.selected is None else len(self.selected)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)
        if self.selected is not None:
            order = self.selected[order]
        yield from order.split(batch_size)
