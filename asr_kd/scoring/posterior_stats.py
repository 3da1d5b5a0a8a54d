"""How the posteriors a decoder reads differ beyond their argmax: cross-entropy, entropy, top-k.

Frame accuracy looks at the argmax only; the HMM search reads every senone's score. Two systems
with the same frame accuracy can differ in how much probability the aligned senone gets
(cross-entropy, the quantity Kaldi's ``nnet-compute-prob`` reports beside accuracy), in how
peaked their distributions are (entropy) and in whether the aligned senone is near the top
(top-k accuracy: what survives a beam). Two more views of what the search sees:

* the frame accuracy of the scores the decoder actually adds up, ``log p(s|x) - log p(s)``
  (posteriors divided by the senone priors, prior scale 1): dividing by the prior promotes rare
  senones, so a system whose rare-senone posteriors are noisy loses more here than in plain
  frame accuracy;
* how errors cluster in time: the HMM bridges an isolated wrong frame, but a run of wrong frames
  as long as a phone becomes a wrong word. Reported as error runs per 100 frames and the share of
  frames in runs of at least :data:`LONG_RUN` frames (about a phone at 10 ms per frame);
* the phone the posteriors point at (each senone belongs to one phone of the tree): a wrong
  senone of the right phone (another context or HMM state) costs the search little, a wrong
  phone costs a word. Reported as phone frame accuracy (the argmax senone's phone) and the
  cross-entropy of the aligned phone (its senones' probabilities summed).

Computed from the log-posterior stores that ``asr-kd posteriors`` writes for decoding, so it
costs no forward pass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from asr_kd.alignment.tree import SenoneTree
from asr_kd.features.dataset import check_aligned
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.errors import AsrKdError

#: Ranks reported as top-k frame accuracy.
TOP_K = (1, 5, 20)
#: Misclassified runs at least this long (frames) count as long error runs.
LONG_RUN = 8


def error_runs(wrong: torch.Tensor) -> torch.Tensor:
    """Lengths (frames) of the maximal runs of ``True`` in a ``(T,)`` bool tensor, in time order."""
    if not len(wrong):
        return torch.zeros(0, dtype=torch.long)
    padded = torch.cat([torch.zeros(1, dtype=torch.int8), wrong.to(torch.int8), torch.zeros(1, dtype=torch.int8)])
    edges = torch.diff(padded)
    return torch.nonzero(edges == -1).flatten() - torch.nonzero(edges == 1).flatten()


@dataclass
class PosteriorStats:
    """Sums over frames of ``-log p(aligned senone)``, entropy (nats), max probability, top-k hits;
    with ``log_priors`` (``(S,)``, natural log), also the hits of the prior-divided argmax; with
    ``senone_phones`` (``(S,)`` phone index of each senone), the phone hits of the argmax and
    ``-log p(aligned phone)``; and the error runs of the argmax (counted within each
    :meth:`update`, i.e. within an utterance)."""

    log_priors: torch.Tensor | None = None
    senone_phones: torch.Tensor | None = None
    frames: int = 0
    nll: float = 0.0
    entropy: float = 0.0
    max_prob: float = 0.0
    top_k_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(TOP_K, 0))
    prior_divided_hits: int = 0
    error_run_count: int = 0
    long_run_frames: int = 0
    phone_hits: int = 0
    phone_nll: float = 0.0

    def update(self, log_post: torch.Tensor, target: torch.Tensor) -> None:
        """Accumulate one utterance's ``(T, S)`` log-posteriors against its ``(T,)`` aligned senone ids."""
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
        argmax = log_post.argmax(1)
        runs = error_runs(argmax != target)
        self.error_run_count += len(runs)
        self.long_run_frames += int(runs[runs >= LONG_RUN].sum())
        if self.log_priors is not None:
            self.prior_divided_hits += int(((log_post - self.log_priors.double()).argmax(1) == target).sum())
        if self.senone_phones is not None:
            target_phone = self.senone_phones[target]
            self.phone_hits += int((self.senone_phones[argmax] == target_phone).sum())
            phone_prob = torch.zeros(len(target), int(self.senone_phones.max()) + 1, dtype=prob.dtype)
            phone_prob.index_add_(1, self.senone_phones, prob)
            self.phone_nll -= float(phone_prob.gather(1, target_phone[:, None]).clamp_min(1e-300).log().sum())

    def to_dict(self) -> dict:
        if not self.frames:
            raise AsrKdError("posterior statistics of zero frames")
        return {"frames": self.frames, "cross_entropy": self.nll / self.frames, "entropy": self.entropy / self.frames,
                "mean_max_prob": self.max_prob / self.frames,
                **{f"top{k}_acc": hits / self.frames for k, hits in self.top_k_hits.items()},
                "error_runs_per_100": 100 * self.error_run_count / self.frames,
                "long_error_run_frames": self.long_run_frames / self.frames,
                **({"prior_divided_acc": self.prior_divided_hits / self.frames} if self.log_priors is not None else {}),
                **({"phone_acc": self.phone_hits / self.frames, "phone_cross_entropy": self.phone_nll / self.frames}
                   if self.senone_phones is not None else {})}


def senone_phone_ids(tree: SenoneTree) -> np.ndarray:
    """``(S,)`` int64: the index in ``tree.phones`` of each senone's phone."""
    index = {phone: i for i, phone in enumerate(tree.phones)}
    return np.array([index[tree.senone_info(s)["phone"]] for s in range(tree.num_senones)], dtype=np.int64)


def stored_posterior_stats(scores_dir: str | os.PathLike, senones: ArrayStore,
                           utt_ids: Sequence[str] | None = None, log_priors: np.ndarray | None = None,
                           senone_phones: np.ndarray | None = None) -> dict:
    """:class:`PosteriorStats` of a log-posterior store (``asr-kd posteriors``) against an alignment.

    Args:
        scores_dir: ``(T, S)`` log-posteriors per utterance (float16 or float32).
        senones: the aligned senone ids of the same utterances.
        utt_ids: default: every utterance of the store that has an alignment.
        log_priors: ``(S,)`` senone log-priors (``load_senone_log_priors``): adds ``prior_divided_acc``.
        senone_phones: ``(S,)`` phone index of each senone (:func:`senone_phone_ids`): adds
            ``phone_acc`` and ``phone_cross_entropy``.

    Raises:
        AsrKdError: no common utterance, or an utterance whose frame counts differ.
    """
    store = ArrayStore(scores_dir)
    ids = list(utt_ids) if utt_ids is not None else [u for u in sorted(store.keys()) if u in senones]
    if not ids:
        raise AsrKdError(f"no utterance of {scores_dir} has an alignment in {senones.root}")
    stats = PosteriorStats(log_priors=None if log_priors is None else torch.from_numpy(np.asarray(log_priors)),
                           senone_phones=None if senone_phones is None
                           else torch.from_numpy(np.asarray(senone_phones, dtype=np.int64)))
    for utt_id in ids:
        log_post = torch.from_numpy(store[utt_id].astype("float32"))
        target = torch.from_numpy(senones[utt_id].astype("int64"))
        check_aligned(utt_id, log_post, target, str(senones.root))
        if len(target) and int(target.max()) >= log_post.shape[1]:
            raise AsrKdError(f"{scores_dir}: {log_post.shape[1]} senones per frame, but {senones.root} aligns "
                             f"{utt_id} to senone {int(target.max())}: scores of another tree")
        if log_priors is not None and len(log_priors) != log_post.shape[1]:
            raise AsrKdError(f"{scores_dir}: {log_post.shape[1]} senones per frame, but the priors have "
                             f"{len(log_priors)}: priors of another tree")
        if senone_phones is not None and len(senone_phones) != log_post.shape[1]:
            raise AsrKdError(f"{scores_dir}: {log_post.shape[1]} senones per frame, but the tree has "
                             f"{len(senone_phones)}: scores of another tree")
        stats.update(log_post, target)
    return dict(stats.to_dict(), utterances=len(ids), scores=str(scores_dir))
