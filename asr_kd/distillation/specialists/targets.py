"""A specialist's training frames and targets: its cluster's senones plus one dustbin class.

Hinton et al. (2015, section 5.1): a specialist is trained on data "enriched" in its special
classes, half its examples from its cluster and half sampled at random from the rest, with all
classes it does not care about folded into a single dustbin class. For a cluster of ``K``
senones the targets become ``K + 1`` classes: senone ``cluster[j]`` -> ``j``, every other senone ->
``K`` (the dustbin).

Sampling the other frames changes the class priors the specialist learns: ``n_in`` cluster
frames are kept with ``n_kept`` of the ``n_out`` other frames, so the dustbin is under-represented
by the *oversampling ratio* ``r = n_out / n_kept`` relative to the cluster's senones. A posterior
trained under priors ``pi_train`` is turned into one under the natural priors ``pi`` by
multiplying class ``c`` by ``pi(c) / pi_train(c)`` and renormalising: that factor is
``(n_in + n_kept) / n_frames`` for every cluster senone and ``r`` times it for the dustbin, so
the correction is exactly ``dustbin logit += log r`` (:func:`dustbin_log_correction`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from asr_kd.features.dataset import IGNORE_INDEX


def class_map(cluster: Sequence[int], num_senones: int) -> torch.Tensor:
    """``(S,)`` int64 senone -> specialist class: ``j`` for ``cluster[j]``, ``K`` (dustbin) otherwise."""
    mapping = torch.full((num_senones,), len(cluster), dtype=torch.int64)
    mapping[torch.as_tensor(list(cluster), dtype=torch.int64)] = torch.arange(len(cluster))
    return mapping


@dataclass(frozen=True)
class SampleCounts:
    """Frames of one specialist sample: ``in_cluster`` (all kept), ``others_kept`` of ``others``."""

    in_cluster: int
    others_kept: int
    others: int

    @property
    def oversampling_ratio(self) -> float:
        """``r = others / others_kept``: how much more often cluster frames occur than in the data."""
        return self.others / self.others_kept if self.others_kept else 1.0

    def to_dict(self) -> dict:
        return dict(asdict(self), oversampling_ratio=self.oversampling_ratio)


def specialist_targets(targets: torch.Tensor, cluster: Sequence[int], num_senones: int, other_ratio: float = 1.0,
                       seed: int = 0) -> tuple[torch.Tensor, SampleCounts]:
    """The sample and targets a specialist trains on.

    Args:
        targets: ``(N,)`` int64 aligned senones of all frames (``IGNORE_INDEX`` frames stay out).
        cluster: the specialist's ``K`` senones.
        other_ratio: other frames kept per cluster frame (the paper's 1:1 mix is 1); all of
            them when there are fewer.
        seed: seed of the random choice of other frames.

    Returns:
        ``(N,)`` int64 targets in ``0..K`` (``K`` = dustbin) for the sampled frames and
        ``IGNORE_INDEX`` for the others, and the :class:`SampleCounts`.
    """
    if other_ratio <= 0:
        raise ValueError(f"other_ratio must be positive, got {other_ratio}")
    valid = targets != IGNORE_INDEX
    mapped = torch.full_like(targets, IGNORE_INDEX)
    mapped[valid] = class_map(cluster, num_senones)[targets[valid]]
    dustbin = len(cluster)
    inside = valid & (mapped != dustbin)
    outside = torch.nonzero(valid & (mapped == dustbin)).squeeze(1)
    n_in = int(inside.sum())
    n_kept = min(len(outside), math.ceil(other_ratio * n_in))
    generator = torch.Generator().manual_seed(seed)
    kept = outside[torch.randperm(len(outside), generator=generator)[:n_kept]]
    left_out = torch.ones_like(valid)
    left_out[inside] = False
    left_out[kept] = False
    mapped[left_out] = IGNORE_INDEX
    return mapped, SampleCounts(n_in, n_kept, len(outside))


def dustbin_log_correction(counts: SampleCounts) -> float:
    """``log r``, ``r = others / others_kept`` (the module docstring derives it): added to the dustbin
    logit after training, it restores the data's prior of the dustbin relative to the cluster."""
    return math.log(counts.oversampling_ratio)
