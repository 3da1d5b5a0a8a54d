"""Stage 7, decoding: HCLG graphs (kaldifst), beam search (kaldi-decoder).

(LMs: :mod:`asr_kd.lm`, ``asr-kd lm``.) ``asr-kd graph`` builds H o C o L o G from
the senone tree (contract A), the lexicon and an ARPA file, ``asr-kd decode`` turns per-frame
senone scores into word hypotheses and ``asr-kd score`` computes WER (:mod:`asr_kd.scoring.wer`).
"""

from asr_kd.decoding.decoder import (
    Decoder,
    DecoderConfig,
    Hypothesis,
    SearchLattice,
    lattice_best_path,
    scaled_log_likelihoods,
)
from asr_kd.decoding.graph import DecodingGraph, GraphOptions, build_graph, compile_hclg, load_graph, save_graph
from asr_kd.decoding.hmm_fst import SenoneTreeLike
from asr_kd.decoding.run import decode_store, hmm_log_likelihoods

__all__ = [
    "Decoder", "DecoderConfig", "DecodingGraph", "GraphOptions", "Hypothesis", "SearchLattice", "SenoneTreeLike",
    "build_graph", "compile_hclg", "decode_store", "hmm_log_likelihoods", "lattice_best_path",
    "load_graph", "save_graph", "scaled_log_likelihoods",
]
