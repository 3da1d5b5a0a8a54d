"""How much of a gain a system recovers: the paper's "86% of the ensemble's improvement".

E1: ``(student - baseline) / (ensemble - baseline)`` in dev frame accuracy.
E2: ``(soft - hard) / (full-data baseline - hard)``: the fraction of the gap between the 3%
hard-target model and the 100%-data model that soft targets close.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from asr_kd.reports.tables import mean_std
from asr_kd.utils.atomic import atomic_open
from asr_kd.utils.errors import AsrKdError


def recovered_fraction(low: float, high: float, value: float) -> float:
    """Where ``value`` lies between ``low`` (0) and ``high`` (1).

    >>> round(recovered_fraction(58.9, 61.1, 60.8), 3)   # the paper's E1 frame accuracies
    0.864
    """
    if high == low:
        raise AsrKdError(f"no gain to recover: both ends are {low}")
    return (value - low) / (high - low)


def recovery_from_table(table: Mapping[str, Any], metric: str, low_row: str, high_row: str,
                        rows: list[str]) -> dict[str, dict[str, float]]:
    """Recovered fraction of each row's per-seed values, from an ``asr-kd report table`` JSON.

    The two ends are the means of ``low_row`` and ``high_row``; each row gets the mean and
    standard deviation over its seeds of the fraction.
    """
    def values(row: str) -> list[float]:
        try:
            return table["rows"][row][metric]["values"]
        except KeyError:
            raise AsrKdError(f"results table has no metric {metric!r} for row {row!r}") from None

    low, high = mean_std(values(low_row))[0], mean_std(values(high_row))[0]
    out = {}
    for row in rows:
        fractions = [recovered_fraction(low, high, v) for v in values(row)]
        mean, std = mean_std(fractions)
        out[row] = {"fraction": mean, "std": std, "n": len(fractions), "low": low, "high": high}
    return out


def write_recovery(table_json: str | os.PathLike, metric: str, low_row: str, high_row: str, rows: list[str],
                   out_md: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Compute :func:`recovery_from_table` and append it as a markdown line per row to ``out_md``."""
    table = json.loads(Path(table_json).read_text())
    result = recovery_from_table(table, metric, low_row, high_row, rows)
    lines = [f"- {row}: recovers {100 * r['fraction']:.0f}% ± {100 * r['std']:.0f}% (n={r['n']}) of the "
             f"{metric} gain from {low_row} ({r['low']:.2f}) to {high_row} ({r['high']:.2f})\n"
             for row, r in result.items()]
    with atomic_open(out_md) as f:
        f.writelines(lines)
    return result
