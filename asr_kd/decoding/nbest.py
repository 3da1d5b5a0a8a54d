"""N-best lists with separate costs, the settings that rank them, and their file format.

Each hypothesis keeps the three parts of its path cost (natural-log units, from
:func:`asr_kd.decoding.lattice.nbest`):

* ``graph_cost``: HCLG cost (LM, pronunciation and silence probabilities, HMM transitions);
* ``acoustic_cost``: ``-sum_t loglik[t, s_t]`` at the decode's prior scale, *unscaled*;
* ``log_prior_sum``: ``sum_t log p(s_t)`` over the path's senones.

A :class:`ScoringSetting` ranks them as Kaldi's ``score.sh`` does (``lattice-scale
--inv-acoustic-scale=LMWT | lattice-add-penalty --word-ins-penalty=WIP``)::

    cost = graph_cost + WIP * num_words + acoustic_cost(prior_scale) / LMWT
    acoustic_cost(k) = acoustic_cost + (k - decode_prior_scale) * log_prior_sum

(``log p(s|x) - k log p(s)`` summed along the same path), so LM weight, insertion penalty and
prior scale are swept without a new search; the path of each word sequence stays the one the
search found at its own settings, as in Kaldi's lattice scoring.

A list holds the N best word sequences at the search's setting plus, for each setting of a
*coverage grid* (by default Kaldi's, :func:`kaldi_grid`), the best path of the word graph under
that setting: a 100-best list of a 10 s utterance covers the search's own setting only, and the
word sequence that wins at LMWT 7 or 17 is often far down it. A word sequence may therefore
appear twice, with two alignments.

File (``nbest.jsonl.gz``): a header line (``{"format": ..., "acoustic_scale", "prior_scale",
...}``), then one line per utterance ``{"utt": id, "hyps": [[words, graph, acoustic, prior],
...]}``, best first at the search's own setting.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asr_kd.utils.atomic import atomic_path
from asr_kd.utils.errors import AsrKdError

FORMAT = "asr_kd-nbest-1"
NBEST_FILE = "nbest.jsonl.gz"
#: Kaldi's score.sh grid for hybrid nnet models (LMWT 7..17, WIP 0, 0.5, 1).
DEFAULT_LM_WEIGHTS = tuple(float(w) for w in range(7, 18))
DEFAULT_WORD_INS_PENALTIES = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class Hypothesis:
    """One N-best entry (see the module docstring for the cost parts)."""

    words: tuple[str, ...]
    graph_cost: float
    acoustic_cost: float
    log_prior_sum: float = 0.0


@dataclass(frozen=True)
class ScoringSetting:
    """LM weight (LMWT = 1 / acoustic scale), word-insertion penalty and prior scale."""

    lm_weight: float
    word_ins_penalty: float = 0.0
    prior_scale: float = 1.0

    def as_dict(self) -> dict[str, float]:
        return {"lm_weight": self.lm_weight, "word_ins_penalty": self.word_ins_penalty,
                "prior_scale": self.prior_scale}


@dataclass
class NBestLists:
    """Per-utterance N-best lists and the decode settings they were produced with.

    Attributes:
        header: ``acoustic_scale`` and ``prior_scale`` of the search, the graph key, the LM
            (and any rescoring), the list size.
        utterances: utterance id -> hypotheses, best first at the search's setting.
    """

    header: dict[str, Any]
    utterances: dict[str, list[Hypothesis]]

    @property
    def decode_prior_scale(self) -> float:
        return float(self.header["prior_scale"])

    def search_setting(self) -> ScoringSetting:
        """The setting the search ranked with (LMWT = 1 / acoustic scale, no penalty)."""
        return ScoringSetting(1.0 / float(self.header["acoustic_scale"]), 0.0, self.decode_prior_scale)

    def best(self, setting: ScoringSetting) -> dict[str, str]:
        """Best word sequence of each utterance under ``setting`` (empty list: empty hypothesis)."""
        return {utt: " ".join(best_hypothesis(hyps, setting, self.decode_prior_scale).words) if hyps else ""
                for utt, hyps in self.utterances.items()}


def setting_cost(graph_cost, acoustic_cost, log_prior_sum, num_words, setting: ScoringSetting,
                 decode_prior_scale: float):
    """The module docstring's cost of scalars or equally shaped arrays (unscaled acoustic costs)."""
    acoustic = acoustic_cost + (setting.prior_scale - decode_prior_scale) * log_prior_sum
    return graph_cost + setting.word_ins_penalty * num_words + acoustic / setting.lm_weight


def hypothesis_cost(hyp: Hypothesis, setting: ScoringSetting, decode_prior_scale: float) -> float:
    """Cost of ``hyp`` under ``setting`` (module docstring); lower is better."""
    return setting_cost(hyp.graph_cost, hyp.acoustic_cost, hyp.log_prior_sum, len(hyp.words), setting,
                        decode_prior_scale)


def kaldi_grid(prior_scale: float) -> list[ScoringSetting]:
    """Kaldi's ``score.sh`` grid for hybrid nnet models: LMWT 7..17 x WIP 0, 0.5, 1, at one prior scale."""
    return [ScoringSetting(w, p, prior_scale) for w in DEFAULT_LM_WEIGHTS for p in DEFAULT_WORD_INS_PENALTIES]


def best_hypothesis(hyps: Sequence[Hypothesis], setting: ScoringSetting, decode_prior_scale: float) -> Hypothesis:
    """The cheapest of ``hyps`` under ``setting`` (the first one on ties)."""
    return min(hyps, key=lambda h: hypothesis_cost(h, setting, decode_prior_scale))


def write_nbest(path: str | os.PathLike, lists: NBestLists) -> None:
    """Atomically write ``lists`` as gzipped JSON lines (module docstring)."""
    with atomic_path(path, suffix=".gz") as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"format": FORMAT, **lists.header}) + "\n")
        for utt, hyps in lists.utterances.items():
            rows = [[" ".join(h.words), round(h.graph_cost, 4), round(h.acoustic_cost, 4), round(h.log_prior_sum, 4)]
                    for h in hyps]
            f.write(json.dumps({"utt": utt, "hyps": rows}) + "\n")


def read_nbest(path: str | os.PathLike) -> NBestLists:
    """Read a file written by :func:`write_nbest`.

    Raises:
        AsrKdError: missing file, not an N-best file, a malformed line.
    """
    path = Path(path)
    if not path.exists():
        raise AsrKdError(f"{path}: N-best file is missing (decode with --nbest N)")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise AsrKdError(f"{path}: cannot read N-best file ({err})") from None
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        header = {}
    if header.get("format") != FORMAT:
        raise AsrKdError(f"{path}: not an asr_kd N-best file (first line has no format {FORMAT!r})")
    utterances: dict[str, list[Hypothesis]] = {}
    for line_no, line in enumerate(lines[1:], start=2):
        try:
            row = json.loads(line)
            hyps = [Hypothesis(tuple(w.split()), float(g), float(a), float(p)) for w, g, a, p in row["hyps"]]
            utterances[str(row["utt"])] = hyps
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise AsrKdError(f"{path}:{line_no}: malformed N-best line") from None
    header.pop("format")
    return NBestLists(header, utterances)
