"""Read CMU Sphinx's binary "trie" LM format (pocketsphinx's ``*.lm.bin``) into a :class:`BackoffLM`.

pocketsphinx's own ARPA writer stops before the trigrams of ``en-us.lm.bin`` and Debian's
``sphinx_lm_convert`` aborts on it, so we read the format ourselves, as defined by
pocketsphinx 5.1.1's ``src/lm/ngram_model_trie.c``, ``lm_trie.c`` and ``lm_trie_quant.c``
(KenLM's reversed trie with 16-bit quantised probabilities), little-endian::

    "Trie Language Model"            19 bytes, no NUL
    order                            uint8
    counts[order]                    uint32 each (header counts; see below)
    quantiser (order > 1)            int32 (unused), then float32 bin centres: for each middle
                                     order 65536 probability + 65536 back-off centres, then
                                     65536 probability centres of the top order
    unigrams[counts[0] + 1]          {float32 prob, float32 backoff, uint32 next}; the last is a
                                     sentinel; ``next`` is the first child in the first middle level
    middle levels (orders 2..N-1)    bit-packed entries {word, backoff code 16, prob code 16, next}
    top level (order N)              bit-packed entries {word, prob code 16}
    word strings                     uint32 byte count, then NUL-terminated words (id order)

Each level is ``((1 + count) * bits + 7) // 8 + 8`` bytes; ``word`` takes
``bit_length(counts[0])`` bits and ``next`` ``bit_length(counts[n + 1])`` bits; a field is read
as the little-endian 32-bit word at byte ``bit_offset // 8`` shifted right by ``bit_offset % 8``.
The trie is reversed: the children of unigram ``u`` are the bigrams ``v u`` (entry word ``v``),
their children the trigrams ``x v u``, so a path spells an n-gram from its last word backwards.
Unigram values are floats and n-gram values codes into the bin tables, all in pocketsphinx's
integer log domain: log base 1.0001 (the base the model was built with; the unigrams of
``en-us.lm.bin`` sum to 0.9999988 in it), i.e. ``log10 = value * log10(1.0001)``.

The header counts may exceed the entries actually stored (``en-us.lm.bin`` declares 2,051,547
bigrams and stores 2,051,541: the unigram sentinel's ``next`` says how many), which is what
trips the assertion in ``sphinx_lm_convert``; we take the stored entries. The trie also holds
the back-off value for any n-gram suffix the original ARPA lacked (a "blank" entry added at
build time), which is exactly what the back-off rule gives, so distributions are unchanged.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from asr_kd.lm.model import BackoffLM
from asr_kd.utils.errors import AsrKdError

MAGIC = b"Trie Language Model"
#: pocketsphinx's default log base; ``LogMath(1.0001)`` reads these models correctly.
SPHINX_LOG_BASE = 1.0001
QUANT_BINS = 1 << 16


def _bits(max_value: int) -> int:
    """pocketsphinx's ``bitarr_required_bits``."""
    return int(max_value).bit_length()


def _read_fields(mem: np.ndarray, bit_offset: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned ``bits``-bit fields (<= 25) at ``bit_offset`` (int64 array) of byte array ``mem``."""
    byte = bit_offset >> 3
    value = (mem[byte].astype(np.uint32) | (mem[byte + 1].astype(np.uint32) << 8)
             | (mem[byte + 2].astype(np.uint32) << 16) | (mem[byte + 3].astype(np.uint32) << 24))
    return ((value >> (bit_offset & 7).astype(np.uint32)) & np.uint32((1 << bits) - 1)).astype(np.int64)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.buf = np.fromfile(path, dtype=np.uint8)
        self.pos = 0

    def take(self, nbytes: int) -> np.ndarray:
        if self.pos + nbytes > len(self.buf):
            raise AsrKdError(f"{self.path}: truncated sphinx trie LM (needs {self.pos + nbytes} bytes, "
                             f"has {len(self.buf)})")
        out = self.buf[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return out

    def array(self, dtype: str | np.dtype, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        return np.frombuffer(self.take(dtype.itemsize * count).tobytes(), dtype=dtype)


def read_sphinx_trie(path: str | os.PathLike) -> BackoffLM:
    """Read a sphinx trie binary LM (module docstring); words keep the model's spelling.

    Raises:
        AsrKdError: not a trie LM, truncated, or inconsistent pointers.
    """
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: sphinx LM file is missing")
    reader = _Reader(path)
    if bytes(reader.take(len(MAGIC))) != MAGIC:
        raise AsrKdError(f"{path}: not a sphinx trie LM (no {MAGIC.decode()!r} header)")
    order = int(reader.take(1)[0])
    if not 1 <= order <= 5:
        raise AsrKdError(f"{path}: unsupported n-gram order {order}")
    counts = [int(c) for c in reader.array("<u4", order)]
    size = counts[0]
    to_log10 = math.log10(SPHINX_LOG_BASE)
    bins = None
    if order > 1:
        reader.take(4)
        bins = reader.array("<f4", (order - 2) * 2 * QUANT_BINS + QUANT_BINS).astype(np.float64) * to_log10
    unigrams = reader.array([("prob", "<f4"), ("bo", "<f4"), ("next", "<u4")], size + 1)
    word_bits = _bits(size)
    levels = []
    for n in range(2, order + 1):
        next_bits = _bits(counts[n]) if n < order else 0
        total_bits = word_bits + (32 + next_bits if n < order else 16)
        levels.append((total_bits, next_bits, reader.take(((1 + counts[n - 1]) * total_bits + 7) // 8 + 8)))
    nbytes = int(reader.array("<u4", 1)[0])
    words = bytes(reader.take(nbytes)).split(b"\0")[:-1]
    if len(words) != size:
        raise AsrKdError(f"{path}: {len(words)} word strings for {size} unigrams")
    vocab = [w.decode("utf-8") for w in words]

    unigram_prob = unigrams["prob"][:size].astype(np.float64) * to_log10
    unigram_bow = unigrams["bo"][:size].astype(np.float64) * to_log10
    ngrams = [(np.arange(size, dtype=np.int64)[:, None], unigram_prob, unigram_bow)]
    # Walk the levels: `parent_words` (P, n-1) are the n-1 last words of each entry of the level
    # above (natural order), `first_child` (P + 1,) the child ranges.
    parent_words = np.arange(size, dtype=np.int64)[:, None]
    first_child = unigrams["next"].astype(np.int64)
    for n, (total_bits, next_bits, mem) in enumerate(levels, start=2):
        stored = int(first_child[-1])
        if stored > counts[n - 1] or np.any(np.diff(first_child) < 0):
            raise AsrKdError(f"{path}: inconsistent {n}-gram pointers")
        offset = np.arange(stored + 1, dtype=np.int64) * total_bits
        entry_word = _read_fields(mem, offset[:-1], word_bits)
        parent = np.repeat(np.arange(len(parent_words)), np.diff(first_child))
        words_n = np.concatenate([entry_word[:, None], parent_words[parent]], axis=1)
        table = n - 2  # quantiser tables of this order
        if n < order:
            bow_code = _read_fields(mem, offset[:-1] + word_bits, 16)
            prob_code = _read_fields(mem, offset[:-1] + word_bits + 16, 16)
            log_prob = bins[(2 * table) * QUANT_BINS + prob_code]
            log_bow = bins[(2 * table + 1) * QUANT_BINS + bow_code]
            first_child = _read_fields(mem, offset + word_bits + 32, next_bits)
        else:
            prob_code = _read_fields(mem, offset[:-1] + word_bits, 16)
            log_prob = bins[2 * (order - 2) * QUANT_BINS + prob_code]
            log_bow = np.zeros(stored)
        ngrams.append((words_n, log_prob, log_bow))
        parent_words = words_n
    try:
        return BackoffLM.from_ngrams(vocab, ngrams)
    except AsrKdError as err:
        raise AsrKdError(f"{path}: {err}") from None
