"""L: the lexicon transducer (phones -> words) with optional silence and disambiguation symbols.

Follows Kaldi's ``prepare_lang.sh`` + ``make_lexicon_fst.py``:

* A pronunciation that is a proper prefix of another one, or shared by several words/variants,
  gets ``#1``, ``#2`` ... appended so that ``L o G`` is determinizable.
* ``#0`` (G's back-off symbol) passes through L as ``#0:#0`` self-loops on every state with
  word output or a final weight (``kaldifst.add_self_loops``).
* Optional silence between words (and at the start) with probability ``silence_prob``.

Symbol ids: phone ``p`` is ``phones.index(p) + 1`` (0 = epsilon), then the phone-side
disambiguation symbols ``#0, #1, ..., #k``. Words: 0 = ``<eps>``, the lexicon's words sorted,
then ``#0``, ``<s>``, ``</s>`` (the last two only so that arpa2fst can read the table).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import kaldifst

from asr_kd.data.lexicon import Lexicon
from asr_kd.utils.errors import AsrKdError

EPS = "<eps>"
BACKOFF = "#0"
BOS = "<s>"
EOS = "</s>"


@dataclass(frozen=True)
class LexiconGraph:
    """L with disambiguation symbols and the symbol tables of both its sides.

    Attributes:
        fst: L_disambig (input: phone ids + phone disambig ids, output: word ids).
        phones: phone inventory; phone id = index + 1.
        words: word symbol table; word id = index (``words[0] == "<eps>"``).
        phone_disambig: ids of ``#0, #1, ..., #k`` on the phone side.
    """

    fst: kaldifst.StdVectorFst
    phones: tuple[str, ...]
    words: tuple[str, ...]
    phone_disambig: tuple[int, ...]

    def word_table_text(self) -> str:
        """The word table in OpenFst/Kaldi text format (``word id`` per line)."""
        return word_table_text(self.words)


def word_table_text(words: Sequence[str]) -> str:
    """A word table in OpenFst/Kaldi text format (``word id`` per line, id = position)."""
    return "".join(f"{word} {i}\n" for i, word in enumerate(words))


def disambiguate(prons: Sequence[tuple[str, ...]]) -> tuple[list[int], int]:
    """Kaldi's ``add_lex_disambig.pl``: the ``#n`` to append to each pronunciation (0 = none).

    Args:
        prons: all pronunciations of the lexicon, in lexicon order (duplicates across words kept).

    Returns:
        ``(suffix, max_used)``: per pronunciation the disambiguation number, and the largest one.
    """
    counts = Counter(prons)
    prefixes = {pron[:n] for pron in prons for n in range(1, len(pron))}
    last_used: Counter[tuple[str, ...]] = Counter()
    suffix = []
    for pron in prons:
        if counts[pron] > 1 or pron in prefixes:
            last_used[pron] += 1
            suffix.append(last_used[pron])
        else:
            suffix.append(0)
    return suffix, max(suffix, default=0)


def make_lexicon_fst(
    lexicon: Lexicon,
    phones: Sequence[str],
    silence_phone: str = "SIL",
    silence_prob: float = 0.5,
) -> LexiconGraph:
    """Build L_disambig for ``lexicon`` over the phone inventory ``phones``.

    Args:
        lexicon: words and their pronunciations (``lexicon.prons``).
        phones: phone inventory of the acoustic model (the senone tree's ``phones``).
        silence_phone: phone of optional inter-word silence.
        silence_prob: probability of silence after each word and at the start; 0 disables it.

    Raises:
        AsrKdError: a pronunciation uses a phone the acoustic model does not have.
    """
    if not 0.0 <= silence_prob < 1.0:
        raise AsrKdError(f"silence probability must be in [0, 1), got {silence_prob}")
    phone_id = {p: i + 1 for i, p in enumerate(phones)}
    if silence_prob > 0 and silence_phone not in phone_id:
        raise AsrKdError(f"silence phone {silence_phone!r} is not in the acoustic model's phones")
    entries = [(word, pron) for word in sorted(lexicon.prons) for pron in lexicon.prons[word]]
    for word, pron in entries:
        unknown = [p for p in pron if p not in phone_id]
        if unknown:
            raise AsrKdError(f"lexicon word {word!r} uses phones {unknown} that the acoustic model does not have")
    suffix, max_disambig = disambiguate([pron for _, pron in entries])
    phone_disambig = tuple(len(phones) + 1 + n for n in range(max_disambig + 1))
    words = (EPS, *sorted(lexicon.prons), BACKOFF, BOS, EOS)
    word_id = {w: i for i, w in enumerate(words)}

    fst = kaldifst.StdVectorFst()
    start = fst.add_state()
    fst.start = start
    if silence_prob > 0:
        loop, silence = fst.add_state(), fst.add_state()
        no_sil_cost, sil_cost = -math.log(1.0 - silence_prob), -math.log(silence_prob)
        fst.add_arc(start, kaldifst.StdArc(0, 0, no_sil_cost, loop))
        fst.add_arc(start, kaldifst.StdArc(0, 0, sil_cost, silence))
        fst.add_arc(silence, kaldifst.StdArc(phone_id[silence_phone], 0, 0.0, loop))
        ends = [(loop, no_sil_cost), (silence, sil_cost)]
    else:
        loop = start
        ends = [(loop, 0.0)]
    fst.set_final(loop, 0.0)

    for (word, pron), n in zip(entries, suffix):
        labels = [phone_id[p] for p in pron] + ([phone_disambig[n]] if n else [])
        state = loop
        for position, label in enumerate(labels):
            olabel = word_id[word] if position == 0 else 0
            if position == len(labels) - 1:
                for end, cost in ends:
                    fst.add_arc(state, kaldifst.StdArc(label, olabel, cost, end))
            else:
                nxt = fst.add_state()
                fst.add_arc(state, kaldifst.StdArc(label, olabel, 0.0, nxt))
                state = nxt
    kaldifst.add_self_loops(fst, [phone_disambig[0]], [word_id[BACKOFF]])
    return LexiconGraph(fst=fst, phones=tuple(phones), words=words, phone_disambig=phone_disambig)
