"""Stage 5, distillation (Hinton, Vinyals & Dean 2015): soft targets at temperature T.

>>> from asr_kd.distillation import TeacherStoreConfig, dump_teacher, TeacherTargets    # doctest: +SKIP
>>> dump_teacher(teacher, features, "exp/teacher/train", TeacherStoreConfig(2.0, 1000, top_k=10))  # doctest: +SKIP
>>> targets = TeacherTargets.load("exp/teacher/train", train_table)                     # doctest: +SKIP
>>> objective = DistillationObjective(temperature=2.0, alpha=1.0, teacher_targets=targets)  # doctest: +SKIP
>>> loss, stats = objective(student_logits, batch)                                      # doctest: +SKIP
"""

from asr_kd.distillation.accounting import bytes_per_frame, size_table, top_k_mass
from asr_kd.distillation.loss import (
    DEFAULT_TOPK_POLICY,
    TOPK_POLICIES,
    DistillationTerms,
    distillation_loss,
    hard_cross_entropy,
    soft_cross_entropy,
)
from asr_kd.distillation.soft_targets import TopKTargets, ensemble_soft_targets, soft_targets, top_k_targets
from asr_kd.distillation.teacher_objectives import (
    DistillationObjective,
    OnlineObjectiveFactory,
    OnlineTeacherObjective,
    StoreObjectiveFactory,
)
from asr_kd.distillation.teacher_store import (
    TeacherStore,
    TeacherStoreConfig,
    TeacherStoreWriter,
    TeacherTargets,
    dump_teacher,
    dump_teacher_stores,
)

__all__ = [
    "DEFAULT_TOPK_POLICY", "TOPK_POLICIES", "DistillationObjective", "DistillationTerms", "OnlineObjectiveFactory",
    "OnlineTeacherObjective", "StoreObjectiveFactory", "TeacherStore", "TeacherStoreConfig", "TeacherStoreWriter",
    "TeacherTargets", "TopKTargets", "bytes_per_frame", "distillation_loss", "dump_teacher", "dump_teacher_stores",
    "ensemble_soft_targets",
    "hard_cross_entropy", "size_table", "soft_cross_entropy", "soft_targets", "top_k_mass", "top_k_targets",
]
