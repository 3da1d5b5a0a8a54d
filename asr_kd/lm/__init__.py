"""Language models for decoding: ARPA back-off n-grams held as numpy tables (``asr-kd lm``).

* :mod:`~asr_kd.lm.model` -- :class:`BackoffLM`: vectorised n-gram lookup, back-off
  probabilities, sentence scoring (what lattice / n-best rescoring needs);
* :mod:`~asr_kd.lm.arpa` -- read / write ARPA files;
* :mod:`~asr_kd.lm.sphinx_trie` -- read pocketsphinx's binary trie LMs (``en-us.lm.bin``);
* :mod:`~asr_kd.lm.normalisation` -- does every history sum to one; back-off weight recomputation;
* :mod:`~asr_kd.lm.prune` -- relative-entropy pruning (SRILM's ``-prune``);
* :mod:`~asr_kd.lm.evaluate` -- perplexity and OOV rate on evaluation text;
* :mod:`~asr_kd.lm.kenlm` -- training on transcripts with KenLM's ``lmplz``;
* :mod:`~asr_kd.lm.sources`, :mod:`~asr_kd.lm.build` -- where models come from, and the files
  ``asr-kd lm`` writes (ARPA + a lexicon covering it + a JSON report).
"""

from asr_kd.lm.arpa import read_arpa, write_arpa
from asr_kd.lm.build import LmRequest, produce_lm, side_files
from asr_kd.lm.evaluate import TextScore, score_text
from asr_kd.lm.model import BackoffLM, NGramTable
from asr_kd.lm.normalisation import NormalisationReport, check_normalisation, recompute_backoffs
from asr_kd.lm.prune import prune_entropy
from asr_kd.lm.sources import load_pocketsphinx_en_us, to_lower_case, to_upper_case
from asr_kd.lm.sphinx_trie import read_sphinx_trie

__all__ = [
    "BackoffLM", "LmRequest", "NGramTable", "NormalisationReport", "TextScore", "check_normalisation",
    "load_pocketsphinx_en_us", "produce_lm", "prune_entropy", "read_arpa", "read_sphinx_trie",
    "recompute_backoffs", "score_text", "side_files", "to_lower_case", "to_upper_case", "write_arpa",
]
