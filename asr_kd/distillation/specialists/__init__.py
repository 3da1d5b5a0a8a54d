"""Specialists for confusable senones (Hinton, Vinyals & Dean 2015, section 5), and distilling them back.

One module per step, in pipeline order:

* :mod:`.covariance`: the ``(S, S)`` covariance of the generalist's predicted distributions;
* :mod:`.kmeans`, :mod:`.clusters`: k-means on its columns -> :class:`SenoneClusters`;
* :mod:`.targets`, :mod:`.model`, :mod:`.task`, :mod:`.train`: a specialist's frames (cluster + as
  many others), dustbin targets, initialisation from the generalist, the trainer run and the
  dustbin correction ``+ log r``;
* :mod:`.combine`, :mod:`.inference`: the per-frame KL combination and the generalist +
  specialists as one acoustic model (:class:`SpecialistCombination`, for decoding and teacher stores);
* :mod:`.evaluate`: the paper's tables 3 and 4 (accuracy by specialists covering the true senone);
* :mod:`.layout`: the specialists directory; :mod:`.cli`: ``asr-kd specialists ...``.
"""

from asr_kd.distillation.specialists.clusters import SenoneClusters, confusable_clusters
from asr_kd.distillation.specialists.combine import Opinion, active_specialists, combination_loss, combine
from asr_kd.distillation.specialists.covariance import CovarianceAccumulator, prediction_covariance
from asr_kd.distillation.specialists.inference import SpecialistCombination, load_combination
from asr_kd.distillation.specialists.targets import class_map, dustbin_log_correction, specialist_targets
from asr_kd.distillation.specialists.task import SpecialistTask

__all__ = [
    "CovarianceAccumulator", "Opinion", "SenoneClusters", "SpecialistCombination", "SpecialistTask",
    "active_specialists", "class_map", "combination_loss", "combine", "confusable_clusters",
    "dustbin_log_correction", "load_combination", "prediction_covariance", "specialist_targets",
]
