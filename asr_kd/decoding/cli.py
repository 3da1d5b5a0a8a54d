"""``asr-kd graph``, ``asr-kd decode``, ``asr-kd rescore`` (``asr-kd lm``: :mod:`asr_kd.lm.cli`, ``asr-kd score``:
:mod:`asr_kd.scoring.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_kd.cli_options import add_field, options
from asr_kd.decoding.decoder import DecoderConfig
from asr_kd.decoding.hclg import GraphOptions
from asr_kd.utils.errors import AsrKdError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "graph",
        help="build (or reuse) the HCLG decoding graph",
        description="Compose H (HMMs of the senone tree) o C (triphone context) o L (lexicon, optional "
        "silence) o G (ARPA LM) into <graph-dir>/HCLG.fst. Reused when tree, lexicon, LM and options "
        "hash to the same key as the graph already there.",
        parents=options("exp"),
    )
    p.add_argument("--arpa", required=True, type=Path, help="ARPA LM (plain or .gz)")
    p.add_argument("--tree", type=Path, default=None, help="default <exp>/tree/tree.json")
    p.add_argument("--lexicon", type=Path, default=None,
                   help="default: the lexicon `asr-kd lm` wrote next to the ARPA (<stem>.lexicon.txt, covering "
                        "the LM's words) when present, else <exp>/lang/lexicon.txt")
    p.add_argument("--graph-dir", type=Path, default=None, help="default <exp>/graph_<arpa name>")
    add_field(p, "--silence-prob", GraphOptions, help="optional-silence probability between words")
    add_field(p, "--self-loop-scale", GraphOptions,
              help="scale of HMM transition log-probs (Kaldi's; 0.1 pairs with --acoustic-scale 0.1)")
    p.set_defaults(func=run_graph)

    p = subparsers.add_parser(
        "decode",
        help="decode per-frame senone scores to words",
        description="Decode every utterance of an array store of (T, num_senones) float arrays with HCLG. "
        "Hybrid scoring: log-likelihood = log-posterior - prior_scale * log-prior. Writes <out>/hyp.txt "
        "(utt_id WORDS...) and <out>/decode.json; with --nbest N a lattice search per utterance (Kaldi's "
        "LatticeFasterDecoder: beam, max-active, lattice beam) and "
        "<out>/nbest.jsonl.gz, the N best word sequences with graph, acoustic and prior costs apart, for "
        "`asr-kd score --nbest` (LM weight / insertion penalty / prior scale tuning) and `asr-kd rescore`.",
        parents=options("utts", "prior_scale"),
    )
    p.add_argument("--graph-dir", required=True, type=Path)
    p.add_argument("--scores", required=True, type=Path, help="array store of (T, num_senones) per utterance")
    p.add_argument("--kind", choices=["logits", "log-posteriors", "log-likelihoods"], default="log-posteriors",
                   help="what the store holds (logits get a log-softmax; both need priors)")
    prior = p.add_mutually_exclusive_group()
    prior.add_argument("--tree-dir", type=Path, help="tree dir with senone_counts.npy for the priors")
    prior.add_argument("--log-priors", type=Path, help=".npy (num_senones,) log priors")
    add_field(p, "--acoustic-scale", DecoderConfig, help="log-likelihood scale (LM weight = 1 / acoustic scale)")
    add_field(p, "--beam", DecoderConfig, help="search beam")
    add_field(p, "--max-active", DecoderConfig, help="most active states per frame")
    add_field(p, "--lattice-beam", DecoderConfig, help="lattice pruning beam (with --nbest)")
    p.add_argument("--jobs", type=int, default=1,
                   help="decoding processes (they share the graph's memory; the output does not depend on it)")
    p.add_argument("--nbest", type=int, default=0, metavar="N",
                   help="lattice search; write the N best word sequences per utterance (e.g. 100)")
    p.add_argument("--nbest-beam", type=float, default=None,
                   help="keep word sequences within this cost of the best (default: --lattice-beam)")
    p.add_argument("--no-coverage", action="store_true",
                   help="N-best lists without the best paths at Kaldi's LMWT 7..17 x WIP 0/0.5/1 grid")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=run_decode)

    p = subparsers.add_parser(
        "priors",
        help="senone log-priors from a model's mean posterior (Kaldi's nnet-adjust-priors), for decode --log-priors",
        description="Average the posteriors of a log-posterior store (`asr-kd posteriors`) over its frames and "
        "write their log as .npy (floored at 1e-8, renormalised): the priors a model trained on soft targets "
        "divides by instead of the alignment's senone counts. Use frames the model was not trained on and "
        "that are not reported (the held-out validation split), never the test set.",
        parents=options("utts"),
    )
    p.add_argument("--scores", required=True, type=Path, help="array store of (T, num_senones) log-posteriors")
    p.add_argument("--out", required=True, type=Path, help=".npy file to write")
    p.set_defaults(func=run_priors)

    p = subparsers.add_parser(
        "rescore",
        help="LM rescoring of N-best lists (subtract the decoding LM, add another)",
        description="Kaldi lmrescore.sh on N-best lists: each hypothesis' graph cost loses its cost under the "
        "graph's own LM (--old-arpa, checked against the graph's hash) and gains its cost under --new-arpa "
        "(both through G built with arpa2fst, cached in --cache-dir). Writes the rescored N-best file.",
    )
    p.add_argument("--nbest", required=True, type=Path, help="nbest.jsonl.gz from `asr-kd decode --nbest`")
    p.add_argument("--graph-dir", required=True, type=Path, help="the graph the N-best lists were decoded with")
    p.add_argument("--old-arpa", required=True, type=Path, help="the ARPA LM the graph was built from")
    p.add_argument("--new-arpa", required=True, type=Path, help="the ARPA LM to rescore with")
    p.add_argument("--cache-dir", type=Path, default=None, help="where G FSTs are cached (default <graph-dir>/rescore)")
    p.add_argument("--out", required=True, type=Path, help="rescored N-best file (.jsonl.gz)")
    p.set_defaults(func=run_rescore)



def run_graph(args: argparse.Namespace) -> int:
    import json
    import time

    from asr_kd.alignment import SenoneTree
    from asr_kd.decoding.hclg import INFO_FILE, build_graph
    from asr_kd.experiment import Experiment

    tree_path = args.tree or Experiment(args.exp).tree_json
    lexicon = args.lexicon or default_lexicon(args.arpa, args.exp)
    name = args.arpa.name.removesuffix(".gz").removesuffix(".arpa")
    graph_dir = args.graph_dir or Experiment(args.exp).graph_dir(name)
    t0 = time.perf_counter()
    _, reused = build_graph(SenoneTree.load(tree_path), tree_path, lexicon, args.arpa, graph_dir,
                            GraphOptions(silence_prob=args.silence_prob, self_loop_scale=args.self_loop_scale))
    info = json.loads((graph_dir / INFO_FILE).read_text())
    state = "up to date" if reused else f"built in {time.perf_counter() - t0:.1f} s"
    print(f"graph: {graph_dir} {state}: {info['num_states']} states, {info['num_arcs']} arcs; lexicon {lexicon}: "
          f"{info['lm_words_missing_from_lexicon']} LM words not in it")
    return 0


def default_lexicon(arpa: Path, exp: Path) -> Path:
    """The lexicon ``asr-kd lm`` wrote for ``arpa`` if there is one, else the experiment's."""
    from asr_kd.experiment import Experiment
    from asr_kd.lm.build import side_files

    covering = side_files(arpa).lexicon
    return covering if covering.exists() else Experiment(exp).lexicon


def _log_priors(args: argparse.Namespace):
    if args.kind == "log-likelihoods":
        return None
    if args.tree_dir is not None:
        from asr_kd.alignment import load_senone_log_priors

        return load_senone_log_priors(args.tree_dir)
    if args.log_priors is not None:
        from asr_kd.alignment.priors import load_log_priors

        return load_log_priors(args.log_priors)
    raise AsrKdError(f"--kind {args.kind} needs senone priors: give --tree-dir or --log-priors")


def run_decode(args: argparse.Namespace) -> int:
    from asr_kd.decoding.hclg import load_graph
    from asr_kd.decoding.store_decoding import decode_store
    from asr_kd.training.validation import read_utt_list

    if args.nbest < 0:
        raise AsrKdError(f"--nbest must be >= 0, got {args.nbest}")
    if args.jobs < 1:
        raise AsrKdError(f"--jobs must be >= 1, got {args.jobs}")
    config = DecoderConfig(acoustic_scale=args.acoustic_scale, beam=args.beam, max_active=args.max_active,
                           lattice_beam=args.lattice_beam,
                           nbest_beam=args.lattice_beam if args.nbest_beam is None else args.nbest_beam)
    log_priors = _log_priors(args)  # before the graph: a bad priors file fails in a second, not after a load
    summary = decode_store(
        load_graph(args.graph_dir), args.scores, args.out, config, kind=args.kind, log_priors=log_priors,
        prior_scale=args.prior_scale, nbest=args.nbest,
        utt_ids=read_utt_list(args.utts, "utterance list (--utts)") if args.utts else None,
        coverage=[] if args.no_coverage else None, jobs=args.jobs,
    )
    outputs = [*summary["hypothesis_files"], *([summary["nbest_file"]] if args.nbest else [])]
    print(f"decode: {summary['utterances']} utterances ({summary['failed']} failed), RTF {summary['rtf']:.4f} "
          f"-> {', '.join(outputs)}")
    return 0


def run_priors(args: argparse.Namespace) -> int:
    import numpy as np

    from asr_kd.alignment.priors import mean_posterior_log_priors, save_log_priors
    from asr_kd.training.validation import read_utt_list

    utt_ids = read_utt_list(args.utts, "utterance list (--utts)") if args.utts else None
    log_priors, frames = mean_posterior_log_priors(args.scores, utt_ids)
    save_log_priors(args.out, log_priors)
    entropy = float(-(np.exp(log_priors) * log_priors).sum())
    print(f"priors: mean posterior of {frames} frames of {args.scores}: {len(log_priors)} senones, entropy "
          f"{entropy:.3f} nats -> {args.out}")
    return 0


def run_rescore(args: argparse.Namespace) -> int:
    import time

    from asr_kd.decoding.hclg import file_sha256, load_graph
    from asr_kd.decoding.nbest import read_nbest, write_nbest
    from asr_kd.decoding.rescore import load_grammar, rescore

    graph = load_graph(args.graph_dir)
    graph_arpa = graph.info.get("key", {}).get("arpa_sha256")
    if file_sha256(args.old_arpa) != graph_arpa:
        raise AsrKdError(f"{args.old_arpa}: not the LM {args.graph_dir} was built from (sha256 differs)")
    lists = read_nbest(args.nbest)
    if lists.header.get("graph_key") != graph.info.get("key"):
        raise AsrKdError(f"{args.nbest}: decoded with another graph than {args.graph_dir}")
    cache = args.cache_dir or args.graph_dir / "rescore"
    t0 = time.perf_counter()
    old, new = (load_grammar(a, graph.words, cache) for a in (args.old_arpa, args.new_arpa))
    t1 = time.perf_counter()
    rescored, counts = rescore(lists, old, new)
    write_nbest(args.out, rescored)
    print(f"rescore: {len(lists.utterances)} utterances, {counts['hypotheses']} hypotheses "
          f"({counts['dropped']} not in the new LM, {counts['utterances_emptied']} utterances left empty); "
          f"G ready in {t1 - t0:.1f} s, rescoring {time.perf_counter() - t1:.1f} s -> {args.out}")
    return 0
