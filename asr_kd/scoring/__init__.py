"""Stage 6, scoring: frame accuracy against alignments and word error rate (``asr-kd evaluate``, ``asr-kd score``)."""
