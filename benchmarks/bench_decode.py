"""Decoding speed: HCLG graph build time and search real-time factor (goal RTF <= 0.1).

On the tiny data: a small aligner (``asr-kd tree``, seconds) gives the senone tree and the
training alignment; the LM is a 3-gram of the tiny training transcripts (KenLM ``lmplz``; an
add-one unigram written here when lmplz is not built, see ``lm`` in the result); the graph is
H o C o L o G over the tiny lexicon. The scores are *real model posteriors*: a ``mini`` DNN
trained for ``--train-steps`` minibatches on the alignment (seconds; weak, so the search is
less peaky than with a good model, which makes the RTF pessimistic rather than flattering),
run over the tiny dev set and decoded with :func:`decode_store` (Kaldi's default beams).

Figures: ``graph_build_s`` (wall), ``graph_states``/``graph_arcs``, ``rtf`` / ``cpu_rtf``
(search wall / CPU seconds per audio second, best path), ``lattice_rtf`` (lattice search and
rescoring at one LM weight), ``wer`` of the best path (a sanity check, not a goal: tiny LM,
barely trained model).
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-steps", type=int, default=300, help="DNN minibatches before decoding")
    parser.add_argument("--lm-weight", type=float, default=10.0, help="LM weight of the lattice search")
    parser.add_argument("--no-lattice", action="store_true", help="skip the (slow) lattice search")
    args = parser.parse_args(argv)

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
    lattice_rtf = None
    if not args.no_lattice:
        lattice_rtf = decode_store(**decode, out_dir=exp / "decode_lattice", lm_weights=[args.lm_weight])["rtf"]
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
        "lattice_rtf": None if lattice_rtf is None else round(lattice_rtf, 4),
        "goal": "rtf <= 0.1",
        "wer": round(wer, 3),
    }


if __name__ == "__main__":
    emit(main())
