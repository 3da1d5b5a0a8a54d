"""``asr-kd lm``: produce the decoding LM (train, pocketsphinx's en-us trigram, or any ARPA) and its lexicon."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_kd.cli_options import options
from asr_kd.utils.errors import AsrKdError

SOURCES = ("train", "pocketsphinx-en-us", "arpa")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lm",
        help="produce the ARPA LM for decoding and a lexicon that covers it",
        description="Produce an ARPA LM from one source: 'train' trains a modified Kneser-Ney n-gram on the "
        "transcripts of <exp>/manifests/<subset>.tsv with KenLM's lmplz (tools/install_kenlm.sh; dev/test subsets "
        "are refused); 'pocketsphinx-en-us' converts the generic US-English trigram of the pocketsphinx package "
        "(72k words; back-off weights renormalised after its 16-bit quantisation); 'arpa' takes any ARPA file "
        "(e.g. LibriSpeech's 3-gram.pruned.1e-7.arpa). Words are upper-cased (<s>, </s>, <unk> kept). Optional "
        "relative-entropy pruning (SRILM's -prune). Writes OUT (ARPA), OUT's stem + .lexicon.txt (pronunciations "
        "of every LM word: the experiment lexicon, CMUdict, pocketsphinx's dictionary, the possessive rule), "
        ".no_pron.txt (LM words left without one) and .json (counts, normalisation check, evaluation).",
        parents=options("exp"),
    )
    p.add_argument("--source", choices=SOURCES, default="train")
    p.add_argument("--subset", default=None,
                   help="training subset whose transcripts to train on (required with --source train)")
    p.add_argument("--exclude-utts", type=Path, default=None,
                   help="file of utterance ids (first field per line) to leave out of the training text, "
                        "e.g. a held-out validation split (--source train)")
    p.add_argument("--arpa", type=Path, default=None, help="ARPA file to import (--source arpa; plain or .gz)")
    p.add_argument("--order", type=int, default=None,
                   help="--source train: the order to train (default 3); other sources: keep orders <= N "
                        "(e.g. 2: the model's bigram part, for a first-pass graph)")
    p.add_argument("--prune", type=float, default=None, metavar="THRESHOLD",
                   help="relative-entropy pruning threshold (e.g. 1e-7; SRILM's ngram -prune)")
    p.add_argument("--mix-with", type=Path, default=None, metavar="ARPA",
                   help="interpolate the source with this ARPA LM (SRILM's static -mix-lm: union of n-grams, "
                        "back-off weights recomputed)")
    p.add_argument("--mix-weight", type=float, default=0.5,
                   help="weight of the source model in --mix-with (choose it on held-out training text)")
    p.add_argument("--renormalise", action="store_true",
                   help="recompute every back-off weight so that each history sums to 1 (SRILM's -renorm; "
                        "always done for pocketsphinx-en-us)")
    p.add_argument("--eval-subset", nargs="+", default=[], metavar="SUBSET",
                   help="report OOV rate and perplexity on these subsets' transcripts (evaluation only)")
    p.add_argument("--lexicon", type=Path, default=None,
                   help="pronunciations to prefer for LM words (default <exp>/lang/lexicon.txt when present)")
    p.add_argument("--pocketsphinx-copy", type=Path, default=None, metavar="ARPA",
                   help="also write a lower-case copy of the LM that pocketsphinx can use with its own dictionary")
    p.add_argument("--out", type=Path, default=None, help="ARPA path (default <exp>/lm/<name>.arpa)")
    p.set_defaults(func=run_lm)


def _default_name(args: argparse.Namespace, order: int) -> str:
    if args.source == "train":
        name = f"{args.subset}.{order}gram"
    elif args.source == "pocketsphinx-en-us":
        name = f"en-us.{order}gram"
    else:
        name = args.arpa.name.removesuffix(".gz").removesuffix(".arpa")
    return name + (f".pruned{args.prune:g}" if args.prune else "")


def _train_text(args: argparse.Namespace) -> list[str]:
    from asr_kd.data import read_manifest
    from asr_kd.experiment import Experiment

    if args.subset.startswith(("dev", "test")):
        raise AsrKdError(f"refusing to train an LM on {args.subset}: use training transcripts only")
    utts = read_manifest(Experiment(args.exp).manifest(args.subset))
    if args.exclude_utts is not None:
        from asr_kd.lm.build import read_utterance_ids

        excluded = read_utterance_ids(args.exclude_utts)
        unknown = excluded - {u.utt_id for u in utts}
        if unknown:
            raise AsrKdError(f"{args.exclude_utts}: {len(unknown)} utterance ids are not in {args.subset}, "
                             f"e.g. {sorted(unknown)[0]}")
        utts = [u for u in utts if u.utt_id not in excluded]
        print(f"lm: {len(utts)} {args.subset} transcripts ({len(excluded)} in {args.exclude_utts} left out)")
    return [u.transcript for u in utts]


def run_lm(args: argparse.Namespace) -> int:
    from asr_kd.experiment import Experiment
    from asr_kd.lm.build import LmRequest, produce_lm

    if args.source == "arpa" and args.arpa is None:
        raise AsrKdError("--source arpa needs --arpa FILE")
    if args.source != "arpa" and args.arpa is not None:
        raise AsrKdError("--arpa is only for --source arpa")
    if args.source != "train" and args.exclude_utts is not None:
        raise AsrKdError("--exclude-utts is only for --source train")
    if args.source == "train" and args.subset is None:
        raise AsrKdError("--source train needs --subset: the training subset whose transcripts to use")
    order = args.order or 3
    out = args.out or Experiment(args.exp).lm_dir / f"{_default_name(args, order)}.arpa"
    base_lexicon = args.lexicon or Experiment(args.exp).lexicon
    request = LmRequest(
        source=args.source,
        out=out,
        train_text=_train_text(args) if args.source == "train" else None,
        train_order=order,
        arpa=args.arpa,
        max_order=args.order if args.source != "train" else None,
        prune=args.prune,
        renormalise=args.renormalise,
        mix_with=args.mix_with,
        mix_weight=args.mix_weight,
        base_lexicon=base_lexicon if (args.lexicon or base_lexicon.exists()) else None,
        eval_subsets={s: _eval_text(args.exp, s) for s in args.eval_subset},
        pocketsphinx_copy=args.pocketsphinx_copy,
    )
    report = produce_lm(request)
    print(report.summary_line())
    return 0


def _eval_text(exp: Path, subset: str) -> list[list[str]]:
    from asr_kd.data import read_manifest
    from asr_kd.experiment import Experiment

    return [u.transcript.split() for u in read_manifest(Experiment(exp).manifest(subset))]
