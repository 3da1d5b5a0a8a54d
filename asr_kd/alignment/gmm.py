"""Diagonal-covariance Gaussian mixtures, one per senone, trained from hard (Viterbi) alignments.

Why GMMs rather than a small bootstrapped network: flat-start alignment needs a model that
can be trained from a crude equal-length segmentation and sharpened over a few
align/re-estimate rounds; GMM re-estimation from an alignment is closed-form (one pass over the
frames, no learning rate, no epochs), deterministic, and costs seconds on 2 CPU cores, while a
network would need several epochs per round. The decision tree's likelihood-gain splitting
needs single-Gaussian statistics anyway, and Kaldi/HTK/MFA show that triphone GMMs on
cepstra + deltas give word boundaries within tens of milliseconds, which is all the DNN
targets need (the DNN itself is the better acoustic model, trained on these alignments).

Components of all senones are stored flat, grouped by senone (``owner`` is non-decreasing), so
that the log-likelihoods of all components an utterance needs are one matrix product
``[x, x^2] @ W``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from asr_kd.utils.atomic import write_with
from asr_kd.utils.errors import AsrKdError

LOG_2PI = float(np.log(2 * np.pi))
#: Kaldi's defaults: split mixtures towards ``count ** power``, perturb means by 0.2 std.
MIXTURE_POWER = 0.2
SPLIT_PERTURB = 0.2
#: A Gaussian needs this many frames (it is dropped, or not created, below that).
MIN_FRAMES_PER_GAUSSIAN = 20


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` through torch, whose thread count :func:`single_threaded` controls.

    The aligner's products are small (one senone's frames, one utterance); multi-threaded BLAS
    only adds synchronisation: numpy's OpenBLAS took 30 s of CPU instead of 0.5 s for one EM
    pass over 1M frames on the loaded 2-core machine, and we cannot limit its threads at run time.
    """
    return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(np.ascontiguousarray(b))).numpy()


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with one torch thread (parallelism comes from alignment worker processes)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class DiagGmms:
    """One diagonal GMM per senone.

    Args:
        means, variances: ``(G, D)`` float64 of all components.
        weights: ``(G,)`` mixture weights (sum to 1 within a senone).
        owner: ``(G,)`` senone of each component, non-decreasing; every senone owns >= 1.
    """

    def __init__(self, means: np.ndarray, variances: np.ndarray, weights: np.ndarray, owner: np.ndarray) -> None:
        self.means = np.asarray(means, dtype=np.float64)
        self.variances = np.asarray(variances, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.owner = np.asarray(owner, dtype=np.int64)
        if np.any(np.diff(self.owner) < 0):
            raise ValueError("components must be grouped by senone")
        self.num_senones = int(self.owner[-1]) + 1
        self.counts = np.bincount(self.owner, minlength=self.num_senones)
        if np.any(self.counts == 0):
            raise ValueError("every senone needs at least one Gaussian")
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        inv_var = 1.0 / self.variances
        # Rows: x-terms then x^2-terms, so that loglik = [x, x^2] @ W + bias.
        self._w = np.concatenate([self.means * inv_var, -0.5 * inv_var], axis=1).T.astype(np.float32)
        self._bias = (np.log(self.weights) - 0.5 * (self.dim * LOG_2PI + np.log(self.variances).sum(1)
                      + (self.means**2 * inv_var).sum(1))).astype(np.float32)

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @property
    def num_gaussians(self) -> int:
        return int(len(self.owner))

    def components(self, senones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Component indices of ``senones`` (concatenated) and the count per senone."""
        counts = self.counts[senones]
        first = np.repeat(self.starts[senones] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        return first + np.arange(counts.sum()), counts

    def loglik(self, feats: np.ndarray, senones: np.ndarray) -> np.ndarray:
        """Log-likelihoods ``(T, U)`` float32 of ``(T, D)`` frames under the ``(U,)`` senones' GMMs."""
        comps, counts = self.components(np.asarray(senones))
        x = np.asarray(feats, dtype=np.float32)
        ll = matmul(np.concatenate([x, x * x], axis=1), self._w[:, comps])
        ll += self._bias[comps]
        group = np.concatenate([[0], np.cumsum(counts)[:-1]])
        peak = np.maximum.reduceat(ll, group, axis=1)
        total = np.add.reduceat(np.exp(ll - np.repeat(peak, counts, axis=1)), group, axis=1)
        return peak + np.log(total)

    # -- training ----------------------------------------------------------------------------

    @classmethod
    def single_gaussians(cls, frames: np.ndarray, labels: np.ndarray, num_senones: int,
                         var_floor: np.ndarray) -> DiagGmms:
        """One Gaussian per senone from labelled ``(N, D)`` frames; unseen senones get the global one."""
        count, total, sumsq = gaussian_stats(frames, labels, num_senones)
        glob_mean = frames.mean(0)
        glob_var = np.maximum(frames.var(0), var_floor)
        seen = count > 0
        means = np.where(seen[:, None], total / np.maximum(count, 1)[:, None], glob_mean)
        variances = np.where(seen[:, None], sumsq / np.maximum(count, 1)[:, None] - means**2, glob_var)
        return cls(means, np.maximum(variances, var_floor), np.ones(num_senones), np.arange(num_senones))

    def reestimate(self, frames: np.ndarray, labels: np.ndarray, var_floor: np.ndarray) -> DiagGmms:
        """One EM step per senone on its labelled ``(N, D)`` frames (senones without frames unchanged).

        Gaussians with fewer than :data:`MIN_FRAMES_PER_GAUSSIAN` frames of occupancy are removed.
        """
        frames = np.asarray(frames, dtype=np.float64)
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(self.num_senones + 1))
        means, variances, weights, owner = [], [], [], []
        for s in range(self.num_senones):
            lo, hi = self.starts[s], self.starts[s] + self.counts[s]
            x = frames[order[bounds[s] : bounds[s + 1]]]
            if len(x) == 0:
                mu, var, w = self.means[lo:hi], self.variances[lo:hi], self.weights[lo:hi]
            elif hi - lo == 1:
                mu, var, w = x.mean(0, keepdims=True), x.var(0, keepdims=True), np.ones(1)
            else:
                mu, var, w = self._em_step(x, s)
            means.append(mu)
            variances.append(np.maximum(var, var_floor))
            weights.append(w)
            owner.append(np.full(len(w), s))
        return DiagGmms(np.concatenate(means), np.concatenate(variances), np.concatenate(weights),
                        np.concatenate(owner))

    def _em_step(self, x: np.ndarray, senone: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        post = self._posteriors(x, senone)
        occ = post.sum(0)
        keep = occ >= MIN_FRAMES_PER_GAUSSIAN
        if not keep.any():
            keep = occ == occ.max()
        post, occ = post[:, keep], occ[keep]
        mu = matmul(post.T, x) / occ[:, None]
        var = matmul(post.T, x * x) / occ[:, None] - mu**2
        return mu, var, occ / occ.sum()

    def _posteriors(self, x: np.ndarray, senone: int) -> np.ndarray:
        lo, hi = self.starts[senone], self.starts[senone] + self.counts[senone]
        ll = matmul(np.concatenate([x, x * x], axis=1), self._w[:, lo:hi].astype(np.float64)) + self._bias[lo:hi]
        ll -= ll.max(1, keepdims=True)
        post = np.exp(ll)
        return post / post.sum(1, keepdims=True)

    def split(self, target_gaussians: int, frame_counts: np.ndarray) -> DiagGmms:
        """Split heaviest components until each senone has its share of ``target_gaussians``.

        Shares follow Kaldi: proportional to ``frame_count ** 0.2``, at most one Gaussian per
        :data:`MIN_FRAMES_PER_GAUSSIAN` frames, never fewer than a senone already has.
        """
        share = np.power(np.maximum(frame_counts, 1), MIXTURE_POWER).astype(np.float64)
        target = np.floor(target_gaussians * share / share.sum() + 0.5).astype(np.int64)
        target = np.minimum(target, frame_counts // MIN_FRAMES_PER_GAUSSIAN)
        target = np.maximum(target, self.counts)
        means, variances, weights, owner = [], [], [], []
        for s in range(self.num_senones):
            lo, hi = self.starts[s], self.starts[s] + self.counts[s]
            mu, var, w = list(self.means[lo:hi]), list(self.variances[lo:hi]), list(self.weights[lo:hi])
            while len(w) < target[s]:
                i = int(np.argmax(w))
                offset = SPLIT_PERTURB * np.sqrt(var[i])
                mu.append(mu[i] + offset)
                mu[i] = mu[i] - offset
                var.append(var[i])
                w[i] /= 2
                w.append(w[i])
            means.extend(mu)
            variances.extend(var)
            weights.extend(w)
            owner.extend([s] * len(w))
        return DiagGmms(np.array(means), np.array(variances), np.array(weights), np.array(owner))

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, **extra: np.ndarray) -> None:
        """Atomically write an ``.npz`` (``extra`` arrays, e.g. the variance floor, go along)."""
        arrays = {"means": self.means, "variances": self.variances, "weights": self.weights, "owner": self.owner}
        write_with(path, lambda tmp: np.savez(tmp, **arrays, **extra), suffix=".npz")

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple[DiagGmms, dict[str, np.ndarray]]:
        """The GMMs and any extra arrays saved with them."""
        path = Path(path)
        if not path.exists():
            raise AsrKdError(f"{path}: acoustic model is missing (run `asr-kd tree`)")
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        try:
            gmms = cls(arrays.pop("means"), arrays.pop("variances"), arrays.pop("weights"), arrays.pop("owner"))
        except (KeyError, ValueError) as err:
            raise AsrKdError(f"{path}: malformed acoustic model ({err})") from None
        return gmms, arrays


def gaussian_stats(frames: np.ndarray, labels: np.ndarray, num_groups: int) -> tuple[np.ndarray, ...]:
    """Per-group frame count ``(K,)``, sum ``(K, D)`` and sum of squares ``(K, D)``, float64.

    ``labels`` ``(N,)`` assigns each of the ``(N, D)`` frames to a group in ``0..K-1``.
    """
    frames = np.asarray(frames, dtype=np.float64)
    count = np.bincount(labels, minlength=num_groups)
    order = np.argsort(labels, kind="stable")
    x = frames[order]
    nonempty = np.flatnonzero(count)
    starts = np.concatenate([[0], np.cumsum(count)])[nonempty]
    total = np.zeros((num_groups, frames.shape[1]))
    sumsq = np.zeros_like(total)
    if len(nonempty):
        total[nonempty] = np.add.reduceat(x, starts, axis=0)
        sumsq[nonempty] = np.add.reduceat(x * x, starts, axis=0)
    return count.astype(np.float64), total, sumsq
