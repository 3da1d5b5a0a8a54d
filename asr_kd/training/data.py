"""Data of a training run: which utterances train and validate, their frames and targets, the senone count."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from asr_kd.data.subset import fraction_of_ids
from asr_kd.features.dataset import FeatureSet, FrameTable
from asr_kd.features.frame_stream import FrameCorpus, FrameStream
from asr_kd.training.config import DataConfig, ExperimentConfig
from asr_kd.training.validation import list_digest, read_utt_list
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("training.data")


def aligned_utterances(data: DataConfig, subset: str) -> list[str]:
    """Sorted ids of ``subset`` that have both features and targets (alignment skips some)."""
    features = ArrayStore(data.feats_dir(subset))
    targets = ArrayStore(data.targets_dir(subset))
    ids = sorted(u for u in features if u in targets)
    if not ids:
        raise AsrKdError(f"no utterance of {data.feats_dir(subset)} has targets in {data.targets_dir(subset)}")
    return ids


def training_utterances(data: DataConfig) -> list[str]:
    """The aligned training utterances outside the validation split: all of them, the
    ``train_utts`` list, or a seeded ``train_fraction`` of them (sorted)."""
    held_out = set(held_out_utterances(data))
    if data.train_utts:
        listed = listed_utterances(data, Path(data.train_utts))
        overlap = sorted(held_out.intersection(listed))
        if overlap:
            raise AsrKdError(f"{data.train_utts}: {len(overlap)} listed training utterances are validation "
                             f"utterances of {data.validation_list}, e.g. {overlap[:3]}")
        return listed
    pool = [u for u in aligned_utterances(data, data.train_subset) if u not in held_out]
    return _fraction(pool, data.train_fraction, data.subset_seed, "data.train_fraction")


def listed_utterances(data: DataConfig, path: Path) -> list[str]:
    """The ids listed in ``path``, each checked to have features and targets."""
    listed = read_utt_list(path, "utterance list (data.train_utts)")
    available = set(aligned_utterances(data, data.train_subset))
    missing = [u for u in listed if u not in available]
    if missing:
        raise AsrKdError(f"{path}: {len(missing)} of {len(listed)} listed utterances have no features+targets "
                         f"in {data.train_subset}, e.g. {missing[:3]}")
    return listed


def held_out_utterances(data: DataConfig) -> list[str]:
    """Training-subset utterances excluded from training: the validation list when it is of ``train_subset``."""
    if data.validation_subset != data.train_subset:
        return []
    return _validation_list(data)


def validation_utterances(data: DataConfig) -> list[str]:
    """The validation utterances (of ``data.validation_subset``) that have features and targets, sorted.

    Listed utterances that the aligner skipped are left out (logged); an id the subset does not
    have at all means the list belongs to another subset or experiment, which is an error.
    """
    listed = _validation_list(data)
    features = ArrayStore(data.feats_dir(data.validation_subset))
    targets = ArrayStore(data.targets_dir(data.validation_subset))
    unknown = [u for u in listed if u not in features]
    if unknown:
        raise AsrKdError(f"{data.validation_list}: {len(unknown)} of {len(listed)} validation utterances are not in "
                         f"{data.feats_dir(data.validation_subset)}, e.g. {unknown[:3]} (a list of another subset?)")
    aligned = [u for u in listed if u in targets]
    if len(aligned) < len(listed):
        log.info("validation: %d of %d listed utterances have no alignment and are skipped",
                 len(listed) - len(aligned), len(listed))
    if not aligned:
        raise AsrKdError(f"{data.validation_list}: no validation utterance has targets in "
                         f"{data.targets_dir(data.validation_subset)}")
    return aligned


def validation_metadata(data: DataConfig, utt_ids: list[str], frames: int) -> dict:
    """What a model records about the set it was validated on: subset, list file, count, frames, sha256."""
    return {"subset": data.validation_subset, "held_out_of_training": data.validation_subset == data.train_subset,
            "path": str(data.validation_list), "list_sha256": list_digest(_validation_list(data)),
            "utterances": len(utt_ids), "frames": frames}


def _validation_list(data: DataConfig) -> list[str]:
    path = data.validation_list
    if not path.exists() and not data.valid_utts:
        raise AsrKdError(f"{path}: the experiment has no validation split; write one with `asr-kd valid-split "
                         f"--exp {data.exp} --subset {data.train_subset}` or set data.valid_utts")
    return read_utt_list(path, "validation utterance list (data.valid_utts)")


def _fraction(ids: list[str], fraction: float, seed: int, key: str) -> list[str]:
    try:
        return fraction_of_ids(ids, fraction, seed)
    except AsrKdError:
        raise AsrKdError(f"{key} must be in (0, 1], got {fraction}") from None


def frame_table(data: DataConfig, subset: str, utt_ids: list[str] | None = None) -> FrameTable:
    """All frames of ``subset`` (default: every aligned utterance) with normalised features and targets."""
    ids = utt_ids if utt_ids is not None else aligned_utterances(data, subset)
    features = FeatureSet(data.feats_dir(subset), cmvn_mode=data.cmvn_mode)
    return FrameTable(features, ids, ArrayStore(data.targets_dir(subset)))


#: What the trainer trains on: the in-memory table or this process's frame stream.
TrainingFrames = FrameTable | FrameStream
LOADERS = ("memory", "stream")


def training_frames(data: DataConfig, utt_ids: list[str], rank: int, world_size: int, device: torch.device,
                    num_senones: int, prefetch: bool = True) -> TrainingFrames:
    """The training frames as ``data.loader`` says: a :class:`FrameTable` (every process, all
    frames) or this process's :class:`FrameStream` (its part, chunk by chunk, on ``device``)."""
    if data.loader not in LOADERS:
        raise AsrKdError(f"unknown data.loader {data.loader!r}; choose from {LOADERS}")
    if data.loader == "memory":
        return frame_table(data, data.train_subset, utt_ids)
    features = FeatureSet(data.feats_dir(data.train_subset), cmvn_mode=data.cmvn_mode)
    # int16 holds every senone id of the paper's 14k (and IGNORE_INDEX): 2 bytes per frame, not 4 or 8
    narrow = "int16" if num_senones <= np.iinfo(np.int16).max else None
    corpus = FrameCorpus(features, utt_ids, ArrayStore(data.targets_dir(data.train_subset)), targets_dtype=narrow)
    # the cores of this machine shared by its processes (torchrun: one per GPU), at most 8 readers each
    local_procs = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    threads = max(1, min(8, len(os.sched_getaffinity(0)) // local_procs))
    return FrameStream(corpus, rank, world_size, data.stream_chunk_frames, device, data.stream_dtype, prefetch,
                       read_threads=threads)


def feature_metadata(data: DataConfig, subset: str) -> dict:
    """What a model file must record to recompute identical inputs: fbank config + CMVN mode."""
    meta = ArrayStore(data.feats_dir(subset)).meta
    return {"fbank": meta.get("fbank", {}), "cmvn_mode": data.cmvn_mode}


def resolve_num_senones(config: ExperimentConfig) -> int:
    """``model.num_senones`` if set, else the senone tree's count (``<exp>/tree/tree.json``),
    checked against the senone count the training and dev alignments record."""
    from asr_kd.models.loader import check_targets_fit

    tree_path = config.data.experiment.tree_json
    if config.model.num_senones:
        num_senones, source = int(config.model.num_senones), "model.num_senones"
    elif not tree_path.exists():
        raise AsrKdError(f"{tree_path} does not exist: set model.num_senones or run `asr-kd align` first")
    else:
        from asr_kd.alignment import SenoneTree

        num_senones, source = SenoneTree.load(tree_path).num_senones, str(tree_path)
    for subset in (config.data.train_subset, config.data.validation_subset):
        check_targets_fit(num_senones, f"the model to train ({source})", ArrayStore(config.data.targets_dir(subset)))
    return num_senones
