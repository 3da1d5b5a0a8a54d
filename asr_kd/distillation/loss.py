"""The distillation loss of Hinton, Vinyals & Dean (2015), section 2.

``loss = alpha * T^2 * CE(p_T, q_T) + (1 - alpha) * CE(y, q_1)``

where ``q_T = softmax(z / T)`` is the student at temperature ``T``, ``p_T`` the teacher's soft
targets made at the same ``T`` and ``y`` the hard (forced-alignment) senone. The gradient of
the soft term w.r.t. a logit is ``(q_i - p_i) / T``, which shrinks as ``1 / T^2`` at high ``T``
(section 2.1); the ``T^2`` factor keeps its scale comparable to the hard term's whatever ``T``.
``alpha = 1`` trains on the soft targets alone. The paper's speech runs put "a relative weight
of 0.5 on the hard-target cross-entropy", i.e. ``T^2 CE_soft + w CE_hard`` with ``w = 0.5``:
that is ``1 + w`` times this loss with ``alpha = 1 / (1 + w) = 2/3`` (a constant factor, which
Adam's update ignores and SGD absorbs in its learning rate).

Top-k teacher targets (:class:`~asr_kd.distillation.soft_targets.TopKTargets`) keep only the
``k`` largest teacher probabilities of each frame; the remaining tail mass
``r = 1 - sum(top-k probs)`` is handled by ``topk_policy`` (:data:`TOPK_POLICIES`):

* ``"renormalise"`` (default, :data:`DEFAULT_TOPK_POLICY`): the top-k probabilities are scaled
  to sum to 1. The relative probabilities of the k most likely senones (the confusable ones,
  which carry the "dark knowledge") are kept exactly; the far tail is treated as zero, so every
  left-out senone gets gradient ``+q_i / T`` and the student grows more confident than its
  teacher.
* ``"tail"``: ``r`` is spread uniformly over the ``S - k`` senones left out, so the target
  keeps the teacher's total confidence in its top-k; exact when the teacher's tail is flat,
  but a real tail spans orders of magnitude, and a uniform one acts as label smoothing.

Why renormalise: measured, the tail policy is closer to the dense target in *gradient*, but
renormalising did at least as well as dense targets on what we care about, the student's frame
accuracy, and the tail policy did worse. Relative error of
the top-10 soft-CE gradient vs dense, tail / renormalise: 0.15 / 0.48 at T = 1 and
0.49 / 2.19 at T = 2 on a real tiny-data teacher (133 senones), 0.20 / 0.88 at T = 2 on
synthetic logits (2000 senones). Yet students distilled at T = 2 from top-10 targets of that
teacher (mini DNN, 20 tiny utterances, frame accuracy on the training frames) reached
0.480 (tail) / 0.503 (renormalise) / 0.498 (dense), mean of 3 seeds after 6 epochs, and
0.548 / 0.569 / 0.551 after 15 epochs (1 seed). These are tiny-data figures: compare both
policies on the full data before relying on either. At high T the top-k hold little of the
mass (19% for k = 10 at T = 5 with that teacher), so prefer a larger k, a dense store or the online teacher.

The teacher's dense ``(N, S)`` distribution is never built from top-k targets: the loss gathers
the student's log-probabilities at the top-k ids and needs only the student's row sums of
log-probabilities for the tail. Low-rank store targets
(:class:`~asr_kd.distillation.lowrank.LowRankTargets`, faithful at every stored T) are decoded
to dense ``(N, S)`` probabilities by the objective and take the dense path.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from asr_kd.distillation.soft_targets import TopKTargets, check_temperature
from asr_kd.features.dataset import IGNORE_INDEX

TOPK_POLICIES = ("renormalise", "tail")
DEFAULT_TOPK_POLICY = "renormalise"

SoftTargets = torch.Tensor | TopKTargets  # dense (N, S) probabilities or top-k


class DistillationTerms(NamedTuple):
    """The loss and its two unweighted terms (``None`` when not computed)."""

    loss: torch.Tensor  # scalar, what to back-propagate
    soft: torch.Tensor | None  # scalar CE(p_T, q_T), per frame, without the T^2 factor
    hard: torch.Tensor | None  # scalar CE(y, q_1), per non-ignored frame


def soft_cross_entropy(student_logits: torch.Tensor, teacher: SoftTargets, temperature: float,
                       topk_policy: str = DEFAULT_TOPK_POLICY) -> torch.Tensor:
    """Mean over frames of ``-sum_i p_i log q_i`` with ``q = softmax(z / T)``.

    Args:
        student_logits: ``(N, S)`` student logits ``z`` of ``N`` frames.
        teacher: ``(N, S)`` teacher probabilities ``p`` at temperature ``T``, or
            :class:`TopKTargets` with ``(N, k)`` ids and probabilities.
        temperature: ``T``, the temperature the teacher targets were made at.
        topk_policy: what to do with the tail mass of top-k targets (module docstring).

    Returns:
        Scalar cross-entropy in nats per frame (not multiplied by ``T^2``).

    Example (2 frames, 3 senones; top-2 of the same targets leaves tail mass 0.1 and 0.2):
        >>> z = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
        >>> p = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])
        >>> soft_cross_entropy(z, p, temperature=1.0).round(decimals=4)
        tensor(0.9531)
        >>> top2 = TopKTargets(torch.tensor([[0, 1], [2, 1]]), torch.tensor([[0.7, 0.2], [0.5, 0.3]]))
        >>> soft_cross_entropy(z, top2, 1.0, "tail").round(decimals=4)  # one senone left out: exact
        tensor(0.9531)
        >>> soft_cross_entropy(z, top2, 1.0, "renormalise").round(decimals=4)
        tensor(0.8642)
    """
    check_temperature(temperature)
    if student_logits.dim() != 2:
        raise ValueError(f"student logits must be (N, S), got {tuple(student_logits.shape)}")
    # Mixed-precision logits are upcast: the high-T differences q - p are small.
    log_q = torch.log_softmax(student_logits.to(torch.promote_types(student_logits.dtype, torch.float32))
                              / temperature, dim=-1)
    if isinstance(teacher, TopKTargets):
        return _top_k_cross_entropy(log_q, teacher, topk_policy).mean()
    if teacher.shape != student_logits.shape:
        raise ValueError(
            f"teacher targets {tuple(teacher.shape)} do not match student logits {tuple(student_logits.shape)}"
        )
    return -(teacher.to(log_q.dtype) * log_q).sum(dim=-1).mean()


def _top_k_cross_entropy(log_q: torch.Tensor, teacher: TopKTargets, topk_policy: str) -> torch.Tensor:
    """``(N,)`` cross-entropy of top-k targets against student log-probabilities ``(N, S)``."""
    num_frames, num_senones = log_q.shape
    if teacher.ids.shape[0] != num_frames or teacher.k > num_senones:
        raise ValueError(f"top-k targets {tuple(teacher.ids.shape)} do not fit student logits {tuple(log_q.shape)}")
    probs = teacher.probs.to(log_q.dtype)
    log_q_top = log_q.gather(1, teacher.ids.long())
    if topk_policy == "renormalise":
        return -(probs * log_q_top).sum(-1) / probs.sum(-1).clamp_min(1e-12)
    if topk_policy != "tail":
        raise ValueError(f"unknown top-k policy {topk_policy!r}; choose from {TOPK_POLICIES}")
    top_ce = -(probs * log_q_top).sum(-1)
    num_tail = num_senones - teacher.k
    if num_tail == 0:
        return top_ce
    # fp16 storage can make the kept mass exceed 1 by a rounding error: no negative tail.
    tail_mass = (1.0 - probs.sum(-1)).clamp_min(0.0)
    tail_log_q = log_q.sum(-1) - log_q_top.sum(-1)
    return top_ce - tail_mass / num_tail * tail_log_q


def hard_cross_entropy(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean frame cross-entropy at ``T = 1`` over frames whose target is not ``IGNORE_INDEX``.

    Args:
        student_logits: ``(N, S)``.
        targets: ``(N,)`` int64 senone ids; :data:`~asr_kd.features.dataset.IGNORE_INDEX` frames are skipped.

    Returns:
        Scalar in nats per frame; 0 (still differentiable) when every frame is ignored.
    """
    if not (targets != IGNORE_INDEX).any():
        return student_logits.sum() * 0.0
    logits = student_logits.to(torch.promote_types(student_logits.dtype, torch.float32))
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)


def distillation_loss(student_logits: torch.Tensor, teacher: SoftTargets | None,
                      hard_targets: torch.Tensor | None, temperature: float, alpha: float,
                      topk_policy: str = DEFAULT_TOPK_POLICY) -> DistillationTerms:
    """``alpha * T^2 * CE(teacher_T, student_T) + (1 - alpha) * CE(hard, student_1)``.

    Args:
        student_logits: ``(N, S)`` student logits.
        teacher: dense ``(N, S)`` probabilities or :class:`TopKTargets`, made at ``temperature``;
            may be ``None`` only when ``alpha == 0``.
        hard_targets: ``(N,)`` int64 senones (``IGNORE_INDEX`` frames skipped in the hard term);
            may be ``None`` only when ``alpha == 1``. When given with ``alpha == 1`` the hard
            term is still reported (for logging) but carries no weight.
        temperature: ``T`` of the soft term.
        alpha: weight of the soft term in ``[0, 1]``.
        topk_policy: see :func:`soft_cross_entropy`.

    Example (2 frames, 3 senones; see :func:`soft_cross_entropy` for the soft term):
        >>> z = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
        >>> p = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])
        >>> terms = distillation_loss(z, p, torch.tensor([0, 2]), temperature=2.0, alpha=0.5)
        >>> [round(float(t), 4) for t in terms]
        [2.3554, 0.9894, 0.7531]
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if teacher is None and alpha > 0:
        raise ValueError("soft targets are required when alpha > 0")
    if hard_targets is None and alpha < 1:
        raise ValueError("hard targets are required when alpha < 1")
    soft = None if teacher is None else soft_cross_entropy(student_logits, teacher, temperature, topk_policy)
    hard = None if hard_targets is None else hard_cross_entropy(student_logits, hard_targets)
    loss = student_logits.new_zeros((), dtype=torch.float32)
    if alpha > 0:
        loss = loss + alpha * temperature**2 * soft
    if alpha < 1:
        loss = loss + (1.0 - alpha) * hard
    return DistillationTerms(loss, soft, hard)
