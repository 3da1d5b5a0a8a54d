"""``asr-kd lm``, ``asr-kd graph``, ``asr-kd decode``, ``asr-kd score``."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_kd.utils.errors import AsrKdError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lm",
        help="train an ARPA n-gram LM on training transcripts (KenLM lmplz)",
        description="Train a modified Kneser-Ney ARPA LM on the transcripts of <exp>/manifests/<subset>.tsv "
        "with KenLM's lmplz (build it with tools/install_kenlm.sh). Dev/test subsets are refused.",
    )
    p.add_argument("--exp", required=True, type=Path)
    p.add_argument("--subset", default="train-clean-5")
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="ARPA path (default <exp>/lm/<subset>.<order>gram.arpa)")
    p.add_argument("--exclude-utts", type=Path, default=None,
                   help="leave out the transcripts of the utterance ids in this file (e.g. the validation split, "
                   "<exp>/splits/<subset>/valid.txt)")
    p.set_defaults(func=run_lm)

    p = subparsers.add_parser(
        "graph",
        help="build (or reuse) the HCLG decoding graph",
        description="Compose H (HMMs of the senone tree) o C (triphone context) o L (lexicon, optional "
        "silence) o G (ARPA LM) into <graph-dir>/HCLG.fst. Reused when tree, lexicon, LM and options "
        "hash to the same key as the graph already there.",
    )
    p.add_argument("--exp", required=True, type=Path)
    p.add_argument("--arpa", required=True, type=Path, help="ARPA LM (plain or .gz)")
    p.add_argument("--tree", type=Path, default=None, help="default <exp>/tree/tree.json")
    p.add_argument("--lexicon", type=Path, default=None, help="default <exp>/lang/lexicon.txt")
    p.add_argument("--graph-dir", type=Path, default=None, help="default <exp>/graph_<arpa name>")
    p.add_argument("--silence-prob", type=float, default=0.5)
    p.add_argument("--self-loop-scale", type=float, default=0.1,
                   help="scale of HMM transition log-probs (Kaldi's; 0.1 pairs with --acoustic-scale 0.1)")
    p.set_defaults(func=run_graph)

    p = subparsers.add_parser(
        "decode",
        help="decode per-frame senone scores to words",
        description="Decode every utterance of an array store of (T, num_senones) float arrays with HCLG. "
        "Hybrid scoring: log-likelihood = log-posterior - prior_scale * log-prior. Writes <out>/hyp.txt "
        "(utt_id WORDS...), or with --lm-weights one lattice search per utterance and "
        "<out>/hyp_lmwt<W>.txt per weight, plus <out>/decode.json.",
    )
    p.add_argument("--graph-dir", required=True, type=Path)
    p.add_argument("--scores", required=True, type=Path, help="array store of (T, num_senones) per utterance")
    p.add_argument("--kind", choices=["logits", "log-posteriors", "log-likelihoods"], default="log-posteriors",
                   help="what the store holds (logits get a log-softmax; both need priors)")
    prior = p.add_mutually_exclusive_group()
    prior.add_argument("--tree-dir", type=Path, help="tree dir with senone_counts.npy for the priors")
    prior.add_argument("--log-priors", type=Path, help=".npy (num_senones,) log priors")
    p.add_argument("--prior-scale", type=float, default=1.0)
    p.add_argument("--acoustic-scale", type=float, default=0.1)
    p.add_argument("--beam", type=float, default=13.0)
    p.add_argument("--max-active", type=int, default=7000)
    p.add_argument("--lattice-beam", type=float, default=8.0)
    p.add_argument("--lm-weights", type=float, nargs="+", default=None,
                   help="rescore lattices at these LM weights (e.g. 6 8 10 12 14)")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=run_decode)

    p = subparsers.add_parser(
        "score",
        help="word error rate of hypothesis files",
        description="WER (jiwer) of each hypothesis file against the references; writes <hyp>.wer.json "
        "(overall + per utterance S/D/I) and <hyp>.per_utt.txt (Kaldi-style alignments) next to it.",
    )
    p.add_argument("--ref", required=True, type=Path, help="manifest .tsv or Kaldi text file")
    p.add_argument("--hyp", required=True, type=Path, nargs="+")
    p.set_defaults(func=run_score)


def run_lm(args: argparse.Namespace) -> int:
    from asr_kd.data import manifest_path, read_manifest
    from asr_kd.decoding.lm import train_arpa

    if args.subset.startswith(("dev", "test")):
        raise AsrKdError(f"refusing to train an LM on {args.subset}: use training transcripts only")
    utts = read_manifest(manifest_path(args.exp, args.subset))
    excluded = ""
    if args.exclude_utts is not None:
        from asr_kd.training.validation import read_utt_list

        held_out = set(read_utt_list(args.exclude_utts, "--exclude-utts list"))
        kept = [u for u in utts if u.utt_id not in held_out]
        excluded = f" ({len(utts) - len(kept)} in {args.exclude_utts} left out)"
        utts = kept
    out = args.out or Path(args.exp) / "lm" / f"{args.subset}.{args.order}gram.arpa"
    train_arpa([u.transcript for u in utts], out, order=args.order)
    print(f"lm: {args.order}-gram on {len(utts)} {args.subset} transcripts{excluded} -> {out}")
    return 0


def run_graph(args: argparse.Namespace) -> int:
    import json
    import time

    from asr_kd.alignment import SenoneTree
    from asr_kd.decoding.graph import INFO_FILE, GraphOptions, build_graph

    tree_path = args.tree or Path(args.exp) / "tree" / "tree.json"
    lexicon = args.lexicon or Path(args.exp) / "lang" / "lexicon.txt"
    name = args.arpa.name.removesuffix(".gz").removesuffix(".arpa")
    graph_dir = args.graph_dir or Path(args.exp) / f"graph_{name}"
    t0 = time.perf_counter()
    _, reused = build_graph(SenoneTree.load(tree_path), tree_path, lexicon, args.arpa, graph_dir,
                            GraphOptions(silence_prob=args.silence_prob, self_loop_scale=args.self_loop_scale))
    info = json.loads((graph_dir / INFO_FILE).read_text())
    state = "up to date" if reused else f"built in {time.perf_counter() - t0:.1f} s"
    print(f"graph: {graph_dir} {state}: {info['num_states']} states, {info['num_arcs']} arcs; "
          f"{info['lm_words_missing_from_lexicon']} LM words not in the lexicon")
    return 0


def _log_priors(args: argparse.Namespace):
    import numpy as np

    if args.kind == "log-likelihoods":
        return None
    if args.tree_dir is not None:
        from asr_kd.alignment import load_senone_log_priors

        return load_senone_log_priors(args.tree_dir)
    if args.log_priors is not None:
        return np.load(args.log_priors)
    raise AsrKdError(f"--kind {args.kind} needs senone priors: give --tree-dir or --log-priors")


def run_decode(args: argparse.Namespace) -> int:
    from asr_kd.decoding.decoder import DecoderConfig
    from asr_kd.decoding.graph import load_graph
    from asr_kd.decoding.run import decode_store

    config = DecoderConfig(acoustic_scale=args.acoustic_scale, beam=args.beam, max_active=args.max_active,
                           lattice_beam=args.lattice_beam)
    summary = decode_store(
        load_graph(args.graph_dir), args.scores, args.out, config, kind=args.kind, log_priors=_log_priors(args),
        prior_scale=args.prior_scale, lm_weights=args.lm_weights,
    )
    print(f"decode: {summary['utterances']} utterances ({summary['failed']} failed), RTF {summary['rtf']:.4f} "
          f"-> {', '.join(summary['hypothesis_files'])}")
    return 0


def run_score(args: argparse.Namespace) -> int:
    from asr_kd.scoring.wer import read_references, read_text, score

    refs = read_references(args.ref)
    results = []
    for hyp_path in args.hyp:
        stem = hyp_path.with_suffix("")
        s = score(refs, read_text(hyp_path), f"{stem}.wer.json", f"{stem}.per_utt.txt")
        results.append((s.wer, hyp_path))
        print(f"score: {hyp_path}: %WER {100 * s.wer:.2f} [ {s.substitutions + s.deletions + s.insertions} / "
              f"{s.ref_words}, {s.insertions} ins, {s.deletions} del, {s.substitutions} sub ] "
              f"{s.utterances} utterances, {s.missing_hypotheses} without hypothesis")
    if len(results) > 1:
        best_wer, best = min(results)
        print(f"score: best %WER {100 * best_wer:.2f} from {best}")
    return 0
