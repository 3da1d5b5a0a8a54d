"""Training the specialists of a clusters file, one after the other, with the standard trainer.

Each specialist is an ordinary run of :func:`asr_kd.training.trainer.run` (same config keys,
validation on held-out training utterances, early stopping, checkpoints, exact resume) with a
:class:`~.task.SpecialistTask`; its ``model`` section is replaced by the generalist's
architecture with ``K + 1`` outputs, and its CMVN mode by the generalist's. When the run ends its
``model.pt`` gets the dustbin correction and is saved as ``m<idx>/specialist.pt`` (:mod:`.layout`).
A finished specialist (its ``specialist.pt`` exists) is skipped; an interrupted one resumes from
its checkpoint.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from dataclasses import dataclass

from asr_kd.distillation.specialists.clusters import SenoneClusters
from asr_kd.distillation.specialists.inference import load_generalist
from asr_kd.distillation.specialists.layout import SpecialistsDir
from asr_kd.distillation.specialists.model import body_config, raise_dustbin
from asr_kd.distillation.specialists.task import SpecialistTask
from asr_kd.models import LoadedModel, load, save
from asr_kd.training.config import ExperimentConfig
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("specialists")


@dataclass(frozen=True)
class SpecialistRun:
    """What happened to one specialist: ``trained`` now or ``reused``; its summary if trained."""

    index: int
    path: str
    trained: bool
    summary: dict | None = None


def specialist_config(config: ExperimentConfig, generalist: LoadedModel, cluster_size: int,
                      out_dir: os.PathLike) -> ExperimentConfig:
    """``config`` for one specialist: ``out_dir``, the generalist's body with ``cluster_size + 1`` outputs
    and CMVN mode."""
    c = copy.deepcopy(config)
    c.out_dir = str(out_dir)
    c.model.arch, c.model.preset = generalist.model.arch, None
    c.model.overrides, c.model.num_senones = body_config(generalist.model), cluster_size + 1
    if generalist.cmvn_mode is not None:
        c.data.cmvn_mode = generalist.cmvn_mode
    return c


def train_specialists(directory: os.PathLike, config: ExperimentConfig, indices: Iterable[int] | None = None,
                      other_ratio: float = 1.0, seed: int = 0) -> list[SpecialistRun]:
    """Train (or reuse) specialists ``indices`` (default: all) of ``<directory>/clusters.json``."""
    layout = SpecialistsDir(directory)
    clusters = SenoneClusters.load(layout.clusters)
    wanted = list(range(len(clusters))) if indices is None else sorted(set(indices))
    bad = [m for m in wanted if not 0 <= m < len(clusters)]
    if bad:
        raise AsrKdError(f"{layout.clusters}: holds {len(clusters)} clusters, no specialist {bad[0]}")
    generalist = load_generalist(clusters, str(layout.clusters), "cpu")
    data = config.data
    generalist.check_features(data.feats_dir(data.check_train_subset()))
    runs = []
    for m in wanted:
        path = layout.specialist(m)
        if path.exists():
            runs.append(SpecialistRun(m, str(path), trained=False))
            continue
        cluster = clusters.clusters[m]
        task = SpecialistTask(generalist.model, cluster, m, other_ratio, seed)
        log.info("specialist %d of %d: %d senones", m + 1, len(clusters), len(cluster))
        from asr_kd.training.trainer import run  # torch-heavy

        summary = run(specialist_config(config, generalist, len(cluster), layout.train_dir(m)), resume=True, task=task)
        net, meta = load(summary["model"])
        correction = task.dustbin_log_correction()
        raise_dustbin(net, correction)
        meta["task"] = dict(meta.get("task", {}), dustbin_log_correction=correction,
                            generalist=str(clusters.info.get("generalist")))
        save(path, net, meta)
        runs.append(SpecialistRun(m, str(path), trained=True, summary=summary))
    return runs
