"""How the posteriors a decoder reads differ beyond their argmax: cross-entropy, entropy, top-k.

Frame accuracy looks at the argmax only; the HMM search reads every senone's score. Two systems
with the same frame accuracy can differ in how much probability the aligned senone gets
(cross-entropy, the quantity Kaldi's ``nnet-compute-prob`` reports beside accuracy), in how
peaked their distributions are (entropy) and in whether the aligned senone is near the top
(top-k accuracy: what survives a beam). Computed from the log-posterior stores that
``asr-kd posteriors`` writes for decoding, so it costs no forward pass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from asr_kd.features.dataset import check_aligned
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.errors import AsrKdError

#: Ranks reported as top-k frame accuracy.
TOP_K = (1, 5, 20)


@dataclass
class PosteriorStats:
    """Sums over frames of ``-log p(aligned senone)``, entropy (nats), max probability, top-k hits."""

    frames: int = 0
    nll: float = 0.0
    entropy: float = 0.0
    max_prob: float = 0.0
    top_k_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(TOP_K, 0))

    def update(self, log_post: torch.Tensor, target: torch.Tensor) -> None:
        """Accumulate ``(T, S)`` log-posteriors against ``(T,)`` aligned senone ids."""
        log_post = log_post.double()
        prob = log_post.exp()
        self.frames += len(target)
        self.nll -= float(log_post.gather(1, target[:, None]).sum())
        self.entropy -= float(torch.where(prob > 0, prob * log_post, 0.0).sum())
        self.max_prob += float(prob.max(1).values.sum())
        # rank of the aligned senone: how many senones score strictly higher
        rank = (log_post > log_post.gather(1, target[:, None])).sum(1)
        for k in self.top_k_hits:
            self.top_k_hits[k] += int((rank < k).sum())

    def to_dict(self) -> dict:
        if not self.frames:
            raise AsrKdError("posterior statistics of zero frames")
        return {"frames": self.frames, "cross_entropy": self.nll / self.frames, "entropy": self.entropy / self.frames,
                "mean_max_prob": self.max_prob / self.frames,
                **{f"top{k}_acc": hits / self.frames for k, hits in self.top_k_hits.items()}}


def stored_posterior_stats(scores_dir: str | os.PathLike, senones: ArrayStore,
                           utt_ids: Sequence[str] | None = None) -> dict:
    """:class:`PosteriorStats` of a log-posterior store (``asr-kd posteriors``) against an alignment.

    Args:
        scores_dir: ``(T, S)`` log-posteriors per utterance (float16 or float32).
        senones: the aligned senone ids of the same utterances.
        utt_ids: default: every utterance of the store that has an alignment.

    Raises:
        AsrKdError: no common utterance, or an utterance whose frame counts differ.
    """
    store = ArrayStore(scores_dir)
    ids = list(utt_ids) if utt_ids is not None else [u for u in sorted(store.keys()) if u in senones]
    if not ids:
        raise AsrKdError(f"no utterance of {scores_dir} has an alignment in {senones.root}")
    stats = PosteriorStats()
    for utt_id in ids:
        log_post = torch.from_numpy(store[utt_id].astype("float32"))
        target = torch.from_numpy(senones[utt_id].astype("int64"))
        check_aligned(utt_id, log_post, target, str(senones.root))
        if len(target) and int(target.max()) >= log_post.shape[1]:
            raise AsrKdError(f"{scores_dir}: {log_post.shape[1]} senones per frame, but {senones.root} aligns "
                             f"{utt_id} to senone {int(target.max())}: scores of another tree")
        stats.update(log_post, target)
    return dict(stats.to_dict(), utterances=len(ids), scores=str(scores_dir))
