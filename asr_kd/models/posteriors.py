"""Dump per-utterance senone log-posteriors of a model or ensemble into an ArrayStore (for the decoder)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from asr_kd.features.dataset import FeatureSet
from asr_kd.models.inference import utterance_log_posteriors
from asr_kd.utils.array_store import ArrayStoreWriter


def write_log_posteriors(model: nn.Module, metadata: dict, features: FeatureSet, out_dir: str | os.PathLike,
                         dtype: str = "float16", temperature: float = 1.0, utts_per_shard: int = 100,
                         device: str | torch.device = "cpu", max_frames: int = 20000,
                         utt_ids: Sequence[str] | None = None) -> tuple[int, int]:
    """Write ``(T, num_senones)`` log-posteriors of ``utt_ids`` (default: every utterance of ``features``)
    to ``out_dir``.

    Shards that are already complete are skipped (resumable). Returns ``(shards written, skipped)``.
    """
    utt_ids = list(features.utt_ids() if utt_ids is None else utt_ids)
    meta = {"kind": "log_posteriors", "num_senones": int(metadata["num_senones"]), "temperature": temperature,
            "arch": metadata.get("arch"), "feature": metadata.get("feature")}
    writer = ArrayStoreWriter(out_dir, np.dtype(dtype), (int(metadata["num_senones"]),), meta)
    written = skipped = 0
    for shard_id, start in enumerate(range(0, len(utt_ids), utts_per_shard)):
        if writer.shard_done(shard_id):
            skipped += 1
            continue
        ids = utt_ids[start:start + utts_per_shard]
        posts = dict(utterance_log_posteriors(model, features, ids, device, max_frames, temperature))
        writer.write_shard(shard_id, ((u, posts[u].numpy()) for u in ids))
        written += 1
    return written, skipped

