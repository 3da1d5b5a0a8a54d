"""Frame tasks: training on a relabelled part of the frames instead of "every frame -> its senone".

The trainer normally learns the aligned senone of every training frame. A :class:`FrameTask`
passed to :func:`asr_kd.training.trainer.run` changes three things and nothing else (the loop,
schedule, validation, checkpoints and exact resume stay the trainer's):

* the classes: the model gets ``num_classes`` outputs instead of the tree's senone count;
* the frames and their targets: :meth:`FrameTask.select` returns the training and validation
  tables relabelled (:meth:`~asr_kd.features.dataset.FrameTable.relabelled`), frames left out
  carrying :data:`~asr_kd.features.dataset.IGNORE_INDEX`;
* the initial weights: :meth:`FrameTask.initialise` runs on the freshly built network (before a
  checkpoint is restored on ``--resume``, which overwrites them).

A specialist of :mod:`asr_kd.distillation.specialists` is such a task: its cluster's senones plus
one dustbin class, on the cluster's frames mixed with random other frames, initialised from the
generalist.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import nn

from asr_kd.features.dataset import FrameTable


class FrameTask(Protocol):
    #: output classes of the model trained on the task
    num_classes: int

    def select(self, table: FrameTable, split: str) -> FrameTable:
        """``table`` (all frames of the ``"train"`` or ``"valid"`` utterances) relabelled for the task."""
        ...

    def initialise(self, net: nn.Module) -> None:
        """Set the initial weights of ``net`` (built with ``num_classes`` outputs) in place."""
        ...

    def metadata(self) -> dict[str, Any]:
        """JSON-able description of the task, recorded in the model file (``metadata["task"]``);
        called after :meth:`select`."""
        ...
