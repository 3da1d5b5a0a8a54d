"""Size accounting of teacher stores: bytes per frame, and the probability mass top-k keeps.

The two numbers that choose ``k``: a top-k store costs ``k * (id bytes + 2)`` bytes per frame
instead of ``2 S`` for dense fp16, and keeps a fraction of each frame's probability mass
that falls as the temperature rises (soft targets spread mass over more senones). A low-rank
store costs ``k * (id bytes + 2) + c + 2 n`` (``c`` bytes of coefficient codes) for ``n`` served
temperatures and keeps all of it
(how faithfully: :mod:`asr_kd.distillation.fidelity`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from asr_kd.distillation.teacher_store import TeacherStoreConfig


def bytes_per_frame(num_senones: int, top_k: int | None, rank: int | None = None, num_temperatures: int = 1) -> int:
    """Bytes one frame takes in a store: ``2 S`` dense (fp16), ``k * (id bytes + 2)`` top-k, plus
    ``c + 2 n`` low-rank (``rank`` given; ``c`` bytes of codes for ``rank`` coefficients, a quarter
    of them 8-bit, the others 4-bit) serving ``num_temperatures`` temperatures.

    Example:
        >>> bytes_per_frame(1000, None), bytes_per_frame(1000, 10), bytes_per_frame(40000, 10)
        (2000, 40, 60)
        >>> bytes_per_frame(1000, 8, rank=96, num_temperatures=4)
        100
        >>> bytes_per_frame(8000, 8, rank=192, num_temperatures=4)
        160
    """
    temperatures = tuple(float(t) for t in range(1, num_temperatures + 1)) if rank is not None else ()
    return TeacherStoreConfig(temperature=1.0, num_senones=num_senones, top_k=top_k, rank=rank,
                              temperatures=temperatures).bytes_per_frame


def size_table(num_senones: int, ks: Sequence[int], num_frames: int) -> list[dict]:
    """One row per ``k`` (and ``None`` = dense): bytes per frame, store MB for ``num_frames``,
    and the fraction of the dense fp16 size.

    Example:
        >>> [r["fraction_of_dense"] for r in size_table(1000, [10], 100)]
        [1.0, 0.02]
    """
    dense = bytes_per_frame(num_senones, None)
    rows = []
    for k in (None, *ks):
        size = bytes_per_frame(num_senones, k)
        rows.append({"top_k": k, "bytes_per_frame": size, "store_mb": size * num_frames / 1e6,
                     "fraction_of_dense": size / dense})
    return rows


def top_k_mass(log_probs: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    """Mean over frames of the probability mass of the ``k`` most probable senones.

    Args:
        log_probs: ``(N, S)`` log soft targets (any temperature).
        ks: the ``k`` values.

    Example:
        >>> mass = top_k_mass(torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]).log(), [1, 2])
        >>> {k: round(v, 4) for k, v in mass.items()}
        {1: 0.6, 2: 0.85}
    """
    top = torch.topk(log_probs.float().exp(), max(ks), dim=-1).values.cumsum(-1).mean(0)
    return {k: float(top[k - 1]) for k in ks}
