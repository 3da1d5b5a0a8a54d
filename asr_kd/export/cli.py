"""``asr-kd export`` (model folder for other pipelines) and ``asr-kd kaldi-ark`` (Kaldi decoder input)."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_kd.cli_options import options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a self-contained model folder (PyTorch, TorchScript, ONNX, features, CMVN, priors, tree)",
        description="Copy a trained model into DIR with a TorchScript and an ONNX export (both checked against "
        "PyTorch), bundle.json (fbank config, training CMVN mean/std, context window, senone count, I/O names) "
        "and, with --tree-dir, the senone tree, counts and log priors.",
    )
    p.add_argument("--model", required=True, type=Path, help="model file written by `asr-kd train` (model.pt)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--tree-dir", type=Path, help="<exp>/tree holding tree.json and senone_counts.npy")
    p.add_argument("--cmvn", type=Path, help="training CMVN statistics: <exp>/feats/<train subset>[/cmvn.npz] "
                   "(default: found through the config.yaml next to the model)")
    p.add_argument("--check-feats", type=Path, help="feature dir whose first utterances the exports are checked "
                   "on (default: N(0, 1) noise)")
    p.add_argument("--check-utts", type=int, default=4, help="utterances of --check-feats to use")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    p.set_defaults(func=run_export)

    k = subparsers.add_parser(
        "kaldi-ark",
        help="write model log-posteriors or log-likelihoods as a Kaldi ark/scp",
        description="Run a model over every utterance of a feature set (an asr_kd feature dir or a Kaldi "
        "feats.scp/ark) and write (T, num_senones) float matrices for Kaldi tools. With --loglikes the "
        "senone log priors are subtracted (input for latgen-faster-mapped).",
        parents=options("prior_scale", "device"),
    )
    k.add_argument("--model", required=True, type=Path, help="bundle folder from `asr-kd export`, or a model file")
    k.add_argument("--feats", required=True, type=Path, help="asr_kd feature dir, or Kaldi feats.scp / .ark")
    k.add_argument("--utt2spk", type=Path, help="Kaldi utt2spk for --feats .scp/.ark (speaker CMVN falls back "
                   "to the model's global statistics without it)")
    k.add_argument("--ark", required=True, type=Path, help="output ark")
    k.add_argument("--scp", type=Path, help="output scp (default: the ark path with .scp)")
    k.add_argument("--loglikes", action="store_true", help="subtract prior_scale * log priors (needs priors)")
    k.add_argument("--tree-dir", type=Path, help="<exp>/tree for the priors (default: the bundle's)")
    k.set_defaults(func=run_kaldi_ark)


def run_export(args: argparse.Namespace) -> int:
    from asr_kd.export.bundle import write_bundle

    check_inputs = _check_batch(args.model, args.check_feats, args.check_utts) if args.check_feats else None
    source = f"{len(check_inputs[1])} utterances of {args.check_feats}" if check_inputs else ""
    bundle = write_bundle(args.model, args.out, args.tree_dir, args.cmvn, onnx=not args.no_onnx,
                          check_inputs=check_inputs, check_source=source)
    checks = bundle["checks"]
    onnx = f", ONNX max |diff| {checks['onnx_max_abs_diff']:.2e}" if "onnx_max_abs_diff" in checks else ""
    print(f"export: {bundle['arch']} model, {bundle['num_senones']} senones -> {args.out} "
          f"({', '.join(bundle['files'].values())}); checked on {checks['frames']} frames ({checks['inputs']}): "
          f"TorchScript max |diff| {checks['torchscript_max_abs_diff']:.2e}{onnx}")
    return 0


def _check_batch(model_path: Path, feature_dir: Path, num_utts: int):
    """A padded batch of the first ``num_utts`` utterances of a feature dir, normalised as in training."""
    from asr_kd.features.dataset import UtteranceDataset, collate_utterances
    from asr_kd.models import load_model

    features = load_model(model_path).open_features(feature_dir)
    dataset = UtteranceDataset(features, features.utt_ids()[:num_utts])
    batch = collate_utterances([dataset[i] for i in range(len(dataset))])
    return batch["feats"], batch["lengths"]


def run_kaldi_ark(args: argparse.Namespace) -> int:
    from asr_kd.alignment import load_senone_log_priors
    from asr_kd.export.bundle import load_bundle
    from asr_kd.export.kaldi import KaldiFeatureSet, write_model_outputs
    from asr_kd.features.dataset import FeatureSet
    from asr_kd.models.loader import check_feature_settings, check_senone_count
    from asr_kd.utils.errors import AsrKdError

    bundle = load_bundle(args.model)
    cmvn_mode = bundle.metadata["feature"]["cmvn_mode"]
    num_senones = int(bundle.metadata["num_senones"])
    if args.feats.is_dir():
        features = FeatureSet(args.feats, cmvn_mode)
        check_feature_settings(str(args.model), bundle.metadata["feature"]["fbank"], args.feats,
                               features.store.meta.get("fbank"))
    else:
        features = KaldiFeatureSet(args.feats, bundle.cmvn, cmvn_mode, args.utt2spk)
    if features.dim != bundle.model.input_dim:
        raise AsrKdError(f"{args.feats}: {features.dim}-dimensional features, but {args.model} takes "
                         f"{bundle.model.input_dim}-dimensional input")
    log_priors = None
    if args.loglikes:
        log_priors = load_senone_log_priors(args.tree_dir) if args.tree_dir else bundle.log_priors()
        if log_priors is None:
            raise AsrKdError(f"{args.model}: no senone priors in the bundle; pass --tree-dir")
        check_senone_count(str(args.model), num_senones, str(args.tree_dir or args.model), len(log_priors),
                           "senone priors")
    scp = args.scp or args.ark.with_suffix(".scp")
    count = write_model_outputs(bundle.model, features, args.ark, scp, log_priors, args.prior_scale, args.device)
    kind = f"log-likelihoods (prior scale {args.prior_scale})" if args.loglikes else "log-posteriors"
    print(f"kaldi-ark: {count} utterances of {kind}, {num_senones} columns -> {args.ark}, {scp}")
    return 0
