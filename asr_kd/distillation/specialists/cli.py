"""``asr-kd specialists cluster | train | evaluate | dump``: specialists for confusable senones.

Hinton et al. (2015, section 5) with senones for classes: cluster the senones the generalist
confuses, train one specialist per cluster from the generalist, combine them frame by frame,
and (beyond the paper) dump the combination as a teacher store to distil it back into one model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_kd.cli_options import options
from asr_kd.distillation.cli import add_store_arguments
from asr_kd.distillation.specialists.combine import (
    DEFAULT_MAX_STEPS,
    DEFAULT_METHOD,
    DEFAULT_TOLERANCE,
    DEFAULT_TOP_N,
    METHODS,
)

DEFAULT_NUM_CLUSTERS, DEFAULT_CLUSTER_SIZE = 20, 40


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "specialists",
        help="specialists for confusable senones (paper section 5): cluster, train, evaluate, dump as a teacher",
        description="Specialists (Hinton et al. 2015, section 5) for the senones a generalist confuses. Every "
        "command works in one directory --dir (layout: asr_kd/distillation/specialists/layout.py).",
    )
    commands = parser.add_subparsers(dest="specialists_command", metavar="SUBCOMMAND", required=True)

    p = commands.add_parser(
        "cluster", help="clusters of confusable senones from the covariance of a generalist's predictions",
        description="Runs the generalist over --subset (e.g. its training utterances, --utts), accumulates the "
        "(S, S) covariance of its predicted senone distributions, runs k-means on its columns and writes "
        "<dir>/clusters.json: --num-clusters clusters of the --cluster-size senones nearest to each centroid "
        "(clusters may overlap; some senones belong to none). Deterministic for a --seed.",
        parents=options("exp", "subset", "utts", "device", "max_frames", "threads"),
    )
    p.add_argument("--generalist", required=True, type=Path, help="the generalist's model file")
    p.add_argument("--dir", required=True, type=Path, help="specialists directory (created)")
    p.add_argument("--num-clusters", type=int, default=DEFAULT_NUM_CLUSTERS,
                   help=f"specialists (default {DEFAULT_NUM_CLUSTERS})")
    p.add_argument("--cluster-size", type=int, default=DEFAULT_CLUSTER_SIZE,
                   help=f"senones per specialist (default {DEFAULT_CLUSTER_SIZE})")
    p.add_argument("--column-norm", choices=("none", "l2"), default="l2",
                   help="cluster unit-length covariance columns (l2, default) or raw ones (none, the paper's; "
                   "dominated by the high-variance senones: asr_kd/distillation/specialists/clusters.py)")
    p.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    p.add_argument("--max-utts", type=int, default=None, help="only the first N utterances (sorted ids)")
    p.set_defaults(func=run_cluster)

    p = commands.add_parser(
        "train", help="train one specialist per cluster with the trainer of `asr-kd train` (resumable)",
        description="For each cluster of <dir>/clusters.json: a run of the standard trainer (same config keys as "
        "`asr-kd train`; its model section is replaced by the generalist's body with cluster-size + 1 outputs) on "
        "the training frames of the cluster's senones mixed with --other-ratio times as many random other frames, "
        "other senones folded into a dustbin class, initialised from the generalist, validated on the held-out "
        "utterances sampled the same way; then the dustbin logit is raised by log(other frames / other frames "
        "kept) and the model saved as <dir>/m<idx>/specialist.pt. Finished specialists are skipped, interrupted "
        "ones resume.",
    )
    p.add_argument("--dir", required=True, type=Path, help="specialists directory with clusters.json")
    p.add_argument("--config", type=Path, help="YAML training config (see asr_kd/training/config.py)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="config overrides, e.g. train.epochs=3 optim.lr=0.0003 (out_dir is set per specialist)")
    # append, not nargs="+": a greedy list would swallow the overrides
    p.add_argument("--only", action="append", type=int, metavar="IDX", help="only specialist IDX (repeatable)")
    p.add_argument("--other-ratio", type=float, default=1.0,
                   help="random other frames per cluster frame (default 1: the paper's 1:1 mix)")
    p.add_argument("--seed", type=int, default=0, help="seed of the frame samples (default 0)")
    p.set_defaults(func=run_train)

    combination_parents = options("exp", "subset", "utts", "device", "max_frames", "threads")
    p = commands.add_parser(
        "evaluate", help="frame accuracy of generalist vs generalist + specialists, by specialists covering",
        description="Combines generalist and specialists on every frame of --subset (the generalist's --top-n "
        "senones select the active specialists; q minimises KL(p_g || q) + sum KL(p_m || q)) and writes the "
        "paper's tables 3 and 4 as JSON: overall frame accuracy of both, on frames whose aligned senone some "
        "specialist covers, and per number of specialists covering it (printed as a markdown table); and per "
        "specialist, on the frames where it is active, its accuracy among its cluster's senones vs the "
        "generalist's and how often it chooses its dustbin (<out>_by_specialist.md). "
        "--posteriors-out also writes the combined log-posteriors for `asr-kd decode`.",
        parents=[*combination_parents, *options("utts_per_shard")],
    )
    _combination_arguments(p)
    p.add_argument("--out", type=Path,
                   help="write the JSON here (its frame_acc is the combination's, as in `asr-kd evaluate`'s JSON) "
                   "and the markdown tables next to it (.md, _by_specialist.md)")
    p.add_argument("--posteriors-out", type=Path, help="array store of the combined (T, S) log-posteriors")
    p.set_defaults(func=run_evaluate)

    p = commands.add_parser(
        "dump", help="the combined distribution as a teacher store, for `asr-kd distill train --store`",
        description="The store options of `asr-kd distill dump-teacher`, with generalist + specialists as the "
        "teacher: its soft targets at T are softmax(log q / T) of the combined q (resumable by shard).",
        parents=[*combination_parents, *options("utts_per_shard")],
    )
    _combination_arguments(p)
    add_store_arguments(p)
    p.set_defaults(func=run_dump)


def _combination_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", required=True, type=Path, help="specialists directory with trained specialists")
    p.add_argument("--top-n", type=int, default=DEFAULT_TOP_N,
                   help=f"generalist senones that select the active specialists (default {DEFAULT_TOP_N}, the paper)")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help=f"how q is found: em (majorise-minimise fixed point) or lbfgs (gradient descent on the "
                   f"logits, the paper's); the same objective (default {DEFAULT_METHOD}; see "
                   "asr_kd/distillation/specialists/combine.py)")
    p.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS,
                   help=f"iterations per chunk of frames (default {DEFAULT_MAX_STEPS})")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"stop once every gradient entry is below this (default {DEFAULT_TOLERANCE:g})")


def _set_threads(args: argparse.Namespace) -> None:
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)


def _utt_ids(args: argparse.Namespace, features) -> list[str]:
    from asr_kd.training.validation import read_listed_utts

    ids = features.utt_ids()
    return read_listed_utts(args.utts, ids, f"the features of {features.dir}") if args.utts else ids


def run_cluster(args: argparse.Namespace) -> int:
    from asr_kd.distillation.specialists.clusters import SenoneClusters, confusable_clusters
    from asr_kd.distillation.specialists.covariance import prediction_covariance
    from asr_kd.distillation.specialists.layout import SpecialistsDir
    from asr_kd.experiment import Experiment
    from asr_kd.models import load_model

    _set_threads(args)
    generalist = load_model(args.generalist, args.device)
    features = generalist.open_features(Experiment(args.exp).feats_dir(args.subset))
    ids = sorted(_utt_ids(args, features))[: args.max_utts]
    acc = prediction_covariance(generalist.model, features, ids, args.device, args.max_frames)
    clusters = confusable_clusters(acc.covariance(), args.num_clusters, args.cluster_size, args.seed,
                                   args.column_norm)
    info = {"generalist": str(args.generalist.resolve()), "subset": args.subset, "utterances": len(ids),
            "frames": acc.frames, "seed": args.seed, "column_norm": args.column_norm, "method": "kmeans-covariance"}
    result = SenoneClusters(generalist.num_senones, tuple(clusters), info)
    path = SpecialistsDir(args.dir).clusters
    result.save(path)
    covered = int((result.coverage() > 0).sum())
    print(f"specialists cluster: {len(result)} clusters of {args.cluster_size} senones from {acc.frames} frames of "
          f"{len(ids)} {args.subset} utterances; {covered} of {result.num_senones} senones covered -> {path}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from asr_kd.distillation.specialists.train import train_specialists
    from asr_kd.training.config import load_config

    config = load_config(args.config, args.overrides)
    runs = train_specialists(args.dir, config, args.only, args.other_ratio, args.seed)
    trained = [r for r in runs if r.trained]
    accs = [r.summary["valid_frame_acc"] for r in trained]
    mean = f", mean validation frame accuracy {sum(accs) / len(accs):.4f} (cluster + sampled others)" if accs else ""
    print(f"specialists train: {len(trained)} trained, {len(runs) - len(trained)} already done{mean} -> {args.dir}")
    return 0


def _load(args: argparse.Namespace):
    from asr_kd.distillation.specialists.inference import load_combination
    from asr_kd.experiment import Experiment

    _set_threads(args)
    combination, generalist = load_combination(args.dir, args.device, args.top_n, args.max_steps, args.tolerance,
                                               args.method)
    features = generalist.open_features(Experiment(args.exp).feats_dir(args.subset))
    return combination, generalist, features


def run_evaluate(args: argparse.Namespace) -> int:
    from asr_kd.distillation.specialists.evaluate import coverage_markdown, evaluate_combination, specialists_markdown
    from asr_kd.experiment import Experiment
    from asr_kd.utils.array_store import ArrayStore
    from asr_kd.utils.atomic import atomic_open, write_json

    combination, generalist, features = _load(args)
    senones = ArrayStore(Experiment(args.exp).targets_dir(args.subset))
    generalist.check_targets(senones)
    ids = [u for u in _utt_ids(args, features) if u in senones]
    meta = {"arch": combination.arch, "feature": generalist.metadata.get("feature"), "specialists": str(args.dir)}
    result = evaluate_combination(combination, features, senones, ids, args.device, args.max_frames,
                                  args.posteriors_out, meta, args.utts_per_shard)
    result.update(subset=args.subset, specialists=len(combination.specialists), top_n=args.top_n, method=args.method,
                  generalist=generalist.name, dir=str(args.dir))
    table = coverage_markdown(result)
    if args.out:
        write_json(args.out, result)
        with atomic_open(args.out.with_suffix(".md")) as f:
            f.write(table + "\n")
        with atomic_open(args.out.with_name(args.out.stem + "_by_specialist.md")) as f:
            f.write(specialists_markdown(result) + "\n")
    print(table)
    o, c = result["overall"], result["conditional"]
    print(f"specialists evaluate {args.subset}: frame accuracy {o['generalist_frame_acc']:.4f} -> "
          f"{o['combined_frame_acc']:.4f} with {len(combination.specialists)} specialists on {o['frames']} frames; "
          f"on the {c['frames']} frames a specialist covers "
          + (f"{c['generalist_frame_acc']:.4f} -> {c['combined_frame_acc']:.4f}" if c["frames"] else "none")
          + (f"; posteriors -> {args.posteriors_out}" if args.posteriors_out else ""))
    own = result["specialists_own"]["all"]
    if own["inside"]:
        print(f"on the {own['inside']} active-specialist frames whose truth is in its cluster: the cluster's best "
              f"senone right {own['generalist_inside_acc']:.4f} (generalist) vs {own['specialist_inside_acc']:.4f} "
              f"(specialist), the specialist's dustbin chosen on {own['specialist_dustbin_rate_inside']:.4f}")
    return 0


def run_dump(args: argparse.Namespace) -> int:
    from asr_kd.distillation.cli import store_specs
    from asr_kd.distillation.specialists.layout import SpecialistsDir
    from asr_kd.distillation.teacher_store import TeacherStore, TeacherStoreConfig, dump_teacher_stores

    combination, generalist, features = _load(args)
    layout = SpecialistsDir(args.dir)
    teachers = (generalist.name, *(str(layout.specialist(m).resolve()) for m in range(len(combination.specialists))))
    configs = {d: TeacherStoreConfig(num_senones=combination.num_senones, teachers=teachers,
                                     features=str(features.dir.resolve()), **spec)
               for d, spec in store_specs(args).items()}
    ids = _utt_ids(args, features)
    summaries = dump_teacher_stores(combination, features, configs, ids, args.utts_per_shard, args.device,
                                    args.max_frames)
    for root, s in summaries.items():
        store = TeacherStore(root)
        print(f"specialists dump {args.subset}: {len(store)} utterances, {store.total_rows()} frames "
              f"({s.shards_written} shards written, {s.shards_skipped} already done, {s.wall_seconds:.1f} s) -> "
              f"{root}: {store.config.kind} at T = {', '.join(f'{t:g}' for t in store.config.served_temperatures)}")
    return 0
