"""Dump per-utterance senone log-posteriors of a model or ensemble into an ArrayStore (for the decoder)."""

from __future__ import annotations

import hashlib
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
                         utt_ids: Sequence[str] | None = None, model_digest: str | None = None) -> tuple[int, int]:
    """Write ``(T, num_senones)`` log-posteriors of ``utt_ids`` (default: every utterance of ``features``)
    to ``out_dir``.

    Shards that are already complete are skipped (resumable). With ``model_digest`` (e.g.
    :meth:`~asr_kd.models.LoadedModel.digest`) each shard records it with its utterance ids, and
    a shard made by another model (retrained at the same path) or of other utterances is redone
    instead of skipped: decoding it would score the old model with exit code 0. Returns
    ``(shards written, skipped)``.
    """
    utt_ids = list(features.utt_ids() if utt_ids is None else utt_ids)
    meta = {"kind": "log_posteriors", "num_senones": int(metadata["num_senones"]), "temperature": temperature,
            "arch": metadata.get("arch"), "feature": metadata.get("feature")}
    writer = ArrayStoreWriter(out_dir, np.dtype(dtype), (int(metadata["num_senones"]),), meta)
    written = skipped = 0
    for shard_id, start in enumerate(range(0, len(utt_ids), utts_per_shard)):
        ids = utt_ids[start:start + utts_per_shard]
        source = None if model_digest is None else shard_source(model_digest, ids)
        if writer.shard_done(shard_id, source):
            skipped += 1
            continue
        posts = dict(utterance_log_posteriors(model, features, ids, device, max_frames, temperature))
        writer.write_shard(shard_id, ((u, posts[u].numpy()) for u in ids), source)
        written += 1
    return written, skipped



def shard_source(model_digest: str, utt_ids: Sequence[str]) -> str:
    """What one posterior shard is made from: the model (its digest) and its utterances, in order."""
    return hashlib.sha256("\n".join([model_digest, *utt_ids]).encode()).hexdigest()
