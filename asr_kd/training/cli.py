"""``asr-kd valid-split``, ``asr-kd train``, ``asr-kd train-ensemble``."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_kd.cli_options import options
from asr_kd.training.config import add_train_arguments
from asr_kd.training.validation import DEFAULT_FRACTION, STRATIFY_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "valid-split",
        help="hold out validation utterances of a training subset (once per experiment, for every system)",
        description="Write <exp>/splits/<subset>/{valid.txt, train.txt, split.json}: a fixed, seeded part of the "
        "training subset that no model trains on, read by the trainer for its LR schedule, early stopping and "
        "model selection (data.valid_utts defaults to this valid.txt). Pass train.txt to dump-teacher --utts and "
        "valid.txt to lm --exclude-utts. Rerunning with the same settings reuses the split; other settings are "
        "an error. See asr_kd/training/validation.py.",
        parents=options("exp", "subset"),
    )
    p.add_argument("--fraction", type=float, default=DEFAULT_FRACTION,
                   help=f"share of the utterances held out (default {DEFAULT_FRACTION})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stratify", choices=STRATIFY_MODES, default="speaker",
                   help="speaker: that share of every speaker's utterances (default); none: uniformly at random; "
                   "held-out-speakers: whole speakers (a speaker-disjoint validation set)")
    p.add_argument("--utts", type=Path, help="split only these utterance ids (one per line), e.g. the train.txt of "
                   "the experiment's split, for a second split nested in it")
    p.add_argument("--out", type=Path, help="split folder (default <exp>/splits/<subset>)")
    p.set_defaults(func=run_valid_split)

    p = subparsers.add_parser(
        "train",
        help="train one acoustic model (DNN or conformer) on frame targets",
        description="Train an acoustic model on <exp>/ali/<subset>/senones with frame cross-entropy, validating "
        "on the held-out utterances of `asr-kd valid-split`; keys and defaults in asr_kd/training/config.py. "
        "Run under torchrun for multi-process DDP.",
    )
    add_train_arguments(p)
    p.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "train-ensemble", help="train N models differing in seed and write <out_dir>/ensemble.json",
        description="Train members in <out_dir>/member<i> (seed train.seed + i) and list them in "
        "<out_dir>/ensemble.json.",
        parents=options("combine"),
    )
    add_train_arguments(p)
    p.add_argument("--members", type=int, required=True, help="number of members (seeds seed .. seed+N-1)")
    p.add_argument("--archs", nargs="*", default=[], metavar="ARCH/PRESET",
                   help="member architectures, cycled (default: the config's model for all)")
    p.add_argument("--jobs", type=int, default=1, help="members trained in parallel processes")
    p.set_defaults(func=run_train_ensemble)



def run_valid_split(args: argparse.Namespace) -> int:
    from asr_kd.training.validation import write_split

    split, written = write_split(args.exp, args.subset, args.fraction, args.seed, args.stratify, args.out, args.utts)
    info = split.info
    print(f"valid-split {args.subset}: {info['utterances']['valid']} validation utterances "
          f"({info['hours']['valid']:.3f} h, {info['speakers']['valid']} speakers), {info['utterances']['train']} "
          f"training ({info['hours']['train']:.3f} h) -> {split.directory}"
          + ("" if written else " (existing split reused)"))
    return 0


def run_train(args: argparse.Namespace) -> int:
    from asr_kd.training.config import load_config
    from asr_kd.training.trainer import run, summary_line

    summary = run(load_config(args.config, args.overrides), resume=args.resume)
    print(f"train: {summary['model']}: {summary_line(summary)}, {summary['parameters']} parameters")
    return 0


def run_train_ensemble(args: argparse.Namespace) -> int:
    from asr_kd.models.ensemble import DEFAULT_COMBINE
    from asr_kd.training.config import load_config
    from asr_kd.training.ensemble import train_ensemble

    result = train_ensemble(load_config(args.config, args.overrides), args.members, args.archs, args.jobs,
                            args.resume, args.combine or DEFAULT_COMBINE)
    accs = [m["valid_frame_acc"] for m in result["members"]]
    epochs = [m["epochs_run"] for m in result["members"]]
    print(f"train-ensemble: {result['ensemble']}: {len(accs)} members, validation frame accuracy "
          f"{', '.join(f'{a:.4f}' for a in accs)} (mean {sum(accs) / len(accs):.4f}) after "
          f"{', '.join(map(str, epochs))} epochs")
    return 0
