"""LM rescoring of N-best lists, as Kaldi's ``lmrescore.sh``: remove the old LM's cost, add the new one's.

Kaldi composes the lattice with the old G at ``--lm-scale=-1`` and with the new G at ``+1``;
here each N-best hypothesis is a linear word acceptor composed (kaldifst) with the output
projection of each G (back-off ``#0`` arcs become epsilons, as ``fstproject --project_output``
does), and the shortest path is its LM cost, the same tropical approximation of back-off the
decoding graph was built with::

    graph_cost' = graph_cost - cost_G_old(words) + cost_G_new(words)

Acoustic costs are unchanged, so LM weight and penalties are swept after rescoring. G of a big
LM takes a while to build (arpa2fst), so :func:`load_grammar` caches it on disk keyed by the
hashes of the ARPA file and the word table.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import kaldifst
import numpy as np

from asr_kd.decoding.fst_arrays import arrays_to_fst, fst_to_arrays
from asr_kd.decoding.grammar import make_grammar_fst
from asr_kd.decoding.hclg import file_sha256
from asr_kd.decoding.lexicon_fst import word_table_text
from asr_kd.decoding.nbest import Hypothesis, NBestLists, hypothesis_cost
from asr_kd.utils.atomic import write_json, write_with
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import get_logger

log = get_logger("decoding.rescore")


@dataclass
class LmScorer:
    """Word-sequence LM costs from an ARPA LM's G (natural-log costs, ``</s>`` included).

    Attributes:
        fst: G projected on its output side, ilabel-sorted.
        word_ids: word -> id in the table G was built over.
        name: what to call this LM in messages and headers.
    """

    fst: kaldifst.StdVectorFst
    word_ids: dict[str, int]
    name: str

    def cost(self, words: Sequence[str]) -> float:
        """``-ln P(words </s> | <s>)``; ``inf`` when G has no path (a word the LM cannot produce)."""
        try:
            ids = [self.word_ids[w] for w in words]
        except KeyError as err:
            raise AsrKdError(f"{self.name}: word {err.args[0]} is not in the word table") from None
        path = kaldifst.shortest_path(kaldifst.compose(kaldifst.make_linear_acceptor(ids), self.fst))
        ok, _, _, weight = kaldifst.get_linear_symbol_sequence(path)
        return float(weight.value) if ok and path.num_states else float("inf")


def _project_output(fst: kaldifst.StdVectorFst) -> kaldifst.StdVectorFst:
    arrays = fst_to_arrays(fst)
    arrays.ilabel = arrays.olabel.copy()
    out = arrays_to_fst(arrays)
    kaldifst.arcsort(out, sort_type="ilabel")
    return out


def load_grammar(arpa: str | os.PathLike, words: Sequence[str], cache_dir: str | os.PathLike) -> LmScorer:
    """:class:`LmScorer` of ``arpa`` over ``words``; G is built once into ``cache_dir`` and reused.

    The cache entry ``G_<hash>.fst`` (+ ``.json``) is keyed by the sha256 of the ARPA file and
    of the word table, so another LM or another graph's words never reuse it.
    """
    arpa = Path(arpa)
    cache_dir = Path(cache_dir)
    key = {"arpa_sha256": file_sha256(arpa), "words_sha256": _text_sha256(word_table_text(words))}
    stem = f"G_{key['arpa_sha256'][:12]}_{key['words_sha256'][:12]}"
    fst_path, info_path = cache_dir / f"{stem}.fst", cache_dir / f"{stem}.json"
    if info_path.exists() and json.loads(info_path.read_text()).get("key") == key:
        fst = kaldifst.StdVectorFst.read(str(fst_path))
    else:
        log.info("rescore: building G of %s (cached in %s)", arpa, cache_dir)
        g, report = make_grammar_fst(arpa, words)
        fst = _project_output(g)
        write_with(fst_path, lambda tmp: fst.write(str(tmp)))
        write_json(info_path, {"key": key, "arpa": str(arpa), "ngram_counts": report.arpa.ngram_counts,
                               "lm_words_missing_from_word_table": len(report.missing_words)})
    return LmScorer(fst, {w: i for i, w in enumerate(words)}, arpa.name)


def _text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def rescore(lists: NBestLists, old: LmScorer, new: LmScorer) -> tuple[NBestLists, dict[str, int]]:
    """Replace ``old``'s LM cost by ``new``'s in every hypothesis; hypotheses ``new`` cannot produce are dropped.

    Returns:
        ``(rescored lists, counts)``; ``counts`` has ``hypotheses``, ``dropped`` (no path in the
        new G) and ``utterances_emptied`` (every hypothesis dropped: the utterance keeps none).

    Raises:
        AsrKdError: a hypothesis has no path through the old G (the N-best list was not decoded
            with that LM).
    """
    out: dict[str, list[Hypothesis]] = {}
    total = dropped = emptied = 0
    for utt, hyps in lists.utterances.items():
        kept = []
        for hyp in hyps:
            total += 1
            old_cost = old.cost(hyp.words)
            if not np.isfinite(old_cost):
                raise AsrKdError(f"{utt}: hypothesis {' '.join(hyp.words)!r} has no path in {old.name}: "
                                 "the N-best list was decoded with another LM")
            new_cost = new.cost(hyp.words)
            if not np.isfinite(new_cost):
                dropped += 1
                continue
            kept.append(Hypothesis(hyp.words, hyp.graph_cost - old_cost + new_cost, hyp.acoustic_cost,
                                   hyp.log_prior_sum))
        emptied += bool(hyps) and not kept
        search = lists.search_setting()
        out[utt] = sorted(kept, key=lambda h: hypothesis_cost(h, search, lists.decode_prior_scale))
    header = {**lists.header, "rescored": [*lists.header.get("rescored", []), {"old": old.name, "new": new.name}]}
    return NBestLists(header, out), {"hypotheses": total, "dropped": dropped, "utterances_emptied": emptied}
