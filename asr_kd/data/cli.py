"""``asr-kd prepare`` and ``asr-kd subset``."""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

from asr_kd.cli_options import options
from asr_kd.data.lexicon import Lexicon
from asr_kd.utils.atomic import atomic_open, write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="scan a LibriSpeech root, write manifests and the lexicon",
        description="Scan <root>/<subset> folders in the official LibriSpeech layout, validate every "
        "audio/transcript file (every FLAC is decoded in full, over --jobs processes), then write "
        "<exp>/manifests/<subset>.tsv, <exp>/lang/lexicon.txt and <exp>/lang/oov_words.tsv (every word not "
        "in the lexicon, its token count per subset and the pronunciation the OOV policy gave it); nothing "
        "is written unless every subset passes. Reports hours, utterances, frames and OOV rates. "
        "NAME=PART+PART+... scans several folders "
        "into one manifest <exp>/manifests/NAME.tsv (utterance ids must be unique across the parts), "
        "e.g. LibriSpeech 960 h: --subsets train-960=train-clean-100+train-clean-360+train-other-500 "
        "dev-clean; later stages then use the subset name train-960.",
        parents=options("exp", "jobs"),
    )
    p.add_argument("--root", required=True, type=Path, help="LibriSpeech root (holds SPEAKERS.TXT)")
    p.add_argument("--subsets", required=True, nargs="+", metavar="SUBSET|NAME=PART+PART",
                   help="subset folder names, e.g. train-clean-5 dev-clean-2, or a named union of folders, "
                   "e.g. train-960=train-clean-100+train-clean-360+train-other-500")
    p.add_argument("--lexicon", type=Path, help="LibriSpeech-format lexicon (default: CMUdict)")
    p.add_argument("--skip-bad", action="store_true", help="skip and count bad utterances instead of failing")
    p.set_defaults(func=run_prepare)

    s = subparsers.add_parser(
        "subset",
        help="select a reproducible fraction of a manifest's utterances",
        description="Write a manifest holding ceil(fraction * N) utterances chosen with a seeded RNG.",
    )
    s.add_argument("--manifest", required=True, type=Path)
    s.add_argument("--fraction", required=True, type=float, help="e.g. 0.03 for the paper's 3%% experiment")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, type=Path, help="output manifest path")
    s.set_defaults(func=run_subset)


def run_prepare(args: argparse.Namespace) -> int:
    from asr_kd.data import load_lexicon, oov_report, scan_union, summarize, write_manifest
    from asr_kd.data.librispeech import parse_subset_specs
    from asr_kd.experiment import Experiment

    exp = Experiment(args.exp)

    specs = parse_subset_specs(args.subsets)  # every entry checked before any scan
    jobs = args.jobs or os.cpu_count() or 1
    all_utts = {}
    reports = {}
    # everything is read and checked before anything is written: a bad later subset leaves no
    # manifests of the earlier ones behind
    for subset, parts in specs.items():
        all_utts[subset], reports[subset] = scan_union(args.root, subset, parts, skip_bad=args.skip_bad, jobs=jobs)
    words = {w for utts in all_utts.values() for u in utts for w in u.words}
    lexicon = load_lexicon(args.lexicon, words=None if args.lexicon else words)
    oov_counts = {subset: Counter(w for u in utts for w in u.words if lexicon.is_oov(w))
                  for subset, utts in all_utts.items()}
    for subset, utts in all_utts.items():
        write_manifest(exp.manifest(subset), utts)
    summary = {}
    for subset, utts in all_utts.items():
        size = summarize(utts)
        oov = oov_report((u.transcript for u in utts), lexicon)
        summary[subset] = {
            "utterances": size.utterances, "hours": round(size.hours, 4), "frames": size.frames,
            "speakers": len({u.speaker for u in utts}),
            "oov_token_rate": round(oov.token_rate, 5), "oov_type_rate": round(oov.type_rate, 5),
            "oov_tokens": oov.oov_tokens, "spoken_noise_tokens": oov.spn_tokens,
            "skipped": {k: len(v) for k, v in reports[subset].skipped.items()},
            "skipped_items": reports[subset].skipped,
            "parts": specs[subset],
        }
        num_skipped = reports[subset].num_skipped
        skipped = f", skipped {num_skipped} ({summary[subset]['skipped']})" if num_skipped else ""
        print(
            f"{subset}: {size}, {summary[subset]['speakers']} speakers, OOV {100 * oov.token_rate:.2f}% of tokens "
            f"({oov.oov_types}/{oov.types} types; {oov.spn_tokens} tokens -> SPN){skipped}"
        )
    lexicon.write(exp.lexicon)
    write_oov_words(exp.oov_words, oov_counts, lexicon)
    write_json(exp.prepare_summary, summary)
    num_oov = len(set().union(*oov_counts.values()))
    print(f"prepare: wrote {len(all_utts)} manifests to {exp.manifests_dir}, lexicon of "
          f"{len(lexicon) + len(lexicon.oov_words)} words to {exp.lexicon}, {num_oov} OOV words to "
          f"{exp.oov_words}")
    return 0


def write_oov_words(path: Path, counts: dict[str, Counter], lexicon: Lexicon) -> None:
    """``word <TAB> pronunciation given by the OOV policy <TAB> tokens per subset...``, most frequent first."""
    subsets = list(counts)
    total = sum(counts.values(), Counter())
    with atomic_open(path) as f:
        f.write("\t".join(["word", "pronunciation", *subsets]) + "\n")
        for word, _ in sorted(total.items(), key=lambda item: (-item[1], item[0])):
            pron = " | ".join(" ".join(p) for p in lexicon.lookup(word))
            f.write("\t".join([word, pron, *(str(counts[s][word]) for s in subsets)]) + "\n")


def run_subset(args: argparse.Namespace) -> int:
    from asr_kd.data import read_manifest, select_fraction, summarize, write_manifest

    utts = read_manifest(args.manifest)
    chosen = select_fraction(utts, args.fraction, args.seed)
    write_manifest(args.out, chosen)
    print(f"subset: {summarize(chosen)} of {summarize(utts)} (fraction {args.fraction}, seed {args.seed}) "
          f"-> {args.out}")
    return 0
