"""Peer benchmark: pocketsphinx (its own en-us acoustic model) vs asr_kd models, same LM, same utterances.

Both systems decode the same randomly drawn utterances of one subset (seeded) from the audio
files, one thread each, with the SAME ARPA LM: pocketsphinx loads it (lower-cased: its
dictionary ``cmudict-en-us.dict`` is lower case, an upper-case ARPA matches no word) with its
dictionary; asr_kd uses an HCLG built from that ARPA (``asr-kd graph``) and its own lexicon.
Each asr_kd model runs end to end per utterance: log-mel features + the training CMVN
(:func:`asr_kd.export.posteriors_for_audio`), the DNN, prior division and the best-path search
(``FasterDecoder``). Printed side by side: WER (jiwer, upper-cased) and real-time factors
(seconds of processing per second of audio; asr_kd also its search alone).

Needs a prepared experiment (manifests), a graph of the LM and trained models, so
``benchmarks.run`` runs it only when named::

    python -m benchmarks.run --only pocketsphinx_peer --args "pocketsphinx_peer=--exp EXP --arpa LM.arpa \\
        --graph-dir GRAPH --tree-dir EXP/tree --model EXP/e1/ensemble/member0/model.pt"
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from benchmarks.common import emit


def lower_case_arpa(arpa: Path, out: Path) -> Path:
    """``arpa`` with every word lower-cased (section names and ``<s>``-style tokens are already lower case)."""
    with open(arpa, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for line in src:
            dst.write(line.lower())
    return out


def wer_of(refs: dict[str, str], hyps: dict[str, str]) -> float:
    from asr_kd.scoring.wer import align_words, summarize

    return summarize(align_words(refs, {u: h.upper() for u, h in hyps.items()})).wer


def run_pocketsphinx(utts, arpa: Path, lw: float | None) -> tuple[dict[str, str], float, float]:
    """Hypotheses, decoding seconds (audio in, words out) and LM/model load seconds."""
    import soundfile as sf
    from pocketsphinx import Decoder, get_model_path

    model = Path(get_model_path())
    start = time.perf_counter()
    options = dict(hmm=str(model / "en-us" / "en-us"), lm=str(arpa), dict=str(model / "en-us" / "cmudict-en-us.dict"),
                   loglevel="FATAL")
    if lw is not None:
        options["lw"] = lw
    decoder = Decoder(**options)
    load_s = time.perf_counter() - start
    hyps, seconds = {}, 0.0
    for utt in utts:
        pcm, rate = sf.read(utt.audio_path, dtype="int16")
        if rate != 16000:
            raise SystemExit(f"{utt.audio_path}: {rate} Hz, pocketsphinx's en-us model needs 16 kHz")
        start = time.perf_counter()
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        seconds += time.perf_counter() - start
        hyps[utt.utt_id] = hyp.hypstr if hyp is not None else ""
    return hyps, seconds, load_s


def run_asr_kd(utts, model: Path, decoder, log_priors, prior_scale: float,
               cmvn: str = "auto") -> tuple[dict[str, str], float, float]:
    """Hypotheses, end-to-end seconds (audio -> words) and search seconds of one asr_kd model."""
    from asr_kd.decoding import NoPathError, scaled_log_likelihoods
    from asr_kd.export import load_bundle, posteriors_for_audio

    bundle = load_bundle(model)
    hyps, total_s, search_s = {}, 0.0, 0.0
    for utt in utts:
        start = time.perf_counter()
        loglik = scaled_log_likelihoods(posteriors_for_audio(bundle, utt.audio_path, cmvn=cmvn), log_priors,
                                        prior_scale)
        searched = time.perf_counter()
        try:
            hyps[utt.utt_id] = " ".join(decoder.best_path(loglik, utt.utt_id).words)
        except NoPathError:
            hyps[utt.utt_id] = ""
        end = time.perf_counter()
        total_s += end - start
        search_s += end - searched
    return hyps, total_s, search_s


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", type=Path, required=True, help="experiment with manifests/<subset>.tsv")
    parser.add_argument("--subset", default="dev-clean-2")
    parser.add_argument("--num-utts", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arpa", type=Path, required=True, help="the LM both systems decode with (asr_kd case)")
    parser.add_argument("--graph-dir", type=Path, required=True, help="asr_kd HCLG built from --arpa")
    parser.add_argument("--tree-dir", type=Path, required=True, help="senone priors (senone_counts.npy)")
    parser.add_argument("--model", type=Path, nargs="+", required=True, help="asr_kd model.pt / ensemble JSON")
    parser.add_argument("--acoustic-scale", type=float, nargs="+", default=[0.1],
                        help="asr_kd acoustic scale (1 / LMWT): one for every model, or one per --model "
                             "(e.g. each system's LMWT tuned on the validation split)")
    parser.add_argument("--prior-scale", type=float, nargs="+", default=[1.0], help="one, or one per --model")
    parser.add_argument("--beam", type=float, default=10.0, help="asr_kd search beam (the recipe's)")
    parser.add_argument("--max-active", type=int, default=2000, help="asr_kd most active states (the recipe's)")
    parser.add_argument("--ps-lw", type=float, default=None, help="pocketsphinx language weight (default its own)")
    parser.add_argument("--ps-own-lm", action="store_true",
                        help="also a pocketsphinx row with its packaged en-us.lm.bin (the trigram the ARPA came from)")
    parser.add_argument("--cmvn", choices=("auto", "global", "utterance"), default="auto",
                        help="asr_kd input normalisation of each single utterance (Bundle.normalize; auto: the "
                             "utterance's own statistics for a model trained with per-speaker CMVN)")
    parser.add_argument("--no-pocketsphinx", action="store_true",
                        help="only the asr_kd rows (e.g. to compare --cmvn choices; pocketsphinx's do not change)")
    args = parser.parse_args(argv)
    for name in ("acoustic_scale", "prior_scale"):
        values = getattr(args, name)
        if len(values) not in (1, len(args.model)):
            parser.error(f"--{name.replace('_', '-')}: give one value or one per --model ({len(args.model)})")
        setattr(args, name, values * len(args.model) if len(values) == 1 else values)

    import torch

    from asr_kd.alignment import load_senone_log_priors
    from asr_kd.data import read_manifest
    from asr_kd.decoding import Decoder, DecoderConfig, load_graph
    from asr_kd.experiment import Experiment

    torch.set_num_threads(1)  # pocketsphinx is single-threaded: compare one core with one core
    manifest = read_manifest(Experiment(args.exp).manifest(args.subset))
    utts = sorted(random.Random(args.seed).sample(manifest, min(args.num_utts, len(manifest))), key=lambda u: u.utt_id)
    refs = {u.utt_id: u.transcript for u in utts}
    audio_s = sum(u.duration_s for u in utts)
    rows = []
    if not args.no_pocketsphinx:
        with tempfile.TemporaryDirectory(prefix="asr_kd_peer_") as tmp:
            hyps, seconds, load_s = run_pocketsphinx(utts, lower_case_arpa(args.arpa, Path(tmp) / "lm.arpa"),
                                                     args.ps_lw)
        rows.append({"system": f"pocketsphinx en-us AM + {args.arpa.name}", "wer": wer_of(refs, hyps),
                     "rtf": seconds / audio_s, "load_s": round(load_s, 1)})
    if args.ps_own_lm and not args.no_pocketsphinx:
        from pocketsphinx import get_model_path

        own = Path(get_model_path()) / "en-us" / "en-us.lm.bin"
        hyps, seconds, load_s = run_pocketsphinx(utts, own, args.ps_lw)
        rows.append({"system": "pocketsphinx en-us AM + its en-us.lm.bin", "wer": wer_of(refs, hyps),
                     "rtf": seconds / audio_s, "load_s": round(load_s, 1)})
    start = time.perf_counter()
    graph = load_graph(args.graph_dir)
    graph_load_s = time.perf_counter() - start
    log_priors = load_senone_log_priors(args.tree_dir)
    for model, acoustic_scale, prior_scale in zip(args.model, args.acoustic_scale, args.prior_scale):
        decoder = Decoder(graph, DecoderConfig(acoustic_scale=acoustic_scale, beam=args.beam,
                                               max_active=args.max_active))
        hyps, total_s, search_s = run_asr_kd(utts, model, decoder, log_priors, prior_scale, args.cmvn)
        rows.append({"system": f"asr_kd {model} (LMWT {1 / acoustic_scale:g}, prior scale {prior_scale:g}, "
                               f"CMVN {args.cmvn})",
                     "wer": wer_of(refs, hyps), "rtf": total_s / audio_s, "search_rtf": search_s / audio_s,
                     "load_s": round(graph_load_s, 1)})
    print(f"\n{len(utts)} {args.subset} utterances (seed {args.seed}, {audio_s / 60:.1f} min), LM {args.arpa.name}\n")
    print("| system | %WER | RTF | search RTF |\n|---|---|---|---|")
    for r in rows:
        search = f"{r['search_rtf']:.3f}" if "search_rtf" in r else "-"
        print(f"| {r['system']} | {100 * r['wer']:.2f} | {r['rtf']:.3f} | {search} |")
    result = {"stage": "pocketsphinx_peer", "utterances": len(utts), "audio_s": round(audio_s, 1),
              "lm": args.arpa.name}
    for i, r in enumerate(rows):
        result[f"system{i}"] = r["system"]
        result[f"wer{i}"] = round(r["wer"], 4)
        result[f"rtf{i}"] = round(r["rtf"], 4)
    return result


if __name__ == "__main__":
    emit(main())
