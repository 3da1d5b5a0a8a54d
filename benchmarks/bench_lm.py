"""LM tooling on pocketsphinx's en-us trigram: conversion, normalisation, pruning, ARPA I/O, perplexity.

Default input: ``en-us.lm.bin`` of the installed pocketsphinx package (72,547 words, 3.7M
n-grams). Figures: seconds of each step (``read_trie_s``, ``renormalise_s``, ``check_s``,
``write_arpa_s``, ``read_arpa_s``, ``prune_s``), the per-history normalisation error of the
model as stored (``raw_normalisation``: quantiles of |sum P - 1| per history order and the
number of histories above 1e-3) and after back-off weight recomputation, the pruned model's
n-gram counts, and, given ``--dev-manifest``, OOV rate and perplexity of the full, bigram and
pruned models on that text (evaluation only). Not in ``benchmarks.run``'s default set (about a
minute and ~2 GB on a real model); run it as ``python -m benchmarks.bench_lm``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import emit


def _timed(results: dict, name: str, fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    results[name] = round(time.perf_counter() - start, 2)
    return value


def _errors(report) -> dict:
    return {f"history_order_{o.history_order}": {"histories": o.histories, "over_1e-3": o.over_tolerance,
                                                 "max": o.max_abs_error, **o.quantiles} for o in report.orders}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trie", type=Path, default=None, help="sphinx trie LM (default: pocketsphinx's en-us)")
    parser.add_argument("--prune", type=float, default=1e-7)
    parser.add_argument("--dev-manifest", type=Path, default=None, help="manifest .tsv to score (evaluation only)")
    args = parser.parse_args(argv)

    from asr_kd.data import read_manifest
    from asr_kd.lm import (
        check_normalisation,
        prune_entropy,
        read_arpa,
        read_sphinx_trie,
        recompute_backoffs,
        write_arpa,
    )
    from asr_kd.lm.evaluate import score_text
    from asr_kd.lm.sources import pocketsphinx_lm_path, to_upper_case

    results: dict = {"stage": "lm"}
    raw = _timed(results, "read_trie_s", read_sphinx_trie, args.trie or pocketsphinx_lm_path())
    results["ngram_counts"] = raw.counts
    raw_check = check_normalisation(raw)
    results["check_s"] = round(raw_check.seconds, 2)
    results["raw_normalisation"] = _errors(raw_check)
    lm = to_upper_case(_timed(results, "renormalise_s", recompute_backoffs, raw))  # LibriSpeech spelling
    results["renormalised_max_abs_error"] = check_normalisation(lm).max_abs_error
    with tempfile.TemporaryDirectory(prefix="asr_kd_bench_lm_") as tmp:
        path = Path(tmp) / "lm.arpa"
        _timed(results, "write_arpa_s", write_arpa, lm, path)
        results["arpa_mb"] = round(path.stat().st_size / 1e6, 1)
        _timed(results, "read_arpa_s", read_arpa, path)
    pruned, _ = _timed(results, "prune_s", prune_entropy, lm, args.prune)
    results["pruned_counts"] = pruned.counts
    if args.dev_manifest is not None:
        sentences = [u.transcript.split() for u in read_manifest(args.dev_manifest)]
        for name, model in (("full", lm), ("bigram", lm.truncated(2)), (f"pruned_{args.prune:g}", pruned)):
            score = score_text(model, sentences)
            results[f"dev_{name}"] = {"oov_rate": round(score.oov_rate, 5), "perplexity": round(score.perplexity, 1)}
    emit(results)
    return results


if __name__ == "__main__":
    main()
