"""One specialist as a :class:`~asr_kd.training.tasks.FrameTask` of the standard trainer.

The trainer (:func:`asr_kd.training.trainer.run`) does the training, validation, early
stopping and checkpoints as for any model; this task only relabels its frames
(:func:`~.targets.specialist_targets`: the cluster's frames + as many random others, targets
``0..K``) and initialises the network from the generalist (:func:`~.model.initialise_from_generalist`).
The validation frames (held out of training) are sampled the same way, with their own seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from asr_kd.distillation.specialists.model import initialise_from_generalist
from asr_kd.distillation.specialists.targets import SampleCounts, dustbin_log_correction, specialist_targets
from asr_kd.features.dataset import FrameTable
from asr_kd.utils.errors import AsrKdError

SPLIT_SEED_OFFSET = {"train": 0, "valid": 1}


class SpecialistTask:
    """Specialist ``index`` of cluster ``cluster`` (``K`` senones of the generalist's ``S``).

    Args:
        generalist: the trained generalist (its weights initialise the specialist).
        cluster: the specialist's senones.
        index: which specialist (recorded, and part of the sampling seed).
        other_ratio: random other frames per cluster frame (1 = the paper's 1:1 mix).
        seed: sampling seed (the specialist ``index`` is mixed in).
    """

    def __init__(self, generalist: nn.Module, cluster: Sequence[int], index: int = 0, other_ratio: float = 1.0,
                 seed: int = 0) -> None:
        self.generalist, self.cluster, self.index = generalist, tuple(int(s) for s in cluster), index
        self.other_ratio, self.seed = other_ratio, seed
        self.num_senones = int(generalist.num_senones)
        self.num_classes = len(self.cluster) + 1
        self.counts: dict[str, SampleCounts] = {}

    def select(self, table: FrameTable, split: str) -> FrameTable:
        if table.max_target() >= self.num_senones:
            raise AsrKdError(f"{split} targets hold senone {table.max_target()}, but the generalist has "
                             f"{self.num_senones}: they come from different trees")
        seed = (self.seed * 1_000_003 + self.index) * 2 + SPLIT_SEED_OFFSET[split]
        targets, counts = specialist_targets(table.targets, self.cluster, self.num_senones, self.other_ratio, seed)
        if counts.in_cluster == 0:
            raise AsrKdError(f"specialist {self.index}: no {split} frame is aligned to a senone of its cluster "
                             f"{list(self.cluster)[:8]}...: nothing to train or validate on")
        self.counts[split] = counts
        return table.relabelled(targets)

    def initialise(self, net: nn.Module) -> None:
        initialise_from_generalist(net, self.generalist, self.cluster)

    def dustbin_log_correction(self) -> float:
        """``log r`` of the training sample (:func:`~.targets.dustbin_log_correction`); after :meth:`select`."""
        return dustbin_log_correction(self.counts["train"])

    def metadata(self) -> dict[str, Any]:
        return {"kind": "specialist", "index": self.index, "cluster": list(self.cluster),
                "num_senones": self.num_senones, "other_ratio": self.other_ratio, "seed": self.seed,
                "samples": {split: c.to_dict() for split, c in self.counts.items()}}
