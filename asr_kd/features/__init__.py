"""Stage 2, features: log-mel filterbanks, CMVN statistics, stored features and datasets."""

from asr_kd.features.cmvn import Cmvn, CmvnStats
from asr_kd.features.fbank import FbankConfig, compute_fbank

__all__ = ["Cmvn", "CmvnStats", "FbankConfig", "compute_fbank"]
