"""``asr-kd features``."""

from __future__ import annotations

import argparse

from asr_kd.cli_options import add_field, options
from asr_kd.features.fbank import FbankConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "features",
        help="compute log-mel fbank features and CMVN statistics",
        description="Compute Kaldi-compatible log-mel filterbanks (25 ms window, 10 ms shift) for every "
        "utterance of <exp>/manifests/<subset>.tsv into <exp>/feats/<subset>/ (sharded, memory-mapped, "
        "resumable: finished shards are skipped), plus per-speaker CMVN statistics.",
        parents=options("exp", "jobs", "utts_per_shard"),
    )
    p.add_argument("--subsets", required=True, nargs="+")
    add_field(p, "--num-mel-bins", FbankConfig, help="mel filterbank channels (feature dimension)")
    p.set_defaults(func=run_features)


def run_features(args: argparse.Namespace) -> int:
    from asr_kd.data import read_manifest
    from asr_kd.experiment import Experiment
    from asr_kd.features.extract import extract_features

    config = FbankConfig(num_mel_bins=args.num_mel_bins)
    for subset in args.subsets:
        utts = read_manifest(Experiment(args.exp).manifest(subset))
        out = Experiment(args.exp).feats_dir(subset)
        s = extract_features(utts, out, config, num_workers=args.jobs, utts_per_shard=args.utts_per_shard)
        redone = f", {s.shards_redone} of them redone: audio changed" if s.shards_redone else ""
        print(
            f"features {subset}: {s.utterances} utterances, {s.frames} frames, {s.audio_seconds / 3600:.3f} h "
            f"computed in {s.wall_seconds:.1f} s wall ({s.shards_written} shards written{redone}, {s.shards_skipped} "
            f"already done); {s.realtime_factor_per_core:.0f}x real time per core -> {out}"
        )
    return 0
