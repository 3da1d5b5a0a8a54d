"""Distillation objectives for the trainer: the same trainer, another loss (the ``Objective`` interface).

* :class:`DistillationObjective` reads the teacher's soft targets from a teacher store
  (dumped once, :mod:`asr_kd.distillation.teacher_store`) by ``batch["frame_index"]``; a
  low-rank store's compact rows are moved to the training device and decoded there at T.
* :class:`OnlineTeacherObjective` runs the teacher on every batch instead (no store; costs a
  teacher forward pass per step, but works for any T without a new dump).

Both return :func:`~asr_kd.distillation.loss.distillation_loss` plus per-frame statistics
``soft_ce`` (without the T^2 factor), ``hard_ce`` and ``teacher_agree`` (fraction of frames
where the student's best senone is the teacher's). The ``*Factory`` classes are the trainer's
``make_objective(train_table, device)`` hooks (picklable, for multi-process ensembles).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from asr_kd.distillation.loss import DEFAULT_TOPK_POLICY, TOPK_POLICIES, SoftTargets, distillation_loss
from asr_kd.distillation.lowrank import LowRankTargets
from asr_kd.distillation.soft_targets import TopKTargets, check_temperature
from asr_kd.distillation.streamed_targets import TEACHER_KEY, teacher_targets_for
from asr_kd.distillation.teacher_store import TeacherTargets
from asr_kd.features.dataset import FrameTable
from asr_kd.models.ensemble import COMBINE_MODES, Ensemble, combine_logits
from asr_kd.training.augment import AUGMENTED_KEY
from asr_kd.utils.errors import AsrKdError


def check_settings(temperature: float, alpha: float, topk_policy: str) -> None:
    """Raise :class:`AsrKdError` for distillation settings a user mistyped (before training starts)."""
    try:
        check_temperature(temperature)
    except ValueError as err:
        raise AsrKdError(str(err)) from None
    if not 0.0 <= alpha <= 1.0:
        raise AsrKdError(f"alpha must be in [0, 1], got {alpha}")
    if topk_policy not in TOPK_POLICIES:
        raise AsrKdError(f"unknown top-k policy {topk_policy!r}; choose from {TOPK_POLICIES}")


def _loss_and_stats(logits: torch.Tensor, teacher: SoftTargets, batch: dict, temperature: float, alpha: float,
                    topk_policy: str) -> tuple[torch.Tensor, dict[str, float]]:
    terms = distillation_loss(logits, teacher, batch.get("targets"), temperature, alpha, topk_policy)
    teacher_best = teacher.ids[:, 0] if isinstance(teacher, TopKTargets) else teacher.argmax(-1)
    stats = {"soft_ce": float(terms.soft.detach()),
             "teacher_agree": float((logits.detach().argmax(-1) == teacher_best).float().mean())}
    if terms.hard is not None:
        stats["hard_ce"] = float(terms.hard.detach())
    return terms.loss, stats


class DistillationObjective:
    """Distillation loss against stored teacher targets.

    Args:
        temperature: T of the soft term; one the store serves (the T of a dense / top-k dump,
            any T a low-rank store was dumped with).
        alpha: weight of the soft term (1 = soft targets only).
        teacher_targets: the store's targets aligned with the training :class:`FrameTable`
            (or a :class:`~asr_kd.distillation.streamed_targets.StreamedTeacherTargets`, whose
            targets arrive as ``batch["teacher"]``).
        topk_policy: tail-mass policy for top-k stores (see :mod:`asr_kd.distillation.loss`).

    ``__call__(logits (N, S), batch)`` uses ``batch["frame_index"]`` ``(N,)`` to gather the
    teacher targets and ``batch["targets"]`` ``(N,)`` for the hard term.
    """

    def __init__(self, temperature: float, alpha: float, teacher_targets: TeacherTargets,
                 topk_policy: str = DEFAULT_TOPK_POLICY) -> None:
        check_settings(temperature, alpha, topk_policy)
        config = teacher_targets.config
        if not config.serves(temperature):
            held = ", ".join(f"{t:g}" for t in config.served_temperatures)
            raise AsrKdError(
                f"distilling at T={temperature} but the teacher store holds soft targets at T={held}; dump the "
                f"teacher again at T={temperature} (a low-rank store serves every T it was dumped with)"
            )
        self.temperature, self.alpha, self.topk_policy = temperature, alpha, topk_policy
        self.teacher_targets = teacher_targets

    def __call__(self, logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        if TEACHER_KEY in batch:  # data.loader=stream: the batch carries its frames' targets
            teacher = batch[TEACHER_KEY]
        else:
            teacher = self.teacher_targets.gather(batch["frame_index"], logits.device)
        if isinstance(teacher, LowRankTargets):  # decoded on the training device: (N, S) float32 at T
            teacher = teacher.probs(self.temperature)
        return _loss_and_stats(logits, teacher, batch, self.temperature, self.alpha, self.topk_policy)


class OnlineTeacherObjective:
    """Distillation loss against a teacher run on the fly (no store).

    Each member computes its own input for the batch's frames: a model with a context window
    (``member.context = (left, right)``, e.g. a DNN) gets ``(N, left + 1 + right, D)`` windows
    gathered from the training ``FrameTable`` by ``batch["frame_index"]``, so teacher and
    student may have different windows; a whole-utterance model (``context is None``, e.g. a
    conformer) runs on the batch's padded utterances (``batch["inputs"] = (feats, lengths)``
    and ``batch["mask"]``), which exist only when the student also trains on utterances.
    The features are the training table's, so the teacher must use the student's CMVN mode.
    On an augmented batch (``augment`` config section) every member labels the student's own
    augmented inputs (consistent teaching): a windowed member then needs the student's window.

    Args:
        teacher: a model, an :class:`~asr_kd.models.ensemble.Ensemble` (its members are used;
            ``combine`` applies, not the ensemble's own settings), or a sequence of either.
        table: the training frame table (the trainer's ``make_objective`` argument).
        temperature, alpha, topk_policy: as :class:`DistillationObjective`.
        combine: how members are combined (:data:`~asr_kd.models.ensemble.COMBINE_MODES`).
        top_k: if set, distil from the teacher's top-k only (to compare with a top-k store).
    """

    def __init__(self, teacher: nn.Module | Sequence[nn.Module], table: FrameTable, temperature: float,
                 alpha: float, combine: str = "mean_prob", topk_policy: str = DEFAULT_TOPK_POLICY,
                 top_k: int | None = None) -> None:
        check_settings(temperature, alpha, topk_policy)
        if combine not in COMBINE_MODES:
            raise AsrKdError(f"unknown combine mode {combine!r}; choose from {COMBINE_MODES}")
        teachers = [teacher] if isinstance(teacher, nn.Module) else list(teacher)
        # an ensemble's members are run one by one: each may need its own input window
        members = [m for t in teachers for m in (t.members if isinstance(t, Ensemble) else [t])]
        self.members = [m.eval() for m in members]
        self.table = table
        self.temperature, self.alpha, self.combine = temperature, alpha, combine
        self.topk_policy, self.top_k = topk_policy, top_k

    def _member_logits(self, member: nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
        context = getattr(member, "context", None)
        if context is not None and batch.get(AUGMENTED_KEY):
            return member(self._augmented_windows(member, context, batch))
        if context is not None:
            windows = self.table.context_windows(batch["frame_index"].cpu(), *context)
            return member(windows.to(device))
        if "mask" not in batch:
            raise AsrKdError(
                f"online teacher {type(member).__name__} needs whole utterances but the student trains on "
                "frame batches; dump the teacher to a store (asr-kd distill dump-teacher) instead"
            )
        return member(*batch["inputs"])[batch["mask"]]

    @staticmethod
    def _augmented_windows(member: nn.Module, context: tuple[int, int], batch: dict) -> torch.Tensor:
        """The student's augmented ``(N, L, D)`` windows, which the teacher must label as they are."""
        inputs = batch["inputs"]
        width = context[0] + 1 + context[1]
        if isinstance(inputs, tuple) or inputs.shape[1] != width:
            student = "whole utterances" if isinstance(inputs, tuple) else f"{inputs.shape[1]}-frame windows"
            raise AsrKdError(
                f"online teacher {type(member).__name__} has a {width}-frame context window but the augmented "
                f"student trains on {student}: a consistent teacher must see the student's inputs; use a "
                "teacher with the student's window, or a teacher store (targets from clean features)"
            )
        return inputs

    @torch.no_grad()
    def teacher_targets(self, batch: dict, device: torch.device) -> SoftTargets:
        """Soft targets of the batch's ``N`` frames: ``(N, S)`` probabilities, or top-k if configured."""
        logits = [self._member_logits(m, batch, device).float() for m in self.members]
        probs = combine_logits(logits, self.temperature, self.combine).exp()
        if self.top_k is None:
            return probs
        top, ids = probs.topk(self.top_k, dim=-1)
        return TopKTargets(ids, top)

    def __call__(self, logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        teacher = self.teacher_targets(batch, logits.device)
        return _loss_and_stats(logits, teacher, batch, self.temperature, self.alpha, self.topk_policy)


class StoreObjectiveFactory:
    """``make_objective(train_table, device)`` for :class:`DistillationObjective` over a teacher store."""

    def __init__(self, store_dir: str | os.PathLike, temperature: float, alpha: float,
                 topk_policy: str = DEFAULT_TOPK_POLICY) -> None:
        check_settings(temperature, alpha, topk_policy)
        self.store_dir = Path(store_dir)
        self.temperature, self.alpha, self.topk_policy = temperature, alpha, topk_policy

    def __call__(self, table: FrameTable, device: torch.device) -> DistillationObjective:
        targets = teacher_targets_for(table, self.store_dir)  # in-RAM table, or attached to a frame stream
        return DistillationObjective(self.temperature, self.alpha, targets, self.topk_policy)


class OnlineObjectiveFactory:
    """``make_objective(train_table, device)`` for :class:`OnlineTeacherObjective` from model files.

    Args:
        teacher_paths: model ``.pt`` and/or ensemble ``.json`` files (:func:`asr_kd.models.load_model`);
            all their members form one ensemble, combined with ``combine``.
        cmvn_mode: the student's feature normalisation; if given, every teacher must have been
            trained with it (the teacher sees the student's frame table).
        feature_dir: the student's training features; if given, every teacher must have been
            trained on features with the same fbank settings.
        others: as :class:`OnlineTeacherObjective`.
    """

    def __init__(self, teacher_paths: Sequence[str | os.PathLike], temperature: float, alpha: float,
                 combine: str = "mean_prob", topk_policy: str = DEFAULT_TOPK_POLICY, top_k: int | None = None,
                 cmvn_mode: str | None = None, feature_dir: str | os.PathLike | None = None) -> None:
        check_settings(temperature, alpha, topk_policy)
        self.teacher_paths = [Path(p) for p in teacher_paths]
        self.temperature, self.alpha, self.combine = temperature, alpha, combine
        self.topk_policy, self.top_k, self.cmvn_mode = topk_policy, top_k, cmvn_mode
        self.feature_dir = None if feature_dir is None else Path(feature_dir)

    def __call__(self, table: FrameTable, device: torch.device) -> OnlineTeacherObjective:
        from asr_kd.models import load_model

        teachers = []
        for path in self.teacher_paths:
            loaded = load_model(path, device)
            if self.cmvn_mode is not None:  # the online teacher sees the student's features
                loaded.check_cmvn_mode(self.cmvn_mode, "the student")
            if self.feature_dir is not None:
                loaded.check_features(self.feature_dir)
            teachers.append(loaded.model)
        return OnlineTeacherObjective(teachers, table, self.temperature, self.alpha, self.combine,
                                      self.topk_policy, self.top_k)
