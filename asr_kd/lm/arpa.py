"""ARPA back-off LM files <-> :class:`~asr_kd.lm.model.BackoffLM` (plain or ``.gz``).

The reader splits each section into tokens with one ``bytes.split`` and finds the line
structure with numpy (tokens per line), so a 3.7M n-gram file loads in seconds; the writer is
atomic and writes log10 values with 6 decimals (|rounding error| <= 5e-7, far below any model's
own precision).
"""

from __future__ import annotations

import gzip
import io
import os
import re
from pathlib import Path

import numpy as np

from asr_kd.lm.model import LOG10_ZERO, BackoffLM
from asr_kd.utils.atomic import atomic_path
from asr_kd.utils.errors import AsrKdError

_COUNT = re.compile(rb"^ngram\s+(\d+)\s*=\s*(\d+)\s*$", re.M)
_SECTION = re.compile(rb"^\\(\d+)-grams:\s*$", re.M)
_END = re.compile(rb"^\\end\\\s*$", re.M)
#: What ``bytes.split()`` splits on.
_WHITESPACE = np.array([9, 10, 11, 12, 13, 32], dtype=np.uint8)


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise AsrKdError(f"{path}: ARPA file is missing")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as err:
        raise AsrKdError(f"{path}: cannot read ARPA file ({err})") from None


def _tokens_per_line(body: bytes) -> np.ndarray:
    """(lines,) number of whitespace-separated tokens on each physical line of ``body``."""
    raw = np.frombuffer(body, dtype=np.uint8)
    space = np.isin(raw, _WHITESPACE)
    starts = np.flatnonzero(~space & np.concatenate([[True], space[:-1]]))
    newlines = np.flatnonzero(raw == 10)
    return np.bincount(np.searchsorted(newlines, starts), minlength=len(newlines) + 1)


def _numbers(path: Path, tokens: np.ndarray, line_numbers: np.ndarray) -> np.ndarray:
    try:
        return np.fromiter(map(float, tokens), dtype=np.float64, count=len(tokens))
    except ValueError:
        for token, line in zip(tokens, line_numbers):
            try:
                float(token)
            except ValueError:
                raise AsrKdError(f"{path}:{line}: {token.decode(errors='replace')!r} is not a number") from None
        raise


def _parse_section(path: Path, body: bytes, n: int, first_line: int, word_id: dict[bytes, int] | None):
    """``(words (N, n) ids, or the word byte strings for n = 1, log_prob (N,), log_bow (N,))`` of one section."""
    per_line = _tokens_per_line(body)
    line_numbers = first_line + np.flatnonzero(per_line)
    per_line = per_line[per_line > 0]
    bad = np.flatnonzero((per_line != n + 1) & (per_line != n + 2))
    if len(bad):
        line = body.split(b"\n")[line_numbers[bad[0]] - first_line].decode(errors="replace")
        raise AsrKdError(f"{path}:{line_numbers[bad[0]]}: a {n}-gram line needs a log-probability, {n} words and "
                         f"an optional back-off weight, got {line.strip()[:80]!r}")
    tokens = np.array(body.split(), dtype=object)
    start = np.concatenate([[0], np.cumsum(per_line)[:-1]])
    log_prob = _numbers(path, tokens[start], line_numbers)
    with_bow = np.flatnonzero(per_line == n + 2)
    log_bow = np.zeros(len(per_line))
    log_bow[with_bow] = _numbers(path, tokens[start[with_bow] + n + 1], line_numbers[with_bow])
    names = tokens[(start[:, None] + np.arange(1, n + 1)[None, :]).ravel()]
    if word_id is None:
        return names, log_prob, log_bow
    try:
        words = np.fromiter(map(word_id.__getitem__, names), dtype=np.int64, count=len(names))
    except KeyError as err:
        line = line_numbers[next(i for i, w in enumerate(names) if w == err.args[0]) // n]
        raise AsrKdError(f"{path}:{line}: word {err.args[0].decode(errors='replace')!r} of a {n}-gram "
                         f"is not a unigram") from None
    return words.reshape(len(per_line), n), log_prob, log_bow


def read_arpa(path: str | os.PathLike) -> BackoffLM:
    """Read an ARPA file (UTF-8).

    Raises:
        AsrKdError: no ``\\data\\`` header, sections out of order or with another number of
            n-grams than the header declares, malformed lines, n-grams over unknown words,
            duplicate n-grams (each naming the file, and the line where known).
    """
    path = Path(path)
    text = _read_bytes(path)
    data = text.find(b"\\data\\")
    if data < 0:
        raise AsrKdError(f"{path}: not an ARPA file (no \\data\\ header)")
    sections = list(_SECTION.finditer(text, data))
    if not sections:
        raise AsrKdError(f"{path}: ARPA file has no \\1-grams: section")
    declared = {int(m.group(1)): int(m.group(2)) for m in _COUNT.finditer(text, data, sections[0].start())}
    if not declared:
        raise AsrKdError(f"{path}: the \\data\\ header declares no n-gram counts")
    orders = [int(m.group(1)) for m in sections]
    if orders != list(range(1, len(orders) + 1)) or sorted(declared) != orders:
        raise AsrKdError(f"{path}: sections {orders} do not match the header's orders {sorted(declared)}")
    end = _END.search(text, sections[-1].end())
    if end is None:
        raise AsrKdError(f"{path}: ARPA file has no \\end\\ marker (truncated?)")
    stops = [m.start() for m in sections[1:]] + [end.start()]
    ngrams, vocab, word_id = [], None, None
    for n, (section, stop) in enumerate(zip(sections, stops), start=1):
        first_line = text.count(b"\n", 0, section.end()) + 1
        words, log_prob, log_bow = _parse_section(path, text[section.end():stop], n, first_line, word_id)
        if len(log_prob) != declared[n]:
            raise AsrKdError(f"{path}: header declares {declared[n]} {n}-grams, the \\{n}-grams: section has "
                             f"{len(log_prob)}")
        if n == 1:
            word_id = {w: i for i, w in enumerate(words)}
            if len(word_id) != len(words):
                raise AsrKdError(f"{path}: duplicate unigrams")
            try:
                vocab = [w.decode("utf-8") for w in words]
            except UnicodeDecodeError as err:
                raise AsrKdError(f"{path}: a word is not valid UTF-8 ({err})") from None
            words = np.arange(len(vocab), dtype=np.int64)[:, None]
        ngrams.append((words, log_prob, log_bow))
    try:
        return BackoffLM.from_ngrams(vocab, ngrams)
    except AsrKdError as err:
        raise AsrKdError(f"{path}: {err}") from None


def _format_order(lm: BackoffLM, n: int, precision: int) -> str:
    table = lm.tables[n - 1]
    words = lm.ngram_words(n)
    vocab = np.asarray(lm.vocab, dtype=object)
    names = vocab[words[:, 0]] if n == 1 else [" ".join(t) for t in zip(*(vocab[words[:, j]] for j in range(n)))]
    log_prob = np.maximum(table.log_prob, LOG10_ZERO)
    if n < lm.order:
        log_bow = np.maximum(table.log_bow, LOG10_ZERO)
        lines = [f"{p:.{precision}f}\t{w}\t{b:.{precision}f}" if b != 0.0 else f"{p:.{precision}f}\t{w}"
                 for p, w, b in zip(log_prob.tolist(), names, log_bow.tolist())]
    else:
        lines = [f"{p:.{precision}f}\t{w}" for p, w in zip(log_prob.tolist(), names)]
    return "\n".join(lines)


def write_arpa(lm: BackoffLM, path: str | os.PathLike, precision: int = 6) -> Path:
    """Write ``lm`` as ARPA (gzipped if ``path`` ends in ``.gz``), atomically; returns ``path``.

    Back-off weights of 1 (log 0) are left out, as ARPA allows.
    """
    path = Path(path)
    out = io.StringIO()
    out.write("\\data\\\n")
    for n, count in enumerate(lm.counts, start=1):
        out.write(f"ngram {n}={count}\n")
    for n in range(1, lm.order + 1):
        out.write(f"\n\\{n}-grams:\n")
        out.write(_format_order(lm, n, precision))
        out.write("\n")
    out.write("\n\\end\\\n")
    with atomic_path(path) as tmp:
        data = out.getvalue().encode("utf-8")
        if path.suffix == ".gz":
            with gzip.open(tmp, "wb", compresslevel=6) as f:
                f.write(data)
        else:
            tmp.write_bytes(data)
    return path
