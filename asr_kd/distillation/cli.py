"""``asr-kd distill dump-teacher | train | inspect | topk-mass``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asr_kd.training.config import add_train_arguments

DEFAULT_KS = (1, 5, 10, 20, 50)


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
        help="run a teacher once over a feature set and store its soft targets at T (top-k or dense)",
        description="Writes teacher stores (probs/ and ids/ array stores keyed by utterance id; sharded, "
        "memory-mapped, resumable: finished shards are skipped on rerun). Top-k stores keep the k largest "
        "probabilities per frame, not renormalised. Several --temperature / --top-k values write one store "
        "each from a single teacher pass; --out then needs the {T} and {k} placeholders. Several processes "
        "(one per GPU) fill the same stores under torchrun: torchrun --nproc_per_node N -m asr_kd.cli distill "
        "dump-teacher ... --device cuda (process r writes shards r, r + N, ...).",
    )
    p.add_argument("--teacher", nargs="+", required=True, type=Path,
                   help="model file, ensemble JSON, or several model files (combined as an ensemble)")
    p.add_argument("--exp", required=True, type=Path)
    p.add_argument("--subset", required=True, help="feature subset under <exp>/feats/")
    p.add_argument("--out", required=True, help="store directory; may contain {T} and {k}, e.g. exp/teacher/T{T}_k{k}")
    p.add_argument("--temperature", type=float, nargs="+", required=True, help="one or more T")
    p.add_argument("--top-k", type=_top_k, nargs="+", default=[10], metavar="K",
                   help="senones kept per frame, or 'dense' for all senones in fp16 (default 10)")
    p.add_argument("--combine", default=None, help="mean_prob (paper), mean_logits or geometric "
                   "(default: the ensemble JSON's, else mean_prob)")
    p.add_argument("--utts", type=Path, help="dump only the utterance ids listed in this file")
    p.add_argument("--utts-per-shard", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-frames", type=int, default=10000, help="padded frames per teacher batch")
    p.set_defaults(func=run_dump_teacher)

    p = commands.add_parser(
        "train",
        help="train a student with the distillation loss (the trainer of `asr-kd train`, another objective)",
        description="Train a student as `asr-kd train` does (same config keys) on alpha * T^2 * CE(teacher_T, "
        "student_T) + (1 - alpha) * CE(hard, student_1), with soft targets from a teacher store "
        "(--store) or from a teacher run on every batch (--online-teacher). Settings go to "
        "<out_dir>/distillation.json.",
    )
    add_train_arguments(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", type=Path, help="teacher store of the training subset (dump-teacher)")
    # append, not nargs="+": a greedy list would swallow the section.key=value overrides
    source.add_argument("--online-teacher", action="append", type=Path, metavar="MODEL",
                        help="model file or ensemble JSON run during training (no store); repeat for an ensemble")
    p.add_argument("--temperature", type=float, required=True)
    p.add_argument("--alpha", type=float, default=1.0, help="weight of the soft term (1 = soft targets only)")
    p.add_argument("--topk-policy", choices=("renormalise", "tail"), default="renormalise",
                   help="top-k targets: renormalise the top-k (default) or spread the tail mass uniformly "
                   "(see asr_kd/distillation/loss.py)")
    p.add_argument("--combine", default="mean_prob", help="online teacher ensemble combination")
    p.add_argument("--online-top-k", type=int, default=None, help="online teacher: keep only its top-k")
    p.set_defaults(func=run_train)

    p = commands.add_parser("inspect", help="size, bytes per frame and kept probability mass of a teacher store")
    p.add_argument("--store", required=True, type=Path)
    p.set_defaults(func=run_inspect)

    p = commands.add_parser(
        "topk-mass",
        help="mean probability mass kept by top-k soft targets of a teacher at several temperatures",
        description="Runs the teacher over (part of) a feature subset and prints, for each T and k, the mean "
        "per-frame probability mass of the k most probable senones, plus the store size of each k.",
    )
    p.add_argument("--teacher", nargs="+", required=True, type=Path)
    p.add_argument("--exp", required=True, type=Path)
    p.add_argument("--subset", required=True)
    p.add_argument("--temperature", nargs="+", type=float, default=[1.0, 2.0, 5.0, 10.0])
    p.add_argument("--top-k", nargs="+", type=int, default=list(DEFAULT_KS), metavar="K")
    p.add_argument("--combine", default=None)
    p.add_argument("--max-utts", type=int, default=50, help="first N utterances (sorted ids)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.set_defaults(func=run_topk_mass)


def load_teacher(paths: list[Path], combine: str | None, device: str, exp: Path, subset: str):
    """``(LoadedModel of an Ensemble, its checked features of <exp>/feats/<subset>)``.

    Model files or one ensemble JSON (one model = 1 member); only the members and ``combine``
    are used: temperatures are applied per store.
    """
    from asr_kd.models import load_model

    teacher = load_model(paths, device, combine=combine, ensemble=True)
    return teacher, teacher.open_features(exp / "feats" / subset)


def _top_k(text: str) -> int | None:
    """``--top-k`` value: a positive int, or ``dense`` (``None``)."""
    if text == "dense":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of senones or 'dense', got {text!r}") from None


def store_dirs(pattern: str, temperatures: list[float],
               top_ks: list[int | None]) -> dict[Path, tuple[float, int | None]]:
    """``--out`` pattern -> ``{store dir: (T, k)}`` for every combination; the directories must differ."""
    from asr_kd.utils.errors import AsrKdError

    try:
        dirs = {Path(pattern.format(T=f"{t:g}", k=k or "dense")): (t, k) for t in temperatures for k in top_ks}
    except (KeyError, IndexError, ValueError) as err:
        raise AsrKdError(f"--out {pattern}: only the {{T}} and {{k}} placeholders are allowed ({err})") from None
    if len(dirs) != len(temperatures) * len(top_ks):
        raise AsrKdError(f"--out {pattern}: several temperatures / k would share a directory; "
                         "add the {T} and {k} placeholders")
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

    dirs = store_dirs(args.out, args.temperature, args.top_k)
    loaded, features = load_teacher(args.teacher, args.combine, str(device), args.exp, args.subset)
    teacher = loaded.model
    provenance = {"teachers": tuple(str(p.resolve()) for p in args.teacher), "features": str(features.dir.resolve())}
    configs = {d: TeacherStoreConfig(temperature=t, num_senones=int(teacher.num_senones), top_k=k,
                                     combine=teacher.combine, **provenance) for d, (t, k) in dirs.items()}
    utt_ids = args.utts.read_text().split() if args.utts else None
    summaries = dump_teacher_stores(teacher, features, configs, utt_ids, args.utts_per_shard, device,
                                    args.max_frames, progress=ddp.is_main, rank=ddp.rank, world_size=ddp.world_size)
    ddp.barrier()  # every process's shards are complete before the store is summarised
    for root, s in summaries.items():
        written, skipped = (int(n) for n in ddp.all_sum([s.shards_written, s.shards_skipped], device))
        if not ddp.is_main:
            continue
        store = TeacherStore(root)
        dense = bytes_per_frame(store.config.num_senones, None)
        procs = f", {ddp.world_size} processes" if ddp.world_size > 1 else ""
        print(f"dump-teacher {args.subset}: {len(store)} utterances, {store.total_rows()} frames "
              f"({written} shards written, {skipped} already done, {s.wall_seconds:.1f} s{procs}) -> "
              f"{root}: {store.nbytes() / 1e6:.2f} MB, {store.measured_bytes_per_frame():.1f} bytes/frame "
              f"= {store.measured_bytes_per_frame() / dense:.2%} of dense fp16 ({dense} bytes/frame)")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from asr_kd.distillation.objective import OnlineObjectiveFactory, StoreObjectiveFactory
    from asr_kd.training.config import load_config
    from asr_kd.training.trainer import run
    from asr_kd.utils.atomic import write_json
    from asr_kd.utils.errors import AsrKdError

    config = load_config(args.config, args.overrides)
    if args.store is not None:
        make_objective = StoreObjectiveFactory(args.store, args.temperature, args.alpha, args.topk_policy)
        teacher = {"store": str(args.store)}
    else:
        make_objective = OnlineObjectiveFactory(args.online_teacher, args.temperature, args.alpha, args.combine,
                                                args.topk_policy, args.online_top_k, config.data.cmvn_mode,
                                                config.data.feats_dir(config.data.train_subset))
        teacher = {"online_teacher": [str(p) for p in args.online_teacher], "combine": args.combine,
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
    print(f"distill train: {summary['model']}: dev frame accuracy {summary['dev_frame_acc']:.4f} at epoch "
          f"{summary.get('kept_epoch', summary['best_epoch'])} of"
          f" {summary['epochs_run']} (T={args.temperature}, alpha={args.alpha})")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from asr_kd.distillation.accounting import bytes_per_frame
    from asr_kd.distillation.teacher_store import TeacherStore

    store = TeacherStore(args.store)
    c = store.config
    dense = bytes_per_frame(c.num_senones, None)
    result = {"store": str(args.store), **c.to_meta(), "utterances": len(store), "frames": store.total_rows(),
              "bytes": store.nbytes(), "bytes_per_frame": round(store.measured_bytes_per_frame(), 2),
              "dense_fp16_bytes_per_frame": dense,
              "fraction_of_dense": round(store.measured_bytes_per_frame() / dense, 5),
              "mean_kept_mass": round(store.mean_kept_mass(), 5)}
    print(json.dumps(result, indent=2))
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
