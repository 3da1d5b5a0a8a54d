"""Train an ensemble: N runs of the same config differing in seed (and optionally architecture)."""

from __future__ import annotations

import copy
import multiprocessing
from collections.abc import Sequence
from pathlib import Path

from asr_kd.models.io import save_ensemble
from asr_kd.training.config import ExperimentConfig
from asr_kd.training.trainer import MakeObjective, run
from asr_kd.utils.atomic import write_json
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger
from asr_kd.utils.processes import worker_pool

log = get_logger("training.ensemble")


def member_configs(config: ExperimentConfig, num_members: int,
                   archs: Sequence[str] = ()) -> list[ExperimentConfig]:
    """Member ``i`` trains in ``<out_dir>/member<i>`` with seed ``train.seed + i``.

    ``archs`` (``"arch/preset"`` strings, cycled over members) makes a mixed ensemble;
    empty keeps the config's model for every member.
    """
    if num_members < 1:
        raise AsrKdError(f"an ensemble needs at least one member, got {num_members}")
    members = []
    for i in range(num_members):
        c = copy.deepcopy(config)
        c.out_dir = str(Path(config.out_dir) / f"member{i}")
        c.train.seed = config.train.seed + i
        if archs:
            arch, sep, preset = archs[i % len(archs)].partition("/")
            if not sep:
                raise AsrKdError(f"ensemble member architecture {archs[i % len(archs)]!r} must be arch/preset")
            c.model.arch, c.model.preset, c.model.overrides = arch, preset, {}
        members.append(c)
    return members


def train_ensemble(config: ExperimentConfig, num_members: int, archs: Sequence[str] = (), jobs: int = 1,
                   resume: bool = False, combine: str = "mean_prob",
                   make_objective: MakeObjective | None = None) -> dict:
    """Train the members (``jobs`` at a time in separate processes) and write ``<out_dir>/ensemble.json``.

    Returns ``{"ensemble": path, "members": [member summaries]}``, also in ``<out_dir>/ensemble_summary.json``.
    ``make_objective`` must be picklable when ``jobs > 1``.
    """
    configs = member_configs(config, num_members, archs)
    if jobs > 1:
        threads = max(1, multiprocessing.cpu_count() // jobs)
        for c in configs:
            c.train.threads, c.train.progress = c.train.threads or threads, False
        with worker_pool(jobs, "spawn") as pool:
            summaries = list(pool.map(run, configs, [make_objective] * len(configs), [resume] * len(configs)))
    else:
        summaries = []
        for i, c in enumerate(configs):
            log.info("ensemble member %d/%d (seed %d) -> %s", i + 1, num_members, c.train.seed, c.out_dir)
            summaries.append(run(c, make_objective, resume=resume))
    path = Path(config.out_dir) / "ensemble.json"
    save_ensemble(path, [s["model"] for s in summaries], combine=combine)
    result = {"ensemble": str(path), "members": [{k: v for k, v in s.items() if k != "history"} for s in summaries]}
    write_json(Path(config.out_dir) / "ensemble_summary.json", result)
    return result
