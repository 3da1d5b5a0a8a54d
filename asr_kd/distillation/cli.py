"""``asr-kd distill dump-teacher | train | inspect | topk-mass | fidelity``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asr_kd.cli_options import options
from asr_kd.distillation.loss import DEFAULT_TOPK_POLICY, TOPK_POLICIES
from asr_kd.distillation.teacher_store import DEFAULT_FIT_FRAMES, STORE_KINDS
from asr_kd.training.config import add_train_arguments

DEFAULT_KS = (1, 5, 10, 20, 50)
DEFAULT_TOP_K = 10
DEFAULT_LOWRANK_TOP_K, DEFAULT_RANK = 8, 96


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "distill",
        help="distillation at temperature T: dump teacher soft targets, train a student on them",
        description="Knowledge distillation (Hinton et al. 2015): a teacher (model or ensemble) gives soft "
        "targets softmax(z/T); a student trains on alpha * T^2 * CE(soft) + (1 - alpha) * CE(hard).",
    )
    commands = parser.add_subparsers(dest="distill_command", metavar="SUBCOMMAND", required=True)

    p = commands.add_parser(
        "dump-teacher",
        help="run a teacher once over a feature set and store its soft targets (dense, top-k or low-rank)",
        description="Writes teacher stores (array stores keyed by utterance id; sharded, memory-mapped, "
        "resumable: finished shards are skipped on rerun). --store-kind topk keeps the k largest probabilities "
        "per frame at one T, not renormalised; dense all of them in fp16; lowrank (see "
        "asr_kd/distillation/lowrank.py) the top-k log-probabilities at --base-temperature, --rank PCA "
        "coefficients of the rest and the exact tail mass at every --temperature: ONE store serves all of "
        "them. All stores come from a single teacher pass; --out takes the {T} (top-k / dense), {k} and {r} "
        "placeholders when several are written. Several processes (one per GPU) fill the same stores under "
        "torchrun: torchrun --nproc_per_node N -m asr_kd.cli distill dump-teacher ... --device cuda (process r "
        "writes shards r, r + N, ...).",
        parents=options("teacher", "exp", "subset", "combine", "utts", "utts_per_shard", "device", "max_frames"),
    )
    add_store_arguments(p)
    p.set_defaults(func=run_dump_teacher)

    p = commands.add_parser(
        "train",
        help="train a student with the distillation loss (the trainer of `asr-kd train`, another objective)",
        description="Train a student as `asr-kd train` does (same config keys) on alpha * T^2 * CE(teacher_T, "
        "student_T) + (1 - alpha) * CE(hard, student_1), with soft targets from a teacher store "
        "(--store) or from a teacher run on every batch (--online-teacher). Settings go to "
        "<out_dir>/distillation.json.",
        parents=options("combine"),
    )
    add_train_arguments(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", type=Path, help="teacher store of the training subset (dump-teacher)")
    # append, not nargs="+": a greedy list would swallow the section.key=value overrides
    source.add_argument("--online-teacher", action="append", type=Path, metavar="MODEL",
                        help="model file or ensemble JSON run during training (no store); repeat for an ensemble")
    p.add_argument("--temperature", type=float, required=True)
    p.add_argument("--alpha", type=float, default=1.0,
                   help="weight of the soft term (1 = soft targets only); the paper's 'relative weight w on the "
                   "hard-target cross-entropy' is alpha = 1 / (1 + w): 2/3 for its w = 0.5")
    p.add_argument("--topk-policy", choices=TOPK_POLICIES, default=DEFAULT_TOPK_POLICY,
                   help="top-k targets: renormalise the top-k (default) or spread the tail mass uniformly "
                   "(see asr_kd/distillation/loss.py)")
    p.add_argument("--online-top-k", type=int, default=None, help="online teacher: keep only its top-k")
    p.set_defaults(func=run_train)

    p = commands.add_parser("inspect", help="size, bytes per frame and kept probability mass of a teacher store")
    p.add_argument("--store", required=True, type=Path)
    p.set_defaults(func=run_inspect)

    p = commands.add_parser(
        "fidelity",
        help="how close stored soft targets are to the teacher's exact ones: KL, kept mass, bytes per frame",
        description="Runs the teacher again over utterances of the stores (not those a low-rank basis was fitted "
        "on) and compares, per frame, its exact soft targets at each T (float32; an ensemble: the paper's mean of "
        "tempered member probabilities) with what distillation trains towards from each store at that T: "
        "KL(dense || store), KL(store || dense), kept mass = sum min(p, q), the teacher's mass on the exactly kept "
        "senones; plus bytes/frame and %% of dense fp16, and the teacher's own re-tempering floor "
        "KL(p_T || softmax(log p_1 / T)). Prints a markdown table; --out writes the JSON.",
        parents=options("teacher", "exp", "subset", "temperatures", "device", "max_frames"),
    )
    p.add_argument("--store", nargs="+", required=True, type=Path, metavar="DIR", help="teacher stores to measure")
    p.add_argument("--topk-policy", nargs="+", choices=TOPK_POLICIES, default=[DEFAULT_TOPK_POLICY],
                   help="how top-k stores are read (one row per policy)")
    p.add_argument("--max-utts", type=int, default=40, help="first N utterances (sorted ids) the stores share")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.set_defaults(func=run_fidelity)

    p = commands.add_parser(
        "topk-mass",
        help="mean probability mass kept by top-k soft targets of a teacher at several temperatures",
        description="Runs the teacher over (part of) a feature subset and prints, for each T and k, the mean "
        "per-frame probability mass of the k most probable senones, plus the store size of each k.",
        parents=options("teacher", "exp", "subset", "temperatures", "combine", "device"),
    )
    p.add_argument("--top-k", nargs="+", type=int, default=list(DEFAULT_KS), metavar="K")
    p.add_argument("--max-utts", type=int, default=50, help="first N utterances (sorted ids)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.set_defaults(func=run_topk_mass)


def add_store_arguments(p: argparse.ArgumentParser) -> None:
    """The options that say which teacher stores to write (``dump-teacher``, ``specialists dump``):
    read back by :func:`store_specs`."""
    p.add_argument("--out", required=True,
                   help="store directory; may contain {T}, {k} and {r}, e.g. exp/teacher/T{T}_k{k}")
    p.add_argument("--temperature", type=float, nargs="+", required=True,
                   help="one or more T (top-k / dense: a store each; lowrank: the Ts the one store serves)")
    p.add_argument("--store-kind", choices=STORE_KINDS, default="topk",
                   help="topk (default), dense, or lowrank (one store for every T; ~100 bytes/frame)")
    p.add_argument("--top-k", type=_top_k, nargs="+", default=None, metavar="K",
                   help=f"senones kept exactly per frame (topk default {DEFAULT_TOP_K}, lowrank default "
                   f"{DEFAULT_LOWRANK_TOP_K}); 'dense' = --store-kind dense")
    p.add_argument("--rank", type=int, nargs="+", default=[DEFAULT_RANK], metavar="R",
                   help=f"lowrank: PCA coefficients per frame (default {DEFAULT_RANK}: 60 bytes of codes)")
    p.add_argument("--rank-8bit", type=int, default=None,
                   help="lowrank: leading coefficients coded on 8 bits, the rest on 4 (default: a quarter)")
    p.add_argument("--base-temperature", type=float, default=1.0,
                   help="lowrank: T of the stored log-probabilities (default 1: exact for one model at every T)")
    p.add_argument("--fit-frames", type=int, default=DEFAULT_FIT_FRAMES,
                   help=f"lowrank: training frames the PCA basis is fitted on (default {DEFAULT_FIT_FRAMES})")


def load_teacher(paths: list[Path], combine: str | None, device: str, exp: Path, subset: str):
    """``(LoadedModel of an Ensemble, its checked features of <exp>/feats/<subset>)``.

    Model files or one ensemble JSON (one model = 1 member); only the members and ``combine``
    are used: temperatures are applied per store.
    """
    from asr_kd.experiment import Experiment
    from asr_kd.models import load_model

    teacher = load_model(paths, device, combine=combine, ensemble=True)
    return teacher, teacher.open_features(Experiment(exp).feats_dir(subset))


def _top_k(text: str) -> int | None:
    """``--top-k`` value: a positive int, or ``dense`` (``None``)."""
    if text == "dense":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of senones or 'dense', got {text!r}") from None


def store_specs(args: argparse.Namespace) -> dict[Path, dict]:
    """dump-teacher's ``--out`` pattern and options -> ``{store dir: TeacherStoreConfig keywords}``.

    Top-k / dense: one store per (T, k); low-rank: one store per (k, r) serving every T. The
    directories must differ, so several stores need the placeholders that tell them apart.
    """
    from asr_kd.utils.errors import AsrKdError

    pattern, kind = args.out, args.store_kind
    if kind == "lowrank":
        if None in (args.top_k or []):
            raise AsrKdError("--store-kind lowrank keeps a top-k exactly: --top-k dense does not apply")
        specs = [({"k": k, "r": r}, {"temperature": args.base_temperature, "top_k": k, "rank": r,
                                      "rank_8bit": args.rank_8bit, "temperatures": tuple(args.temperature),
                                      "fit_frames": args.fit_frames})
                 for k in args.top_k or [DEFAULT_LOWRANK_TOP_K] for r in args.rank]
        allowed = "{k} and {r}"
    else:
        top_ks = [None] if kind == "dense" else args.top_k or [DEFAULT_TOP_K]
        specs = [({"T": f"{t:g}", "k": k or "dense"}, {"temperature": t, "top_k": k})
                 for t in args.temperature for k in top_ks]
        allowed = "{T} and {k}"
    try:
        dirs = {Path(pattern.format(**names)): config for names, config in specs}
    except (KeyError, IndexError, ValueError) as err:
        raise AsrKdError(f"--out {pattern}: only the {allowed} placeholders are allowed here ({err})") from None
    if len(dirs) != len(specs):
        raise AsrKdError(f"--out {pattern}: several stores would share a directory; add the {allowed} placeholders")
    return dirs


def run_dump_teacher(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from asr_kd.training.trainer import setup_distributed

    ddp, device = setup_distributed(args.device)  # torchrun: one process per GPU, cuda -> cuda:LOCAL_RANK
    try:
        return _dump_teacher(args, ddp, device)
    finally:
        if ddp.owns_group:
            dist.destroy_process_group()


def _dump_teacher(args: argparse.Namespace, ddp, device) -> int:
    from asr_kd.distillation.accounting import bytes_per_frame
    from asr_kd.distillation.teacher_store import TeacherStore, TeacherStoreConfig, dump_teacher_stores
    from asr_kd.training.validation import read_listed_utts

    specs = store_specs(args)
    loaded, features = load_teacher(args.teacher, args.combine, str(device), args.exp, args.subset)
    teacher = loaded.model
    provenance = {"teachers": tuple(str(p.resolve()) for p in args.teacher), "features": str(features.dir.resolve())}
    configs = {d: TeacherStoreConfig(num_senones=int(teacher.num_senones), combine=teacher.combine, **spec,
                                     **provenance) for d, spec in specs.items()}
    utt_ids = read_listed_utts(args.utts, features.utt_ids(), f"the features of {features.dir}") if args.utts else None
    summaries = dump_teacher_stores(teacher, features, configs, utt_ids, args.utts_per_shard, device,
                                    args.max_frames, progress=ddp.is_main, rank=ddp.rank, world_size=ddp.world_size,
                                    barrier=ddp.barrier)
    ddp.barrier()  # every process's shards are complete before the store is summarised
    for root, s in summaries.items():
        written, skipped = (int(n) for n in ddp.all_sum([s.shards_written, s.shards_skipped], device))
        if not ddp.is_main:
            continue
        store = TeacherStore(root)
        dense = bytes_per_frame(store.config.num_senones, None)
        served = ", ".join(f"{t:g}" for t in store.config.served_temperatures)
        procs = f", {ddp.world_size} processes" if ddp.world_size > 1 else ""
        # counted after the barrier: s.utterances is what the store held when this process finished
        print(f"dump-teacher {args.subset}: {len(store)} utterances, {store.total_rows()} frames "
              f"({written} shards written, {skipped} already done, {s.wall_seconds:.1f} s{procs}) -> "
              f"{root}: {store.config.kind} at T = {served}, {s.store_bytes / 1e6:.2f} MB, "
              f"{store.measured_bytes_per_frame():.1f} bytes/frame = {store.measured_bytes_per_frame() / dense:.2%} "
              f"of dense fp16 ({dense} bytes/frame)")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from asr_kd.distillation.teacher_objectives import OnlineObjectiveFactory, StoreObjectiveFactory
    from asr_kd.training.config import load_config
    from asr_kd.training.trainer import run, summary_line
    from asr_kd.utils.atomic import write_json
    from asr_kd.utils.errors import AsrKdError

    config = load_config(args.config, args.overrides)
    if args.store is not None:
        make_objective = StoreObjectiveFactory(args.store, args.temperature, args.alpha, args.topk_policy)
        teacher = {"store": str(args.store)}
    else:
        from asr_kd.models.ensemble import DEFAULT_COMBINE

        combine = args.combine or DEFAULT_COMBINE  # the members of all teachers form one ensemble
        make_objective = OnlineObjectiveFactory(args.online_teacher, args.temperature, args.alpha, combine,
                                                args.topk_policy, args.online_top_k, config.data.cmvn_mode,
                                                config.data.feats_dir(config.data.check_train_subset()))
        teacher = {"online_teacher": [str(p) for p in args.online_teacher], "combine": combine,
                   "online_top_k": args.online_top_k}
    settings = {"temperature": args.temperature, "alpha": args.alpha, "topk_policy": args.topk_policy, **teacher}
    # The trainer checks its own config on --resume; the distillation settings are checked here
    # (only once a checkpoint exists: a run that failed before training may be retried with others).
    settings_path = Path(config.out_dir) / "distillation.json"
    started = (Path(config.out_dir) / "checkpoint.pt").exists()
    if started and settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        raise AsrKdError(f"{settings_path}: {config.out_dir} holds a run with other distillation settings "
                         f"({settings_path.read_text().strip()}); use the same ones or another out_dir")
    write_json(settings_path, settings)
    summary = run(config, make_objective, resume=args.resume)
    print(f"distill train: {summary['model']}: {summary_line(summary)} (T={args.temperature}, alpha={args.alpha})")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from asr_kd.distillation.accounting import bytes_per_frame
    from asr_kd.distillation.teacher_store import TeacherStore

    store = TeacherStore(args.store)
    c = store.config
    dense = bytes_per_frame(c.num_senones, None)
    kept = store.mean_kept_mass()
    result = {"store": str(args.store), **c.to_meta(), "store_kind": c.kind, "utterances": len(store),
              "frames": store.total_rows(), "bytes": store.nbytes(),
              "bytes_per_frame": round(store.measured_bytes_per_frame(), 2), "dense_fp16_bytes_per_frame": dense,
              "fraction_of_dense": round(store.measured_bytes_per_frame() / dense, 5),
              "mean_kept_mass": None if kept is None else round(kept, 5),
              "mean_top_k_mass": {f"{t:g}": round(m, 5) for t, m in store.mean_top_k_mass().items()}}
    print(json.dumps(result, indent=2))
    return 0


def run_fidelity(args: argparse.Namespace) -> int:
    from asr_kd.distillation.accounting import bytes_per_frame
    from asr_kd.distillation.fidelity import (
        StoreUnderTest,
        format_kl,
        markdown_table,
        measure_stores,
        temperature_key,
    )
    from asr_kd.distillation.teacher_store import TeacherStore
    from asr_kd.utils.atomic import write_json
    from asr_kd.utils.errors import AsrKdError

    loaded, features = load_teacher(args.teacher, None, args.device, args.exp, args.subset)
    teacher = loaded.model
    teachers = [str(p.resolve()) for p in args.teacher]
    stores, fitted_on = [], set()
    for root in args.store:
        store = TeacherStore(root)
        c = store.config
        if c.num_senones != teacher.num_senones or (c.teachers and list(c.teachers) != teachers):
            raise AsrKdError(f"{root}: dumped from {list(c.teachers)} ({c.num_senones} senones), not from the "
                             f"given teacher {teachers} ({teacher.num_senones} senones)")
        fitted_on |= set(store.fit_utts)
        policies = args.topk_policy if c.kind == "topk" else [None]
        for policy in policies:
            name = str(root) if len(policies) == 1 else f"{root} ({policy})"
            stores.append(StoreUnderTest(name, store, policy or "renormalise"))
    shared = set.intersection(*(set(s.store.keys()) for s in stores)) - fitted_on
    utt_ids = sorted(shared)[: args.max_utts]
    if not utt_ids:
        raise AsrKdError(f"{args.store}: the stores share no utterance outside their PCA fitting sample")
    results, floor = measure_stores(teacher, features, utt_ids, stores, args.temperature, args.device,
                                    args.max_frames)
    frames = sum(features.store.num_rows(u) for u in utt_ids)
    rows = []
    for s in stores:
        c = s.store.config
        dense = bytes_per_frame(c.num_senones, None)
        measured = s.store.measured_bytes_per_frame()
        row = {"name": s.name, "store": str(s.store.root), "store_kind": c.kind,
               "topk_policy": s.topk_policy if c.kind == "topk" else None, "top_k": c.top_k, "rank": c.rank,
               "served_temperatures": list(c.served_temperatures), "bytes_per_frame": round(measured, 2),
               "array_bytes_per_frame": c.bytes_per_frame, "fraction_of_dense": measured / dense}
        row.update({temperature_key(t): {k: float(v) for k, v in m.items()} for t, m in results[s.name].items()})
        rows.append(row)
    result = {"teacher": teachers, "subset": args.subset, "utterances": len(utt_ids), "frames": frames,
              "num_senones": int(teacher.num_senones), "stores": rows,
              "retemper_floor": {temperature_key(t): v for t, v in floor.items()}}
    if args.out:
        write_json(args.out, result)
    print(markdown_table(rows, args.temperature))
    print("teacher re-tempered from T=1 (KL(p_T || softmax(log p_1 / T)), no storage error): "
          + ", ".join(f"T={t:g} {format_kl(v)}" for t, v in floor.items()))
    print(f"distill fidelity: {len(rows)} store rows x {len(args.temperature)} T on {len(utt_ids)} utterances, "
          f"{frames} frames of {args.subset}" + (f" -> {args.out}" if args.out else ""))
    return 0


def run_topk_mass(args: argparse.Namespace) -> int:
    import torch

    from asr_kd.distillation.accounting import size_table, top_k_mass
    from asr_kd.distillation.teacher_store import tempered_batches
    from asr_kd.utils.atomic import write_json
    from asr_kd.utils.errors import AsrKdError

    loaded, features = load_teacher(args.teacher, args.combine, args.device, args.exp, args.subset)
    teacher = loaded.model
    if not 1 <= min(args.top_k) <= max(args.top_k) <= teacher.num_senones:
        raise AsrKdError(f"--top-k must lie in 1..{teacher.num_senones} (the teacher's senones), got {args.top_k}")
    utt_ids = features.utt_ids()[: args.max_utts]
    settings = [(t, teacher.combine) for t in args.temperature]
    sums = {t: dict.fromkeys(args.top_k, 0.0) for t in args.temperature}  # frame-weighted, batch by batch
    frames = 0
    for _, lengths, log_probs in tempered_batches(teacher, features, utt_ids, settings, args.device):
        n = sum(lengths)
        for t, batch in zip(args.temperature, log_probs):
            valid = torch.cat([x[:length] for x, length in zip(batch, lengths)])
            for k, mass in top_k_mass(valid, args.top_k).items():
                sums[t][k] += mass * n
        frames += n
    masses = {t: {k: total / frames for k, total in ks.items()} for t, ks in sums.items()}
    result = {"teacher": [str(p) for p in args.teacher], "combine": teacher.combine, "subset": args.subset,
              "utterances": len(utt_ids), "frames": frames, "num_senones": int(teacher.num_senones),
              "mean_top_k_mass": {str(t): {str(k): round(m, 5) for k, m in ks.items()} for t, ks in masses.items()},
              "sizes": size_table(int(teacher.num_senones), args.top_k, frames)}
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0
