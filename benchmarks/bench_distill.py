"""Distillation overhead: a student epoch per objective, and teacher store bytes per frame.

One DNN student epoch (the trainer's :class:`FrameBatcher` building every batch, forward,
loss, backward, Adam step) on the tiny data, the same batches for every objective:

* ``hard``: frame cross-entropy against hard targets (the baseline).
* ``topk``: :class:`DistillationObjective` over a top-k teacher store (goal <= 1.2x ``hard``).
* ``dense``: the same over a dense fp16 store.
* ``lowrank``: the same over a low-rank store (top-k + PCA codes, decoded to ``(B, S)`` targets
  at T on the training device every batch).
* ``online``: :class:`OnlineTeacherObjective`, the teacher ensemble run on every batch.

The soft objectives use ``alpha=0.5`` (soft and hard term, the most work). The teachers are
untrained (random weights): speed does not depend on what they learnt. Each epoch is run
``--repeats`` times, objectives in turn, and an epoch's time is the sum over its batches of
each batch's fastest step, so a burst of load on a shared machine hits one repeat, not one
objective. ``*_over_hard`` are epoch-time ratios. ``*_objective_ms``: the objective alone
(loss forward + backward for one batch of fixed student logits; ``online`` includes the
teacher forward passes), fastest of 30, next to ``step_ms``, a whole hard-label step: the
load-proof view of the same overhead.

Store sizes: ``bytes_per_frame_{topk,dense}`` measured on disk (shard arrays incl. ``.npy``
headers, from :meth:`TeacherStore.measured_bytes_per_frame`) and their ratio.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import TRAIN, best_time, emit, random_target_table, tiny_exp


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--student", default="mini", help="DNN preset of the student")
    parser.add_argument("--teacher", default="mini", help="DNN preset of each teacher member")
    parser.add_argument("--teachers", type=int, default=2, help="members of the teacher ensemble")
    parser.add_argument("--num-senones", type=int, default=1000)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--lowrank-top-k", type=int, default=8, help="k of the low-rank store")
    parser.add_argument("--rank", type=int, default=96, help="PCA rank of the low-rank store")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=None, help="batches per epoch (default: the whole tiny set)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from asr_kd.distillation import (
        DistillationObjective,
        OnlineTeacherObjective,
        TeacherStore,
        TeacherStoreConfig,
        TeacherTargets,
        dump_teacher,
    )
    from asr_kd.features.dataset import FeatureSet
    from asr_kd.models import Ensemble, build
    from asr_kd.training.batches import FrameBatcher
    from asr_kd.training.objectives import CrossEntropyObjective

    torch.manual_seed(0)
    device = torch.device("cpu")
    exp = tiny_exp()
    table = random_target_table(exp, args.num_senones)
    members = [build("dnn", args.teacher, input_dim=40, num_senones=args.num_senones) for _ in range(args.teachers)]
    teacher = Ensemble(members, temperature=args.temperature)
    features = FeatureSet(exp / "feats" / TRAIN)
    stores, dump_s = {}, {}
    lowrank = dict(temperature=1.0, top_k=args.lowrank_top_k, rank=args.rank, temperatures=(args.temperature,),
                   fit_frames=min(2000, 4 * args.rank + 1))
    for name, spec in (("topk", dict(temperature=args.temperature, top_k=args.top_k)),
                       ("dense", dict(temperature=args.temperature, top_k=None)), ("lowrank", lowrank)):
        config = TeacherStoreConfig(num_senones=args.num_senones, **spec)
        summary = dump_teacher(teacher, features, exp / f"teacher_{name}", config, progress=False)
        stores[name], dump_s[name] = TeacherStore(exp / f"teacher_{name}"), summary.wall_seconds

    soft = dict(temperature=args.temperature, alpha=0.5)
    objectives = {
        "hard": CrossEntropyObjective(),
        "topk": DistillationObjective(**soft, teacher_targets=TeacherTargets(stores["topk"], table)),
        "dense": DistillationObjective(**soft, teacher_targets=TeacherTargets(stores["dense"], table)),
        "lowrank": DistillationObjective(**soft, teacher_targets=TeacherTargets(stores["lowrank"], table)),
        "online": OnlineTeacherObjective(members, table, **soft),
    }
    student = build("dnn", args.student, input_dim=40, num_senones=args.num_senones)
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
    batcher = FrameBatcher(table, student.context, args.batch_size)
    specs = batcher.plan(seed=0)[: args.steps]

    def step_times(objective, specs: list[torch.Tensor]) -> list[float]:
        """Seconds of each training step over ``specs`` (batch building included)."""
        times = []
        for spec in specs:
            start = time.perf_counter()
            batch = batcher.build(spec, device)
            loss, _ = objective(batcher.logits(student, batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        return times

    for objective in objectives.values():  # warm-up: allocator, first-call costs
        step_times(objective, specs[:2])
    fastest = {name: [float("inf")] * len(specs) for name in objectives}
    for _ in range(args.repeats):
        for name, objective in objectives.items():
            fastest[name] = [min(a, b) for a, b in zip(fastest[name], step_times(objective, specs))]
    best = {name: sum(times) for name, times in fastest.items()}

    # the objective alone (loss forward + backward on fixed logits, no student step): short
    # enough to repeat until one run is free of other processes' load
    batch = batcher.build(specs[0], device)
    logits = batcher.logits(student, batch).detach()

    def objective_step(objective) -> None:
        loss, _ = objective(logits.clone().requires_grad_(), batch)
        loss.backward()

    objective_ms = {name: 1e3 * best_time(lambda o=o: objective_step(o), repeats=30) for name, o in objectives.items()}
    frames = sum(len(spec) for spec in specs)
    bytes_topk = stores["topk"].measured_bytes_per_frame()
    bytes_dense = stores["dense"].measured_bytes_per_frame()
    return {
        "stage": "distill",
        "epoch_frames": frames,
        "teachers": f"{args.teachers} x dnn[{args.teacher}]",
        **{f"{name}_epoch_s": round(seconds, 3) for name, seconds in best.items()},
        "hard_frames_per_s": round(frames / best["hard"]),
        **{f"{name}_over_hard": round(best[name] / best["hard"], 3) for name in ("topk", "dense", "lowrank", "online")},
        "goal_topk_over_hard": "<= 1.2",
        "online_over_topk": round(best["online"] / best["topk"], 3),
        **{f"{name}_objective_ms": round(ms, 2) for name, ms in objective_ms.items()},
        "step_ms": round(1e3 * best["hard"] / len(specs), 1),
        "teacher_dump_s_topk": round(dump_s["topk"], 2),
        "bytes_per_frame_topk": round(bytes_topk, 1),
        "bytes_per_frame_dense": round(bytes_dense, 1),
        "topk_fraction_of_dense": round(bytes_topk / bytes_dense, 4),
        "bytes_per_frame_lowrank": round(stores["lowrank"].measured_bytes_per_frame(), 1),
    }


if __name__ == "__main__":
    emit(main())
