"""A back-off n-gram LM as sorted numpy tables: vectorised lookup and back-off probabilities.

Orders ``1..N`` each have an :class:`NGramTable` whose rows are sorted by the int64 key
``context * V + word``: ``context`` is the row of the n-gram's first ``n - 1`` words in the table
of order ``n - 1`` (0 for unigrams), ``word`` its last word and ``V`` the vocabulary size. So
the unigram row of a word is its word id, all continuations of one history are a contiguous
run of the next table, and finding ``M`` n-grams is ``n - 1`` calls of ``np.searchsorted``.
This layout needs every n-gram's prefix to be an explicit n-gram; :meth:`BackoffLM.from_ngrams`
adds a missing prefix with exactly the probability the back-off rule gives it and back-off
weight 1 (SRILM's ``fixupProbs``), which leaves every distribution of the model unchanged.

Probabilities and back-off weights are log10, as in ARPA files; ``-99`` is ARPA's log of zero
(the probability of ``<s>``). Back-off semantics (Katz / ARPA):
``P(w | h) = P*(w | h)`` if ``(h, w)`` is explicit, else ``BOW(h) * P(w | h[1:])``, with
``BOW(h) = 1`` when ``h`` is not an explicit n-gram.

Written in numpy rather than taken from a package: the ARPA tools on PyPI that run offline
(``kaldingram``, ``arpa``) keep n-grams in Python dicts of tuples, minutes and GBs for a
72k-word trigram's 3.7M n-grams where these tables take seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asr_kd.utils.errors import AsrKdError

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
#: ARPA's log10 of probability zero.
LOG10_ZERO = -99.0


@dataclass
class NGramTable:
    """The explicit n-grams of one order, sorted by ``context * V + word``.

    Attributes:
        context: (N,) int64 row of the n-gram's first ``n - 1`` words in the table of order
            ``n - 1`` (all 0 for unigrams).
        word: (N,) int64 id of the last word.
        log_prob: (N,) float64 log10 P(word | first n - 1 words).
        log_bow: (N,) float64 log10 back-off weight of the n-gram used as a history (0 = none).
    """

    context: np.ndarray
    word: np.ndarray
    log_prob: np.ndarray
    log_bow: np.ndarray

    def __len__(self) -> int:
        return len(self.word)

    def select(self, keep: np.ndarray) -> NGramTable:
        """The rows where boolean ``keep`` is true (order preserved)."""
        return NGramTable(self.context[keep], self.word[keep], self.log_prob[keep], self.log_bow[keep])


class BackoffLM:
    """A back-off n-gram LM over ``vocab``; see the module docstring for the layout.

    Attributes:
        vocab: word strings; word id = index.
        tables: ``tables[n - 1]`` holds the n-grams of order ``n``.
    """

    def __init__(self, vocab: Sequence[str], tables: list[NGramTable]) -> None:
        self.vocab = tuple(vocab)
        self.word_id = {w: i for i, w in enumerate(self.vocab)}
        if len(self.word_id) != len(self.vocab):
            raise AsrKdError("LM vocabulary has duplicate words")
        if not tables or len(tables[0]) != len(self.vocab):
            raise AsrKdError("LM needs exactly one unigram per vocabulary word")
        self.tables = tables
        size = np.int64(len(self.vocab))
        self._keys = [t.context * size + t.word for t in tables]
        for n, keys in enumerate(self._keys, start=1):
            if len(keys) > 1 and not np.all(keys[1:] > keys[:-1]):
                raise AsrKdError(f"LM {n}-gram table is not sorted or has duplicate n-grams")
        self._words_cache: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_ngrams(
        cls, vocab: Sequence[str], ngrams: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> BackoffLM:
        """Build from per-order arrays ``(words (N, n) int, log_prob (N,), log_bow (N,))``.

        ``ngrams[0]`` are the unigrams (each vocabulary word once, any order). Missing prefixes of
        higher-order n-grams are added with their back-off probability (module docstring).

        Raises:
            AsrKdError: a word id outside the vocabulary, a duplicate n-gram, or a unigram table
                that does not list every vocabulary word once.
        """
        size = len(vocab)
        raw = [
            (np.asarray(w, dtype=np.int64).reshape(len(w), n), np.asarray(p, dtype=np.float64),
             np.asarray(b, dtype=np.float64))
            for n, (w, p, b) in enumerate(ngrams, start=1)
        ]
        for n, (words, _, _) in enumerate(raw, start=1):
            if words.size and (words.min() < 0 or words.max() >= size):
                raise AsrKdError(f"LM {n}-grams use a word id outside the vocabulary of {size}")
        uni_words, uni_prob, uni_bow = raw[0]
        order = np.argsort(uni_words[:, 0], kind="stable")
        if len(order) != size or not np.array_equal(uni_words[order, 0], np.arange(size)):
            raise AsrKdError("LM unigrams must list every vocabulary word exactly once")
        uni_prob = uni_prob[order].copy()
        if BOS in vocab:  # never predicted; writers disagree on its value (SRILM -99, KenLM 0)
            uni_prob[list(vocab).index(BOS)] = LOG10_ZERO
        raw[0] = (uni_words[order], uni_prob, uni_bow[order])
        _add_missing_prefixes(raw)

        tables = [NGramTable(np.zeros(size, np.int64), np.arange(size, dtype=np.int64), raw[0][1], raw[0][2])]
        for n in range(2, len(raw) + 1):
            words, log_prob, log_bow = raw[n - 1]
            partial = cls(vocab, tables)
            context = partial.find(words[:, :-1])
            assert np.all(context >= 0), "prefix closure failed"
            keys = context * np.int64(size) + words[:, -1]
            perm = np.argsort(keys, kind="stable")
            keys = keys[perm]
            dup = np.flatnonzero(keys[1:] == keys[:-1])
            if len(dup):
                example = " ".join(vocab[i] for i in words[perm[dup[0]]])
                raise AsrKdError(f"LM has {len(dup)} duplicate {n}-grams, e.g. {example!r}")
            words, log_prob, log_bow, context = words[perm], log_prob[perm], log_bow[perm], context[perm]
            fake = np.isnan(log_prob)
            if fake.any():  # added prefixes: the back-off estimate from the lower orders
                log_prob = log_prob.copy()
                log_prob[fake] = partial._backoff_log_prob(words[fake])
            tables.append(NGramTable(context, words[:, -1].copy(), log_prob, log_bow))
        return cls(vocab, tables)

    def with_tables(self, tables: list[NGramTable]) -> BackoffLM:
        """The same vocabulary with other tables (keys recomputed)."""
        return BackoffLM(self.vocab, tables)

    def truncated(self, order: int) -> BackoffLM:
        """The model's orders ``1..order`` (a normalised model of that order: the dropped
        orders' histories' back-off weights go with them)."""
        if order >= self.order:
            return self
        if order < 1:
            raise AsrKdError(f"an LM needs order >= 1, got {order}")
        top = self.tables[order - 1]
        tables = [*self.tables[:order - 1], NGramTable(top.context, top.word, top.log_prob, np.zeros(len(top)))]
        return BackoffLM(self.vocab, tables)

    def renamed(self, vocab: Sequence[str]) -> BackoffLM:
        """The same model with every word id renamed (``vocab[i]`` replaces ``self.vocab[i]``)."""
        if len(vocab) != len(self.vocab):
            raise AsrKdError("renamed vocabulary must have the same size")
        return BackoffLM(vocab, self.tables)

    # ------------------------------------------------------------------ properties
    @property
    def order(self) -> int:
        return len(self.tables)

    @property
    def counts(self) -> list[int]:
        """Number of explicit n-grams of each order, unigrams first."""
        return [len(t) for t in self.tables]

    def ids(self, words: Sequence[str], unknown: int = -1) -> np.ndarray:
        """(len(words),) int64 word ids; ``unknown`` for words outside the vocabulary."""
        get = self.word_id.get
        return np.fromiter((get(w, unknown) for w in words), dtype=np.int64, count=len(words))

    def ngram_words(self, n: int) -> np.ndarray:
        """(N_n, n) int64 word ids of every explicit n-gram of order ``n``, in table order."""
        if n not in self._words_cache:
            table = self.tables[n - 1]
            if n == 1:
                words = table.word[:, None]
            else:
                words = np.concatenate([self.ngram_words(n - 1)[table.context], table.word[:, None]], axis=1)
            self._words_cache[n] = words
        return self._words_cache[n]

    # ------------------------------------------------------------------ lookup
    def _lookup(self, n: int, context: np.ndarray, word: np.ndarray) -> np.ndarray:
        """Rows of ``(context row in table n - 1, word)`` in table ``n``; -1 where absent."""
        keys = self._keys[n - 1]
        valid = (context >= 0) & (word >= 0) & (word < len(self.vocab))
        if len(keys) == 0:
            return np.full(len(word), -1, dtype=np.int64)
        query = np.where(valid, context * np.int64(len(self.vocab)) + word, -1)
        if len(query) > 4096:  # sorted needles make np.searchsorted several times faster
            perm = np.argsort(query)
            pos = np.empty(len(query), dtype=np.int64)
            pos[perm] = np.searchsorted(keys, query[perm])
        else:
            pos = np.searchsorted(keys, query)
        pos = np.minimum(pos, len(keys) - 1)
        return np.where(valid & (keys[pos] == query), pos, -1)

    def find(self, words: np.ndarray) -> np.ndarray:
        """Rows of the n-grams ``words`` (M, n) in the table of order n; -1 where not explicit.

        A -1 word id (unknown word, or "before the sentence start") never matches. ``n = 0``
        gives row 0 (the empty history) for every query.
        """
        words = np.asarray(words, dtype=np.int64)
        if words.shape[1] == 0:
            return np.zeros(len(words), dtype=np.int64)
        if words.shape[1] > self.order:
            return np.full(len(words), -1, dtype=np.int64)
        row = np.where((words[:, 0] >= 0) & (words[:, 0] < len(self.vocab)), words[:, 0], -1)
        for j in range(1, words.shape[1]):
            row = self._lookup(j + 1, row, words[:, j])
        return row

    def log_prob(self, words: np.ndarray) -> np.ndarray:
        """(M,) log10 P(last word | earlier words) of the rows of ``words`` (M, k), with back-off.

        History entries of -1 (unknown words, or positions before ``<s>``) cut the history there.
        Histories longer than ``order - 1`` words are truncated. A -1 predicted word gets -inf.
        """
        words = np.asarray(words, dtype=np.int64)
        if words.shape[1] > self.order:
            words = words[:, words.shape[1] - self.order:]
        k = words.shape[1]
        result = np.zeros(len(words), dtype=np.float64)
        todo = np.arange(len(words))
        for m in range(k, 0, -1):  # the m-gram ending in the predicted word
            if len(todo) == 0:
                break
            sub = words[todo, k - m:]
            history = self.find(sub[:, :-1])
            row = self._lookup(m, history, sub[:, -1]) if m > 1 else self.find(sub)
            hit = row >= 0
            result[todo[hit]] += self.tables[m - 1].log_prob[row[hit]]
            backoff = ~hit & (history >= 0)
            if m > 1:
                result[todo[backoff]] += self.tables[m - 2].log_bow[history[backoff]]
            todo = todo[~hit]
        result[todo] = -np.inf
        return result

    def _backoff_log_prob(self, words: np.ndarray) -> np.ndarray:
        """log10 BOW(h) + log10 P(w | h[1:]) for rows ``h w`` of ``words`` (M, n): the back-off
        estimate, ignoring any explicit n-gram ``h w`` itself."""
        history = self.find(words[:, :-1])
        bow = np.where(history >= 0, self.tables[words.shape[1] - 2].log_bow[np.maximum(history, 0)], 0.0)
        return bow + self.log_prob(words[:, 1:])

    def lower_order_log_prob(self, n: int) -> np.ndarray:
        """(N_n,) log10 P(w | h[1:]) for every explicit n-gram ``h w`` of order ``n >= 2``."""
        return self.log_prob(self.ngram_words(n)[:, 1:])

    def context_log_prob(self, n: int) -> np.ndarray:
        """(N_n,) log10 marginal probability of every explicit n-gram of order ``n`` as a word
        sequence, as SRILM's ``computeContextProb``: the chain rule, with ``P(</s>)`` standing in
        for the zero ``P(<s>)`` of a leading ``<s>``."""
        words = self.ngram_words(n)
        first = words[:, :1].copy()
        bos, eos = self.word_id.get(BOS), self.word_id.get(EOS)
        if bos is not None and eos is not None:
            first[first == bos] = eos
        total = self.log_prob(first)
        for j in range(2, n + 1):
            total += self.log_prob(words[:, :j])
        return total

    # ------------------------------------------------------------------ text
    def sentence_windows(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """N-gram windows of every token of ``sentences`` plus ``</s>``, after ``<s>``.

        Words outside the vocabulary become ``<unk>`` if the model has it, else -1.

        Returns:
            ``(windows (T, order), is_oov (T,))``: row t holds the ``order`` word ids ending in
            token t (-1 before the sentence start), ``is_oov`` marks tokens that were not in the
            vocabulary.
        """
        unk = self.word_id.get(UNK, -1)
        bos, eos = self.word_id.get(BOS, -1), self.word_id.get(EOS, -1)
        pieces, oov_flags, starts, lengths = [], [], [], []
        offset = 0
        for sentence in sentences:
            raw = self.ids(list(sentence))
            oov_flags.append(np.concatenate([raw < 0, [False]]))
            ids = np.concatenate([[bos], np.where(raw < 0, unk, raw), [eos]])
            pieces.append(ids)
            starts.append(offset)
            lengths.append(len(ids))
            offset += len(ids)
        if not pieces:
            return np.zeros((0, self.order), np.int64), np.zeros(0, bool)
        tokens = np.concatenate(pieces)
        start = np.repeat(np.asarray(starts), np.asarray(lengths))
        position = np.arange(len(tokens))
        predicted = position != start  # every token but <s>
        index = position[predicted][:, None] + np.arange(-(self.order - 1), 1)[None, :]
        before_start = index < start[predicted][:, None]
        windows = np.where(before_start, -1, tokens[np.maximum(index, 0)])
        return windows, np.concatenate(oov_flags)

    def token_log_probs(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """log10 probability of every token and of each sentence's ``</s>``.

        Returns:
            ``(log_probs (T,), is_oov (T,))`` in the order of :meth:`sentence_windows`.
        """
        windows, is_oov = self.sentence_windows(sentences)
        return self.log_prob(windows), is_oov


def _dense_ids(*blocks: np.ndarray) -> list[np.ndarray]:
    """Equal int64 ids for equal rows across ``blocks`` (each (N_i, m) int64 word ids, same m)."""
    stacked = np.concatenate(blocks, axis=0)
    radix = int(stacked.max(initial=0)) + 1
    if radix ** stacked.shape[1] < 2**62:  # the row in mixed radix is its own id
        ids = np.zeros(len(stacked), dtype=np.int64)
        for j in range(stacked.shape[1]):
            ids = ids * radix + stacked[:, j]
    else:  # rank prefixes column by column
        ids = stacked[:, 0].copy()
        for j in range(1, stacked.shape[1]):
            _, ids = np.unique(ids * radix + stacked[:, j], return_inverse=True)
    bounds = np.cumsum([0] + [len(b) for b in blocks])
    return [ids[bounds[i]: bounds[i + 1]] for i in range(len(blocks))]


def _add_missing_prefixes(raw: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """Append (with NaN probability, bow 0) every prefix of a higher n-gram missing from ``raw``."""
    for n in range(len(raw), 2, -1):
        prefixes = raw[n - 1][0][:, :-1]
        words, log_prob, log_bow = raw[n - 2]
        have, want = _dense_ids(words, prefixes)
        want_sorted, first = np.unique(want, return_index=True)
        have = np.sort(have)
        pos = np.minimum(np.searchsorted(have, want_sorted), max(len(have) - 1, 0))
        missing = prefixes[first[have[pos] != want_sorted]] if len(have) else prefixes[first]
        if len(missing):
            raw[n - 2] = (np.concatenate([words, missing]), np.concatenate([log_prob, np.full(len(missing), np.nan)]),
                          np.concatenate([log_bow, np.zeros(len(missing))]))
