"""Decoding speed: HCLG graph build time and search real-time factor (goal RTF <= 0.1).

On the tiny data: a small aligner (``asr-kd tree``, seconds) gives the senone tree and the
training alignment; the LM is a 3-gram of the tiny training transcripts (KenLM ``lmplz``; an
add-one unigram written here when lmplz is not built, see ``lm`` in the result); the graph is
H o C o L o G over the tiny lexicon. The scores are *real model posteriors*: a ``mini`` DNN
trained for ``--train-steps`` minibatches on the alignment (seconds; weak, so the search is
less peaky than with a good model, which makes the RTF pessimistic rather than flattering),
run over the tiny dev set and decoded with :func:`decode_store` (Kaldi's default beams).

Figures: ``graph_build_s`` (wall), ``graph_states``/``graph_arcs``, ``rtf`` / ``cpu_rtf``
(search wall / CPU seconds per audio second, best path), ``lattice_rtf`` (lattice search plus
N-best extraction, ``asr-kd decode --nbest``) and ``nbest_rtf`` (the N-best extraction alone),
``wer`` of the best path (a sanity check, not a goal: tiny LM, barely trained model).

``--graph-dir G --scores S --tree-dir T --ref R`` instead compares the searches on real scores
of a prepared experiment (the first ``--max-utts`` utterances of ``S``): best path at
``--beam``, and lattice + N-best at each ``--lattice-beams`` value, with the WER of each at the
search setting and ``nbest_exact``, the fraction of (utterance, LM weight) cases in which the
N-best list's best hypothesis (with the Kaldi-grid coverage of ``asr-kd decode --nbest``) is the
raw lattice's exact best path at that LM weight.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import DEV, TRAIN, emit, tiny_exp


def write_arpa(transcripts: list[str], path: Path) -> str:
    """A 3-gram from lmplz, else an add-one unigram ARPA of ``transcripts``; returns which."""
    from asr_kd.lm.kenlm import find_lmplz, train_arpa
    from asr_kd.utils.errors import AsrKdError

    try:
        find_lmplz()
    except AsrKdError:
        pass  # a fresh clone has no KenLM build; the benchmark still runs
    else:
        train_arpa(transcripts, path, order=3)
        return "3-gram (lmplz)"
    counts = Counter(w for t in transcripts for w in [*t.split(), "</s>"])
    total = sum(counts.values()) + len(counts)
    entries = ["-99\t<s>"] + [f"{math.log10((c + 1) / total):.6f}\t{w}" for w, c in sorted(counts.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"\\data\\\nngram 1={len(entries)}\n\n\\1-grams:\n" + "\n".join(entries) + "\n\n\\end\\\n")
    return "unigram (no lmplz)"


def train_posteriors(exp: Path, num_senones: int, steps: int, out_dir: Path) -> None:
    """Train a ``mini`` DNN for ``steps`` minibatches on the training alignment; write dev log-posteriors."""
    import torch
    import torch.nn.functional as F

    from asr_kd.features.dataset import FeatureSet, FrameTable
    from asr_kd.models import build
    from asr_kd.training.posteriors import write_log_posteriors
    from asr_kd.utils.array_store import ArrayStore

    torch.manual_seed(0)
    model = build("dnn", "mini", input_dim=40, num_senones=num_senones)
    table = FrameTable(FeatureSet(exp / "feats" / TRAIN), targets=ArrayStore(exp / "ali" / TRAIN / "senones"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    done = 0
    while done < steps:
        for index in table.minibatches(256, seed=done):
            loss = F.cross_entropy(model(table.context_windows(index, *model.context)), table.targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    write_log_posteriors(model, {"num_senones": num_senones}, FeatureSet(exp / "feats" / DEV), out_dir,
                         dtype="float32")


def compare_searches(args: argparse.Namespace) -> dict:
    """Best path vs lattice + N-best on the same real scores (see the module docstring)."""
    from asr_kd.alignment import load_senone_log_priors
    from asr_kd.decoding import Decoder, DecoderConfig, NoPathError, ScoringSetting, lattice_best_path, load_graph
    from asr_kd.decoding.nbest import best_hypothesis, kaldi_grid
    from asr_kd.decoding.run import hmm_log_likelihoods
    from asr_kd.scoring.wer import align_words, read_references, summarize
    from asr_kd.utils.array_store import ArrayStore

    graph = load_graph(args.graph_dir)
    store = ArrayStore(args.scores)
    log_priors = load_senone_log_priors(args.tree_dir)
    utt_ids = list(store)[: args.max_utts]
    scores = {u: hmm_log_likelihoods(store[u], "log-posteriors", log_priors, args.prior_scale) for u in utt_ids}
    refs = {u: t for u, t in read_references(args.ref).items() if u in scores}
    audio_s = sum(len(x) for x in scores.values()) * 0.01
    result = {"stage": "decode", "utterances": len(utt_ids), "audio_s": round(audio_s, 1),
              "graph_states": graph.info["num_states"], "beam": args.beam}

    def wer(hyps: dict[str, str]) -> float:
        return round(summarize(align_words(refs, hyps)).wer, 4)

    best = Decoder(graph, DecoderConfig(beam=args.beam))
    start, hyps = time.process_time(), {}
    for u, loglik in scores.items():
        hyps[u] = " ".join(best.best_path(loglik, u).words)
    result.update(best_path_cpu_rtf=round((time.process_time() - start) / audio_s, 4), best_path_wer=wer(hyps))
    for lattice_beam in args.lattice_beams:
        decoder = Decoder(graph, DecoderConfig(beam=args.beam, lattice_beam=lattice_beam, nbest_beam=lattice_beam))
        search_s = nbest_s = 0.0
        hyps, exact, cases, sizes = {}, 0, 0, []
        for u, loglik in scores.items():
            start = time.process_time()
            try:
                lattice = decoder.lattice(loglik, u)
            except NoPathError:
                continue
            middle = time.process_time()
            nbest = decoder.nbest(lattice, args.nbest, log_priors, u, kaldi_grid(args.prior_scale), args.prior_scale)
            search_s += middle - start
            nbest_s += time.process_time() - middle
            hyps[u], sizes = " ".join(nbest[0].words), [*sizes, len(nbest)]
            for lm_weight in (7.0, 10.0, 14.0):
                chosen = best_hypothesis(nbest, ScoringSetting(lm_weight, 0.0, args.prior_scale), args.prior_scale)
                exact += chosen.words == lattice_best_path(lattice, lm_weight, graph.words).words
                cases += 1
        tag = f"lb{lattice_beam:g}"
        result.update({f"{tag}_lattice_cpu_rtf": round(search_s / audio_s, 4),
                       f"{tag}_nbest_cpu_rtf": round(nbest_s / audio_s, 4), f"{tag}_wer": wer(hyps),
                       f"{tag}_nbest_exact": round(exact / max(cases, 1), 4),
                       f"{tag}_mean_nbest": round(sum(sizes) / max(len(sizes), 1), 1)})
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=300, help="DNN minibatches before decoding")
    parser.add_argument("--nbest", type=int, default=100, help="N-best list size of the lattice search")
    parser.add_argument("--no-lattice", action="store_true", help="skip the (slow) lattice search")
    real = parser.add_argument_group("real scores (instead of the tiny data)")
    real.add_argument("--graph-dir", type=Path)
    real.add_argument("--scores", type=Path, help="array store of log-posteriors")
    real.add_argument("--tree-dir", type=Path)
    real.add_argument("--ref", type=Path, help="references (manifest .tsv or text)")
    real.add_argument("--max-utts", type=int, default=50)
    real.add_argument("--beam", type=float, default=13.0)
    real.add_argument("--lattice-beams", type=float, nargs="+", default=[4.0, 6.0, 8.0])
    real.add_argument("--prior-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.graph_dir is not None:
        return compare_searches(args)

    from asr_kd.alignment import SenoneTree, load_senone_log_priors
    from asr_kd.data import manifest_path, read_manifest
    from asr_kd.decoding import DecoderConfig, build_graph, decode_store, load_graph
    from asr_kd.scoring.wer import read_references, read_text, score

    exp = tiny_exp((TRAIN, DEV), tree=True)
    lm = write_arpa([u.transcript for u in read_manifest(manifest_path(exp, TRAIN))], exp / "lm" / "train.arpa")
    tree_path = exp / "tree" / "tree.json"
    tree = SenoneTree.load(tree_path)
    start = time.perf_counter()
    graph_dir, _ = build_graph(tree, tree_path, exp / "lang" / "lexicon.txt", exp / "lm" / "train.arpa",
                               exp / "graph")
    graph_s = time.perf_counter() - start
    graph = load_graph(graph_dir)
    train_posteriors(exp, tree.num_senones, args.train_steps, exp / "post" / DEV)
    decode = dict(graph=graph, scores_dir=exp / "post" / DEV, config=DecoderConfig(),
                  log_priors=load_senone_log_priors(exp / "tree"))
    best = decode_store(**decode, out_dir=exp / "decode")
    lattice = None
    if not args.no_lattice:
        lattice = decode_store(**decode, out_dir=exp / "decode_lattice", nbest=args.nbest)
    wer = score(read_references(manifest_path(exp, DEV)), read_text(exp / "decode" / "hyp.txt"),
                exp / "decode" / "wer.json", exp / "decode" / "per_utt.txt").wer
    return {
        "stage": "decode",
        "lm": lm,
        "graph_build_s": round(graph_s, 2),
        "graph_states": graph.info["num_states"],
        "graph_arcs": graph.info["num_arcs"],
        "scores": f"dnn[mini] posteriors after {args.train_steps} steps",
        "audio_s": round(best["frames"] * 0.01, 1),
        "failed": best["failed"],
        "rtf": round(best["rtf"], 4),
        "cpu_rtf": round(best["cpu_rtf"], 4),
        "lattice_rtf": None if lattice is None else round(lattice["rtf"], 4),
        "nbest_rtf": None if lattice is None else round(lattice["nbest_rtf"], 4),
        "goal": "rtf <= 0.1",
        "wer": round(wer, 3),
    }


if __name__ == "__main__":
    emit(main())
