"""``asr-kd posteriors``: a model's or an ensemble's per-frame log-posteriors, for decoding."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_kd.cli_options import add_temperature, load_cli_model, model_options, options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "posteriors", help="write per-utterance (T, num_senones) log-posteriors to an array store",
        description="Log-posteriors of every utterance of <exp>/feats/<subset> for the decoder (resumable).",
        parents=[*model_options(), *options("utts_per_shard")],
    )
    add_temperature(p)
    p.add_argument("--out", type=Path, required=True, help="output array store directory")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    p.set_defaults(func=run_posteriors)


def run_posteriors(args: argparse.Namespace) -> int:
    from asr_kd.experiment import Experiment
    from asr_kd.models.posteriors import write_log_posteriors

    loaded = load_cli_model(args)
    features = loaded.open_features(Experiment(args.exp).feats_dir(args.subset))
    written, skipped = write_log_posteriors(loaded.model, loaded.metadata, features, args.out, args.dtype,
                                            loaded.temperature, args.utts_per_shard, args.device, args.max_frames)
    print(f"posteriors {args.subset}: {len(features.utt_ids())} utterances, {written} shards written, "
          f"{skipped} already done -> {args.out}")
    return 0
