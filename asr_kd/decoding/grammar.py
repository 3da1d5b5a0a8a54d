"""G: an ARPA n-gram LM as an FST (Kaldi's arpa2fst through ``kaldilm``), over L's word table.

Back-off arcs carry ``#0`` on the input side; ``<s>``/``</s>`` become epsilons. N-grams with a
word missing from the lexicon are skipped by arpa2fst (as in Kaldi); we count those words and
warn, because a large count means lexicon and LM do not belong together.

arpa2fst aborts the whole process on a malformed file, so it runs in a child Python process
and its error line becomes an :class:`AsrKdError`. Gzipped ARPA files (``.gz``) are accepted.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kaldifst

from asr_kd.decoding.lexicon_fst import BACKOFF, BOS, EOS, LexiconGraph
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("decoding.grammar")
_COUNT = re.compile(r"^ngram\s+(\d+)\s*=\s*(\d+)$")
_SECTION = re.compile(r"^\\(\d+)-grams:$")


@dataclass(frozen=True)
class ArpaSummary:
    """What the header and unigram section of an ARPA file say.

    Attributes:
        ngram_counts: order -> number of n-grams declared in ``\\data\\``.
        vocabulary: the unigram words (including ``<s>``, ``</s>``, ``<unk>`` if present).
    """

    ngram_counts: dict[int, int]
    vocabulary: tuple[str, ...]

    @property
    def order(self) -> int:
        return max(self.ngram_counts)


@dataclass(frozen=True)
class GrammarReport:
    """Outcome of G construction: the LM's size and the words the lexicon cannot produce."""

    arpa: ArpaSummary
    missing_words: tuple[str, ...]


def _open_text(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            yield from f
    except (UnicodeDecodeError, OSError) as err:
        raise AsrKdError(f"{path}: cannot read ARPA file ({err})") from None


def read_arpa_summary(path: str | os.PathLike) -> ArpaSummary:
    """Parse the ``\\data\\`` header and the unigram section of an ARPA file, and check that every
    word of the higher-order n-grams is a unigram.

    Raises:
        AsrKdError: missing/invalid header, missing unigram section, a unigram count that
            disagrees with the header, or an n-gram with a word that has no unigram.
    """
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: ARPA file is missing")
    counts: dict[int, int] = {}
    vocabulary: list[str] = []
    section = "preamble"
    for line_no, raw in enumerate(_open_text(path), start=1):
        line = raw.strip()
        if not line:
            continue
        if section == "preamble":
            if line == "\\data\\":
                section = "data"
            continue
        if section == "data":
            match = _COUNT.match(line)
            if match:
                counts[int(match.group(1))] = int(match.group(2))
                continue
            if line != "\\1-grams:":
                raise AsrKdError(f"{path}:{line_no}: expected 'ngram N=count' or '\\1-grams:', got {line[:60]!r}")
            if 1 not in counts:
                raise AsrKdError(f"{path}:{line_no}: \\data\\ section declares no unigram count")
            section = "unigrams"
            continue
        if line.startswith("\\"):
            section_match = _SECTION.match(line)
            if not (section_match or line == "\\end\\"):
                raise AsrKdError(f"{path}:{line_no}: unexpected section header {line[:60]!r}")
            if section_match is None:
                break
            order, known = int(section_match.group(1)), set(vocabulary)
            section = "ngrams"
            continue
        fields = line.split()
        if section == "ngrams":
            # arpa2fst silently drops an n-gram whose word has no unigram (a damaged or edited LM)
            words = fields[1 : 1 + order]
            if not known.issuperset(words):
                missing = next(w for w in words if w not in known)
                raise AsrKdError(f"{path}:{line_no}: {order}-gram {' '.join(words)!r} has the word {missing!r}, "
                                 "which is not in the \\1-grams: section")
            continue
        try:
            float(fields[0])
        except ValueError:
            raise AsrKdError(f"{path}:{line_no}: invalid unigram line {line[:60]!r} (no log-probability)") from None
        if len(fields) not in (2, 3):
            raise AsrKdError(f"{path}:{line_no}: invalid unigram line {line[:60]!r}")
        vocabulary.append(fields[1])
    if section == "preamble":
        raise AsrKdError(f"{path}: not an ARPA file (no \\data\\ header)")
    if section == "data":
        raise AsrKdError(f"{path}: ARPA file has no \\1-grams: section")
    if len(vocabulary) != counts[1]:
        raise AsrKdError(f"{path}: header declares {counts[1]} unigrams, the \\1-grams: section has {len(vocabulary)}")
    return ArpaSummary(ngram_counts=dict(sorted(counts.items())), vocabulary=tuple(vocabulary))


def _arpa2fst(arpa: Path, words_txt: Path, g_fst: Path) -> None:
    code = (
        "import sys, kaldilm; "
        "kaldilm.arpa2fst(sys.argv[1], sys.argv[2], disambig_symbol=sys.argv[3], read_symbol_table=sys.argv[4], "
        "max_arpa_warnings=0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(arpa), str(g_fst), BACKOFF, str(words_txt)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not g_fst.exists():
        errors = [line for line in proc.stderr.splitlines() if line.startswith("[E]")]
        detail = errors[-1][4:] if errors else (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise AsrKdError(f"{arpa}: malformed ARPA file: {detail}")


def make_grammar_fst(arpa_path: str | os.PathLike, lang: LexiconGraph) -> tuple[kaldifst.StdVectorFst, GrammarReport]:
    """Convert an ARPA LM into G over the word table of ``lang``.

    Returns:
        ``(G, report)``; G is ilabel-sorted, input = output = word ids except ``#0`` back-offs.

    Raises:
        AsrKdError: malformed ARPA file (names the file and, where known, the line).
    """
    arpa_path = Path(arpa_path)
    summary = read_arpa_summary(arpa_path)
    known = set(lang.words)
    missing = tuple(w for w in summary.vocabulary if w not in known and w not in (BOS, EOS))
    if missing:
        log.warning(
            "%s: %d of %d LM words are not in the lexicon (n-grams with them are dropped), e.g. %s",
            arpa_path, len(missing), len(summary.vocabulary), " ".join(missing[:10]),
        )
    with tempfile.TemporaryDirectory(prefix="asr_kd_g_") as tmp:
        tmp_dir = Path(tmp)
        plain = arpa_path
        if arpa_path.suffix == ".gz":
            plain = tmp_dir / "lm.arpa"
            with gzip.open(arpa_path, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst)
        words_txt = tmp_dir / "words.txt"
        words_txt.write_text(lang.word_table_text(), encoding="utf-8")
        g_path = tmp_dir / "G.fst"
        _arpa2fst(plain, words_txt, g_path)
        g = kaldifst.StdVectorFst.read(str(g_path))
    return g, GrammarReport(arpa=summary, missing_words=missing)
