"""``asr-kd posteriors``: a model's or an ensemble's per-frame log-posteriors, for decoding."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_kd.cli_options import add_temperature, load_cli_model, model_options, options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "posteriors", help="write per-utterance (T, num_senones) log-posteriors to an array store",
        description="Log-posteriors of every utterance of <exp>/feats/<subset> (or of --utts) for the decoder "
                    "(resumable).",
        parents=[*model_options(), *options("utts", "utts_per_shard")],
    )
    add_temperature(p)
    p.add_argument("--out", type=Path, required=True, help="output array store directory")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    p.set_defaults(func=run_posteriors)


def run_posteriors(args: argparse.Namespace) -> int:
    from asr_kd.experiment import Experiment
    from asr_kd.models.posteriors import write_log_posteriors
    from asr_kd.training.validation import read_listed_utts

    loaded = load_cli_model(args)
    features = loaded.open_features(Experiment(args.exp).feats_dir(args.subset))
    utt_ids = features.utt_ids()
    if args.utts is not None:  # e.g. the held-out validation split, for tuning the decoding weights
        utt_ids = read_listed_utts(args.utts, utt_ids, f"the {args.subset} features ({features.dir})")
    written, skipped = write_log_posteriors(loaded.model, loaded.metadata, features, args.out, args.dtype,
                                            loaded.temperature, args.utts_per_shard, args.device, args.max_frames,
                                            utt_ids, loaded.digest())
    print(f"posteriors {args.subset}: {len(utt_ids)} utterances, {written} shards written, "
          f"{skipped} already done -> {args.out}")
    return 0
