"""``asr-kd valid-split``, ``asr-kd train``, ``asr-kd train-ensemble``, ``asr-kd evaluate``, ``asr-kd posteriors``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asr_kd.cli_options import options
from asr_kd.training.config import add_train_arguments
from asr_kd.training.validation import DEFAULT_FRACTION


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
    p.add_argument("--stratify", choices=("speaker", "none"), default="speaker",
                   help="speaker: that share of every speaker's utterances (default); none: uniformly at random")
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

    p = subparsers.add_parser(
        "evaluate", help="frame accuracy (overall, silence, non-silence) of a model or ensemble as JSON",
        description="Frame accuracy against <exp>/ali/<subset>/senones; silence frames from the phones store.",
        parents=[*MODEL_OPTIONS, *options("utts")],
    )
    _add_temperature(p)
    p.add_argument("--members", action="store_true", help="also score every ensemble member on its own")
    p.add_argument("--out", type=Path, help="write the JSON here (also printed)")
    p.set_defaults(func=run_evaluate)

    p = subparsers.add_parser(
        "posteriors", help="write per-utterance (T, num_senones) log-posteriors to an array store",
        description="Log-posteriors of every utterance of <exp>/feats/<subset> for the decoder (resumable).",
        parents=MODEL_OPTIONS,
    )
    _add_temperature(p)
    p.add_argument("--out", type=Path, required=True, help="output array store directory")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    p.add_argument("--utts-per-shard", type=int, default=100)
    p.set_defaults(func=run_posteriors)


MODEL_OPTIONS = options("model", "exp", "subset", "combine", "device", "max_frames", "threads")


def _add_temperature(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=None,
                   help="softmax temperature (default: the ensemble JSON's, else 1)")


def _load(args: argparse.Namespace):
    """The ``--model`` arguments as a :class:`~asr_kd.models.LoadedModel` (the callers check it against the subset)."""
    import torch

    from asr_kd.models import load_model

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    return load_model(args.model, args.device, temperature=args.temperature, combine=args.combine)


def run_valid_split(args: argparse.Namespace) -> int:
    from asr_kd.training.validation import write_split

    split, written = write_split(args.exp, args.subset, args.fraction, args.seed, args.stratify, args.out)
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


def run_evaluate(args: argparse.Namespace) -> int:
    from asr_kd.experiment import Experiment
    from asr_kd.models import Ensemble
    from asr_kd.scoring.frame_accuracy import alignment_stores, frame_accuracy
    from asr_kd.utils.atomic import write_json

    loaded = _load(args)
    features = loaded.open_features(Experiment(args.exp).feats_dir(args.subset))
    senones, phones = alignment_stores(args.exp, args.subset)
    loaded.check_targets(senones)
    if loaded.temperature != 1.0:
        print("evaluate: note: temperature does not change a single model's argmax (frame accuracy)")
    utt_ids = args.utts.read_text().split() if args.utts else None

    def score(m) -> dict:
        result = frame_accuracy(m, features, senones, phones, utt_ids, args.device, args.max_frames)
        return dict(result, subset=args.subset)

    model, meta = loaded.model, loaded.metadata
    result = {"model": [str(p) for p in args.model], **score(model)}
    if isinstance(model, Ensemble):
        result.update(combine=model.combine, temperature=model.temperature)
        if args.members:
            result["members"] = [dict(score(m), model=mm.get("path")) for m, mm in zip(model.members, meta["members"])]
            accs = [r["frame_acc"] for r in result["members"]]
            result["mean_member_frame_acc"] = sum(accs) / len(accs)
            result["gain_over_mean_member"] = result["frame_acc"] - result["mean_member_frame_acc"]
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


def run_posteriors(args: argparse.Namespace) -> int:
    from asr_kd.experiment import Experiment
    from asr_kd.training.posteriors import write_log_posteriors

    loaded = _load(args)
    features = loaded.open_features(Experiment(args.exp).feats_dir(args.subset))
    written, skipped = write_log_posteriors(loaded.model, loaded.metadata, features, args.out, args.dtype,
                                            loaded.temperature, args.utts_per_shard, args.device, args.max_frames)
    print(f"posteriors {args.subset}: {len(features.utt_ids())} utterances, {written} shards written, "
          f"{skipped} already done -> {args.out}")
    return 0
