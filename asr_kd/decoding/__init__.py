"""Stage 7, decoding: HCLG graphs (kaldifst), beam search (kaldi-decoder).

(LMs: :mod:`asr_kd.lm`, ``asr-kd lm``.) ``asr-kd graph`` builds H o C o L o G from
the senone tree (``<exp>/tree/tree.json``), the lexicon and an ARPA file, ``asr-kd decode`` turns per-frame
senone scores into word hypotheses and ``asr-kd score`` computes WER (:mod:`asr_kd.scoring.wer`).
"""

from asr_kd.decoding.decoder import (
    BestPath,
    Decoder,
    DecoderConfig,
    NoPathError,
    SearchLattice,
    lattice_best_path,
    scaled_log_likelihoods,
)
from asr_kd.decoding.hclg import DecodingGraph, GraphOptions, build_graph, compile_hclg, load_graph, save_graph
from asr_kd.decoding.hmm_fst import SenoneTreeLike
from asr_kd.decoding.nbest import Hypothesis, NBestLists, ScoringSetting, read_nbest, write_nbest
from asr_kd.decoding.rescore import LmScorer, load_grammar, rescore
from asr_kd.decoding.store_decoding import decode_store, hmm_log_likelihoods

__all__ = [
    "BestPath", "Decoder", "DecoderConfig", "DecodingGraph", "GraphOptions", "Hypothesis", "LmScorer", "NBestLists",
    "NoPathError", "ScoringSetting", "SearchLattice", "SenoneTreeLike", "build_graph", "compile_hclg",
    "decode_store", "hmm_log_likelihoods", "lattice_best_path", "load_grammar", "load_graph",
    "read_nbest", "rescore", "save_graph", "scaled_log_likelihoods", "write_nbest",
]
