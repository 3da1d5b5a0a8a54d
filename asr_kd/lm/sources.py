"""Where LMs come from: pocketsphinx's generic US-English trigram, any ARPA file; word-case conventions.

``pocketsphinx-en-us`` is ``pocketsphinx/model/en-us/en-us.lm.bin`` of the installed
``pocketsphinx`` package (5.1.1, BSD): 72,547 words (lower case, with ``<s>`` and ``</s>``, no
``<unk>``), 2,051,541 bigrams and 1,669,625 trigrams, 16-bit quantised. Quantisation leaves
some histories far from normalised (``P(. | much according)`` sums to 1.57, because ``P(to |
according)`` is stored as 0.948), so :func:`load_pocketsphinx_en_us` recomputes every back-off
weight from the stored probabilities (SRILM's ``ngram -renorm``), which makes each history sum
to one again and leaves all explicit probabilities as stored.

Word case: LibriSpeech transcripts and the toolkit's lexicons are upper case, pocketsphinx's
words lower case. Models are brought to upper case (:func:`to_upper_case`) except the
sentence markers ``<s>``/``</s>`` and the unknown-word token ``<unk>`` (Kaldi spells them
this way); :func:`to_lower_case` gives pocketsphinx a copy it can match against its own
dictionary.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr_kd.lm.model import BOS, EOS, UNK, BackoffLM
from asr_kd.lm.normalisation import recompute_backoffs
from asr_kd.utils.errors import AsrKdError

#: Tokens that keep their spelling whatever the case convention.
SPECIAL_TOKENS = frozenset({BOS, EOS, UNK, "<UNK>"})


def pocketsphinx_model_dir() -> Path:
    """``pocketsphinx/model/en-us`` of the installed package.

    Raises:
        AsrKdError: pocketsphinx is not installed.
    """
    try:
        import pocketsphinx
    except ImportError:
        raise AsrKdError("pocketsphinx is not installed (pip install pocketsphinx==5.1.1)") from None
    return Path(pocketsphinx.get_model_path()) / "en-us"


def pocketsphinx_lm_path() -> Path:
    """The generic US-English trie LM, ``en-us.lm.bin``."""
    path = pocketsphinx_model_dir() / "en-us.lm.bin"
    if not path.exists():
        raise AsrKdError(f"{path}: the pocketsphinx package has no en-us LM")
    return path


def pocketsphinx_dict_path() -> Path:
    """pocketsphinx's pronunciation dictionary, ``cmudict-en-us.dict`` (lower case, ``word(2)`` variants)."""
    path = pocketsphinx_model_dir() / "cmudict-en-us.dict"
    if not path.exists():
        raise AsrKdError(f"{path}: the pocketsphinx package has no cmudict-en-us.dict")
    return path


def _recased(lm: BackoffLM, convert) -> BackoffLM:
    vocab = [w if w in SPECIAL_TOKENS else convert(w) for w in lm.vocab]
    if len(set(vocab)) != len(vocab):
        seen: dict[str, str] = {}
        clash = next((seen[v], w) for v, w in zip(vocab, lm.vocab) if seen.setdefault(v, w) != w)
        raise AsrKdError(f"changing the LM's word case merges distinct words, e.g. {clash[0]!r} and {clash[1]!r}")
    return lm.renamed(vocab)


def to_upper_case(lm: BackoffLM) -> BackoffLM:
    """Upper-case every word but ``<s>``, ``</s>``, ``<unk>`` (module docstring)."""
    return _recased(lm, str.upper)


def to_lower_case(lm: BackoffLM) -> BackoffLM:
    """Lower-case every word but ``<s>``, ``</s>``, ``<unk>``: the spelling pocketsphinx's dictionary uses."""
    return _recased(lm, str.lower)


def load_pocketsphinx_en_us(path: str | os.PathLike | None = None) -> BackoffLM:
    """pocketsphinx's en-us trigram, renormalised (module docstring), words as in the model (lower case)."""
    from asr_kd.lm.sphinx_trie import read_sphinx_trie

    return recompute_backoffs(read_sphinx_trie(path or pocketsphinx_lm_path()))
