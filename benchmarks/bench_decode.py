"""Decoding speed: HCLG graph build time and search real-time factor (goal RTF <= 0.1).

On the tiny data: a small aligner (``asr-kd tree``, seconds) gives the senone tree and the
training alignment; the LM is a 3-gram of the tiny training transcripts (KenLM ``lmplz``; an
add-one unigram written here when lmplz is not built, see ``lm`` in the result); the graph is
H o C o L o G over the tiny lexicon. The scores are *real model posteriors*: a ``mini`` DNN
trained for ``--train-steps`` minibatches on the alignment (seconds; weak, so the search is
less peaky than with a good model, which makes the RTF pessimistic rather than flattering),
run over the tiny dev set and decoded with :func:`decode_store` (Kaldi's default beams).

Figures: ``graph_build_s`` (wall), ``graph_states``/``graph_arcs``, ``rtf`` / ``cpu_rtf``
(search wall / CPU seconds per audio second, best path: kaldi-decoder's ``FasterDecoder``),
``lattice_rtf`` / ``lattice_cpu_rtf`` (our lattice search plus N-best extraction, ``asr-kd decode
--nbest``), ``lattice_over_best_path`` (their CPU ratio), ``nbest_rtf`` (the N-best extraction
alone), ``wer`` of the best path (a sanity check, not a goal: tiny LM, barely trained model).

``--graph-dir G --scores S --tree-dir T --ref DEV_MANIFEST --work-dir W`` instead compares the
searches on real scores of a prepared experiment, through the commands a user runs (``asr-kd
decode --jobs``, ``asr-kd score``, each a child process whose peak RSS is measured): the reported
set is ``--utts`` random utterances (``--seed``) of half the dev speakers (alternate speakers in
id order), the tuning set as many of the other half. Per ``--beams`` pair (beam:max-active):
the best path (``<tag>_best_path_*``) and, per ``--lattice-beams`` value, the lattice search +
``--nbest`` lists (``<tag>_lb<L>_*``): CPU RTF (search + N-best, and the N-best part alone),
its ratio to the best path's, peak RSS, raw-lattice arcs per frame, WER at the search's own
setting (``untuned``, LMWT 10) and tuned (LMWT 7..17 x WIP 0/0.5/1 chosen on the tuning set,
``tuned_lmwt_wip``). Also the time to make (or open) the graph's array cache and the numba
compile time: a fresh process's first lattice with an empty numba cache, and with the cache.
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
    from asr_kd.models.posteriors import write_log_posteriors
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


def split_dev(manifest: Path, num_utts: int, seed: int, available: set[str]) -> tuple[list[str], list[str]]:
    """``num_utts`` random utterances (``seed``) of each half of the speakers (alternate speakers in id order):
    the reported set from half A, the tuning set from half B (as ``local/decode_study.sh`` splits dev).
    Only utterances in ``available`` (those with scores) are drawn."""
    import numpy as np

    from asr_kd.data import read_manifest

    utts = [u for u in read_manifest(manifest) if u.utt_id in available]
    speakers = sorted({u.speaker for u in utts})
    half_a = set(speakers[::2])
    rng = np.random.default_rng(seed)
    halves = [[u.utt_id for u in utts if (u.speaker in half_a) == first] for first in (True, False)]
    return tuple(sorted(rng.choice(h, min(num_utts, len(h)), replace=False).tolist()) for h in halves)


def run_measured(argv: list[str], log: Path) -> float:
    """Run ``argv`` (stdout + stderr to ``log``); its peak RSS in MB (its whole process tree)."""
    import os
    import subprocess

    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed; see {log}")
    return usage.ru_maxrss / 1024


def numba_compile_s(graph_dir: Path, scores: Path, tree_dir: Path, cache_dir: Path) -> float:
    """Seconds from a fresh process to the first lattice of one utterance, numba's cache in ``cache_dir``."""
    import os
    import subprocess
    import sys

    code = (
        "import time, sys; t = time.perf_counter()\n"
        "from asr_kd.alignment import load_senone_log_priors\n"
        "from asr_kd.decoding import Decoder, DecoderConfig, load_graph\n"
        "from asr_kd.decoding.store_decoding import hmm_log_likelihoods\n"
        "from asr_kd.utils.array_store import ArrayStore\n"
        "store = ArrayStore(sys.argv[2]); u = min(store, key=lambda k: len(store[k]))\n"
        "loglik = hmm_log_likelihoods(store[u], 'log-posteriors', load_senone_log_priors(sys.argv[3]))\n"
        "decoder = Decoder(load_graph(sys.argv[1]), DecoderConfig(beam=9, max_active=1500, lattice_beam=4))\n"
        "decoder.nbest(decoder.lattice(loglik[:100]), 10)\n"
        "print(time.perf_counter() - t)\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    out = subprocess.run([sys.executable, "-c", code, str(graph_dir), str(scores), str(tree_dir)], env=env,
                         check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def compare_searches(args: argparse.Namespace) -> dict:
    """FasterDecoder best path vs the lattice search + N-best on the same real scores (module docstring)."""
    import json
    import shutil
    import sys

    from asr_kd.data import read_manifest
    from asr_kd.decoding.hclg import load_graph
    from asr_kd.decoding.search_graph import CACHE_DIR
    from asr_kd.utils.array_store import ArrayStore

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    report, tune = split_dev(args.ref, args.utts, args.seed, set(ArrayStore(args.scores)))
    texts = {u.utt_id: u.transcript for u in read_manifest(args.ref)}
    for name, ids in (("report", report), ("tune", tune)):
        (work / f"{name}.utts").write_text("".join(f"{u}\n" for u in ids))
        (work / f"{name}_ref.txt").write_text("".join(f"{u} {texts[u]}\n" for u in ids))
    graph = load_graph(args.graph_dir)
    made = not (args.graph_dir / CACHE_DIR / "meta.json").exists()
    start = time.perf_counter()
    _ = graph.search_graph
    result = {"stage": "decode", "utterances": len(report), "tuning_utterances": len(tune), "seed": args.seed,
              "graph_states": graph.info["num_states"], "graph_arcs": graph.info["num_arcs"],
              f"search_graph_{'made' if made else 'opened'}_s": round(time.perf_counter() - start, 2)}
    shutil.rmtree(work / "numba_cache", ignore_errors=True)
    result["numba_first_run_s"] = round(numba_compile_s(args.graph_dir, args.scores, args.tree_dir,
                                                        work / "numba_cache"), 1)
    result["numba_cached_run_s"] = round(numba_compile_s(args.graph_dir, args.scores, args.tree_dir,
                                                         work / "numba_cache"), 1)
    asr_kd = [sys.executable, "-m", "asr_kd.cli"]
    common = ["--graph-dir", str(args.graph_dir), "--scores", str(args.scores), "--tree-dir", str(args.tree_dir),
              "--jobs", str(args.jobs), "--prior-scale", str(args.prior_scale)]

    def decode(tag: str, utts: str, extra: list[str]) -> tuple[dict, float]:
        out = work / tag
        rss = run_measured([*asr_kd, "decode", *common, "--utts", str(work / f"{utts}.utts"), *extra,
                            "--out", str(out)], work / f"{tag}.log")
        return json.loads((out / "decode.json").read_text()), rss

    def score(argv: list[str], wer_json: Path) -> dict:
        run_measured([*asr_kd, "score", *argv], wer_json.with_suffix(".log"))
        return json.loads(wer_json.read_text())

    for pair in args.beams:
        beam, max_active = pair.split(":")
        tag = f"b{beam}_ma{max_active}"
        search = ["--beam", beam, "--max-active", max_active]
        summary, rss = decode(f"{tag}_best", "report", search)
        wer = score(["--ref", str(work / "report_ref.txt"), "--hyp", str(work / f"{tag}_best" / "hyp.txt")],
                    work / f"{tag}_best" / "hyp.wer.json")
        result.update({f"{tag}_best_path_cpu_rtf": round(summary["cpu_rtf"], 4), f"{tag}_best_path_rss_mb": round(rss),
                       f"{tag}_best_path_wer": round(wer["summary"]["wer"], 4)})
        for lattice_beam in args.lattice_beams:
            lb = f"{tag}_lb{lattice_beam:g}"
            lattice = [*search, "--lattice-beam", f"{lattice_beam:g}", "--nbest", str(args.nbest)]
            summary, rss = decode(lb, "report", lattice)
            decode(f"{lb}_tune", "tune", lattice)
            scored = ["--ref", str(work / "report_ref.txt"), "--nbest", str(work / lb / "nbest.jsonl.gz")]
            untuned = score([*scored, "--out", str(work / lb / "untuned")], work / lb / "untuned.wer.json")
            tune_set = [str(work / "tune_ref.txt"), str(work / f"{lb}_tune" / "nbest.jsonl.gz")]
            tuned = score([*scored, "--tune", *tune_set, "--out", str(work / lb / "tuned")],
                          work / lb / "tuned.wer.json")
            setting = tuned["scoring"]["setting"]
            result.update({
                f"{lb}_cpu_rtf": round(summary["cpu_rtf"], 4), f"{lb}_nbest_rtf": round(summary["nbest_rtf"], 4),
                f"{lb}_over_best_path": round(summary["cpu_rtf"] / result[f"{tag}_best_path_cpu_rtf"], 2),
                f"{lb}_rss_mb": round(rss), f"{lb}_lattice_arcs_per_frame": round(summary["lattice_arcs_per_frame"], 1),
                f"{lb}_untuned_wer": round(untuned["summary"]["wer"], 4),
                f"{lb}_tuned_wer": round(tuned["summary"]["wer"], 4),
                f"{lb}_tuned_lmwt_wip": f"{setting['lm_weight']:g}/{setting['word_ins_penalty']:g}",
            })
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=300, help="DNN minibatches before decoding")
    parser.add_argument("--nbest", type=int, default=100, help="N-best list size of the lattice search")
    parser.add_argument("--no-lattice", action="store_true", help="skip the lattice search")
    real = parser.add_argument_group("real scores (instead of the tiny data)")
    real.add_argument("--graph-dir", type=Path)
    real.add_argument("--scores", type=Path, help="array store of log-posteriors (the whole dev set)")
    real.add_argument("--tree-dir", type=Path)
    real.add_argument("--ref", type=Path, help="the dev manifest (.tsv)")
    real.add_argument("--work-dir", type=Path, help="where the decodes and scores go")
    real.add_argument("--utts", type=int, default=100, help="utterances of the reported set and of the tuning set")
    real.add_argument("--seed", type=int, default=0)
    real.add_argument("--beams", nargs="+", default=["13:7000", "11:3000", "10:2000", "9:1500"],
                      help="beam:max-active pairs")
    real.add_argument("--lattice-beams", type=float, nargs="+", default=[4.0, 6.0, 8.0])
    real.add_argument("--jobs", type=int, default=2)
    real.add_argument("--prior-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.graph_dir is not None:
        return compare_searches(args)

    from asr_kd.alignment import SenoneTree, load_senone_log_priors
    from asr_kd.data import read_manifest
    from asr_kd.decoding import DecoderConfig, build_graph, decode_store, load_graph
    from asr_kd.experiment import Experiment
    from asr_kd.scoring.wer import read_references, read_text, score

    exp = tiny_exp((TRAIN, DEV), tree=True)
    lm = write_arpa([u.transcript for u in read_manifest(Experiment(exp).manifest(TRAIN))], exp / "lm" / "train.arpa")
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
        decode_store(**decode, out_dir=exp / "decode_lattice", nbest=args.nbest)  # numba compiled or loaded
        lattice = decode_store(**decode, out_dir=exp / "decode_lattice", nbest=args.nbest)
    wer = score(read_references(Experiment(exp).manifest(DEV)), read_text(exp / "decode" / "hyp.txt"),
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
        "lattice_cpu_rtf": None if lattice is None else round(lattice["cpu_rtf"], 4),
        "lattice_over_best_path": None if lattice is None else round(lattice["cpu_rtf"] / best["cpu_rtf"], 2),
        "nbest_rtf": None if lattice is None else round(lattice["nbest_rtf"], 4),
        "goal": "rtf <= 0.1",
        "wer": round(wer, 3),
    }


if __name__ == "__main__":
    emit(main())
