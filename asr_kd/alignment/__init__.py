"""Stage 3, alignment: senone inventory (decision tree) and forced alignment without Kaldi.

``asr-kd tree`` trains GMM-HMMs from transcripts and writes ``<exp>/tree/`` plus the training
alignment; ``asr-kd align`` aligns other subsets (or imports Kaldi pdf alignments). Later
stages use :class:`SenoneTree` (``<exp>/tree/tree.json``), :func:`load_senone_log_priors` and
the per-frame target stores ``<exp>/ali/<subset>/{senones,phones}``.
"""

from asr_kd.alignment.priors import load_senone_log_priors
from asr_kd.alignment.tree import SenoneTree

__all__ = ["SenoneTree", "load_senone_log_priors"]
