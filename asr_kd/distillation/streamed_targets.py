"""Teacher soft targets carried in the batches of a frame stream, instead of an in-RAM table.

With ``data.loader=memory`` the distillation objective gathers a batch's teacher targets from
:class:`~asr_kd.distillation.teacher_store.TeacherTargets` (every training frame's targets in
RAM) by ``batch["frame_index"]``. With ``data.loader=stream`` no process holds every frame:
the teacher store's per-frame arrays (``ids`` and ``probs``, each an ArrayStore keyed by
utterance id) are attached to the :class:`~asr_kd.features.frame_stream.FrameStream`, read
with the features chunk by chunk, and every batch arrives with ``batch["teacher"]``: the soft
targets of exactly its frames, decoded on the training device.

Any other store kind streams the same way: attach its per-frame ArrayStores under a name with a
``decode`` that turns ``{key: (N, ...) tensors in the store dtypes}`` into what its objective
reads (:class:`~asr_kd.features.frame_stream.StreamedArrays`).
"""

from __future__ import annotations

import os

import torch

from asr_kd.distillation.loss import SoftTargets
from asr_kd.distillation.soft_targets import TopKTargets
from asr_kd.distillation.teacher_store import TeacherStore, TeacherTargets
from asr_kd.features.frame_stream import FrameStream, StreamedArrays
from asr_kd.utils.errors import AsrKdError

#: The batch key the teacher's soft targets arrive under (read by DistillationObjective).
TEACHER_KEY = "teacher"


class StreamedTeacherTargets:
    """A teacher store whose targets travel in the batches (the ``TeacherTargets`` stand-in).

    Attributes:
        config: the store's :class:`~asr_kd.distillation.teacher_store.TeacherStoreConfig`.
    """

    def __init__(self, store: TeacherStore) -> None:
        self.store, self.config = store, store.config

    @property
    def temperature(self) -> float:
        return self.config.temperature

    def arrays(self) -> StreamedArrays:
        """The store's per-frame arrays: ``probs`` (N, k or S) fp16, plus ``ids`` (N, k) for top-k."""
        stores = {"probs": self.store.probs}
        if self.store.ids is not None:
            stores["ids"] = self.store.ids
        return StreamedArrays(stores, self.decode)

    def decode(self, arrays: dict[str, torch.Tensor]) -> SoftTargets:
        """Dense ``(N, S)`` float32 probabilities, or top-k ``(N, k)`` int64 ids + float32 probabilities."""
        probs = arrays["probs"].float()
        return probs if "ids" not in arrays else TopKTargets(arrays["ids"].long(), probs)

    def gather(self, frame_index: torch.Tensor, device: torch.device | None = None) -> SoftTargets:
        raise AsrKdError(f"teacher targets of {self.store.root} travel in the batch (batch[{TEACHER_KEY!r}]); "
                         "they cannot be looked up by frame index")


def teacher_targets_for(frames, store_dir: str | os.PathLike) -> TeacherTargets | StreamedTeacherTargets:
    """The targets of the store at ``store_dir`` for the trainer's training frames.

    A :class:`~asr_kd.features.dataset.FrameTable` gets the in-RAM :class:`TeacherTargets`
    (gathered by frame index); a :class:`FrameStream` gets the store attached, so that its
    batches carry ``batch["teacher"]``.
    """
    store = TeacherStore(store_dir)
    if not isinstance(frames, FrameStream):
        return TeacherTargets(store, frames)
    if store.config.kind == "lowrank":  # its codes decode against a basis per T: not wired into the stream yet
        raise AsrKdError(f"{store.root}: a low-rank teacher store cannot be streamed (data.loader=stream) yet; "
                         "train with data.loader=memory, or dump a dense / top-k store")
    missing = [u for u in frames.corpus.utt_ids if u not in store]
    if missing:
        raise AsrKdError(f"{len(missing)} of {len(frames.corpus.utt_ids)} utterances have no teacher targets in "
                         f"{store.root}, e.g. {missing[:3]} (dump the teacher for this feature set)")
    targets = StreamedTeacherTargets(store)
    frames.attach(TEACHER_KEY, targets.arrays())
    return targets
