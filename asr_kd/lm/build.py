"""Produce a decoding LM and its lexicon: source -> [mix] -> [order cut] -> [renormalise] -> [prune] -> checks -> files.

Files written next to the ARPA ``<dir>/<name>.arpa`` (see :func:`side_files`):

* ``<name>.lexicon.txt``: a pronunciation for every LM word that has one
  (:func:`asr_kd.data.lexicon.cover_vocabulary`); ``asr-kd graph`` uses it by default for this ARPA;
* ``<name>.no_pron.txt``: the LM words left without a pronunciation (one per line, maybe empty);
* ``<name>.json``: source, n-gram counts, the normalisation check, pruning, lexicon coverage and
  the OOV rate / perplexity of each evaluation text.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr_kd.data.lexicon import Lexicon
from asr_kd.lm.arpa import read_arpa, write_arpa
from asr_kd.lm.evaluate import TextScore, score_text
from asr_kd.lm.model import BackoffLM
from asr_kd.lm.normalisation import NormalisationReport, check_normalisation, recompute_backoffs
from asr_kd.lm.prune import PruneReport, prune_entropy
from asr_kd.lm.sources import load_pocketsphinx_en_us, to_lower_case, to_upper_case
from asr_kd.utils.atomic import atomic_open, write_json
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("lm")


@dataclass(frozen=True)
class SideFiles:
    """The files ``asr-kd lm`` writes next to an ARPA file."""

    lexicon: Path
    no_pron: Path
    report: Path


def side_files(arpa: str | os.PathLike) -> SideFiles:
    """``<stem>.lexicon.txt``, ``<stem>.no_pron.txt``, ``<stem>.json`` of ``<stem>.arpa[.gz]``."""
    arpa = Path(arpa)
    stem = arpa.name.removesuffix(".gz").removesuffix(".arpa")
    return SideFiles(arpa.with_name(f"{stem}.lexicon.txt"), arpa.with_name(f"{stem}.no_pron.txt"),
                     arpa.with_name(f"{stem}.json"))


def read_utterance_ids(path: str | os.PathLike) -> set[str]:
    """Utterance ids, the first whitespace-separated field of each non-empty line."""
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: utterance list is missing")
    return {line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


@dataclass
class LmRequest:
    """What to produce (see ``asr-kd lm --help``).

    Attributes:
        source: ``train``, ``pocketsphinx-en-us`` or ``arpa``.
        out: ARPA path to write.
        train_text: training sentences (``train``); train_order: its order.
        arpa: the file to import (``arpa``).
        max_order: keep orders ``<= max_order`` (None: all).
        mix_with, mix_weight: interpolate with this ARPA LM, the source weighted ``mix_weight``.
        prune: relative-entropy threshold (None: no pruning).
        renormalise: recompute back-off weights (always for pocketsphinx-en-us).
        base_lexicon: preferred pronunciations (a lexicon file), or None.
        eval_subsets: name -> sentences, for OOV rate and perplexity only.
        pocketsphinx_copy: where to write a lower-case copy, or None.
    """

    source: str
    out: Path
    train_text: Sequence[str] | None = None
    train_order: int = 3
    arpa: Path | None = None
    max_order: int | None = None
    prune: float | None = None
    renormalise: bool = False
    mix_with: Path | None = None
    mix_weight: float = 0.5
    base_lexicon: Path | None = None
    eval_subsets: dict[str, list[list[str]]] = field(default_factory=dict)
    pocketsphinx_copy: Path | None = None


@dataclass
class LmReport:
    """What :func:`produce_lm` made."""

    request: LmRequest
    counts: list[int]
    normalisation: NormalisationReport
    prune: PruneReport | None
    lexicon_words: int
    no_pron: tuple[str, ...]
    coverage: dict[str, int]
    evaluation: dict[str, TextScore]
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "source": r.source, "arpa": str(r.out), "imported_from": str(r.arpa) if r.arpa else None,
            "mixed_with": str(r.mix_with) if r.mix_with else None, "mix_weight": r.mix_weight if r.mix_with else None,
            "max_order": r.max_order, "renormalised": r.renormalise or r.source == "pocketsphinx-en-us",
            "ngram_counts": {str(n): c for n, c in enumerate(self.counts, start=1)},
            "normalisation": self.normalisation.to_dict(),
            "prune": None if self.prune is None else {"threshold": self.prune.threshold,
                                                      "counts_before": self.prune.counts_before},
            "lexicon": {"words": self.lexicon_words, "without_pronunciation": len(self.no_pron),
                        "by_source": self.coverage},
            "evaluation": {name: s.to_dict() for name, s in self.evaluation.items()},
            "seconds": self.seconds,
        }

    def summary_line(self) -> str:
        counts = "/".join(str(c) for c in self.counts)
        evals = "".join(f"; {name}: OOV {100 * s.oov_rate:.2f}%, perplexity {s.perplexity:.1f}"
                        for name, s in self.evaluation.items())
        return (f"lm: {self.request.source} {len(self.counts)}-gram, n-grams {counts}, "
                f"{self.normalisation.summary()}; lexicon {self.lexicon_words} words, "
                f"{len(self.no_pron)} LM words without pronunciation{evals} -> {self.request.out}")


def load_source(request: LmRequest) -> BackoffLM:
    """The model of ``request.source``, upper case, before order cut / renormalisation / pruning."""
    if request.source == "pocketsphinx-en-us":
        return to_upper_case(load_pocketsphinx_en_us())
    if request.source == "arpa":
        return to_upper_case(read_arpa(request.arpa))
    if request.source == "train":
        from asr_kd.lm.kenlm import train_arpa

        with tempfile.TemporaryDirectory(prefix="asr_kd_lm_") as tmp:
            path = train_arpa(request.train_text or [], Path(tmp) / "train.arpa", order=request.train_order)
            return to_upper_case(read_arpa(path))
    raise AsrKdError(f"unknown LM source {request.source!r}")


@functools.lru_cache(maxsize=1)
def _dictionaries() -> dict[str, Lexicon]:
    """CMUdict and pocketsphinx's dictionary (read once per process: seconds each)."""
    from asr_kd.data.lexicon import cmudict_lexicon, read_lexicon
    from asr_kd.lm.sources import pocketsphinx_dict_path

    sources = {"cmudict": cmudict_lexicon()}
    try:
        sources["pocketsphinx dict"] = read_lexicon(pocketsphinx_dict_path())
    except AsrKdError as err:  # pocketsphinx not installed: one source fewer
        log.info("lm: no pocketsphinx dictionary (%s)", err)
    return sources


def _pronunciation_sources(base_lexicon: Path | None) -> dict[str, Lexicon]:
    from asr_kd.data.lexicon import read_lexicon

    base = {} if base_lexicon is None else {"experiment lexicon": read_lexicon(base_lexicon)}
    return {**base, **_dictionaries()}


def produce_lm(request: LmRequest) -> LmReport:
    """Make the LM and its side files (module docstring)."""
    from asr_kd.data.lexicon import cover_vocabulary

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    lm = load_source(request)
    if request.mix_with is not None:
        from asr_kd.lm.interpolate import interpolate

        lm = interpolate(lm, to_upper_case(read_arpa(request.mix_with)), request.mix_weight)
    seconds["load"] = time.perf_counter() - t
    log.info("lm: %s loaded in %.1f s: n-grams %s", request.source, seconds["load"], lm.counts)
    if request.max_order is not None:
        lm = lm.truncated(request.max_order)
    if request.renormalise:
        lm = recompute_backoffs(lm)
    prune_report = None
    if request.prune:
        t = time.perf_counter()
        lm, prune_report = prune_entropy(lm, request.prune)
        seconds["prune"] = time.perf_counter() - t
        log.info("lm: pruned at %g in %.1f s: n-grams %s", request.prune, seconds["prune"], lm.counts)
    normalisation = check_normalisation(lm)
    seconds["check"] = normalisation.seconds
    if not normalisation.ok:
        log.warning("lm: %s (pass --renormalise to recompute the back-off weights)", normalisation.summary())
    t = time.perf_counter()
    write_arpa(lm, request.out)
    if request.pocketsphinx_copy is not None:
        write_arpa(to_lower_case(lm), request.pocketsphinx_copy)
    seconds["write"] = time.perf_counter() - t
    log.info("lm: wrote %s in %.1f s; covering its words with pronunciations", request.out, seconds["write"])

    t = time.perf_counter()
    lexicon, coverage = cover_vocabulary(lm.vocab, _pronunciation_sources(request.base_lexicon))
    files = side_files(request.out)
    lexicon.write(files.lexicon, include_oov=False)
    with atomic_open(files.no_pron) as f:
        f.writelines(f"{w}\n" for w in coverage.missing)
    seconds["lexicon"] = time.perf_counter() - t
    if coverage.missing:
        log.warning("lm: %d LM words have no pronunciation (left out of %s, listed in %s), e.g. %s",
                    len(coverage.missing), files.lexicon, files.no_pron, " ".join(coverage.missing[:10]))
    evaluation = {name: score_text(lm, sentences) for name, sentences in request.eval_subsets.items()}
    report = LmReport(request=request, counts=lm.counts, normalisation=normalisation, prune=prune_report,
                      lexicon_words=len(lexicon), no_pron=coverage.missing, coverage=coverage.by_source,
                      evaluation=evaluation, seconds={k: round(v, 2) for k, v in seconds.items()})
    write_json(files.report, report.to_dict())
    return report
