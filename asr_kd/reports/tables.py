"""Result tables over seeds: mean ± std cells in markdown, and JSON results files (both atomic)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asr_kd.utils.atomic import atomic_open, write_json
from asr_kd.utils.errors import AsrKdError

#: A table cell: values over seeds (-> mean ± std), one number, or text.
Cell = Sequence[float] | float | int | str | None


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value) of per-seed values."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise AsrKdError("mean ± std of an empty list of values")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def format_mean_std(values: Sequence[float], digits: int = 2) -> str:
    """``"12.34 ± 0.56"`` over seeds; a single value is printed alone (no spread to report)."""
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" if len(values) == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_cell(cell: Cell, digits: int = 2) -> str:
    if cell is None:
        return "–"
    if isinstance(cell, str):
        return cell
    if isinstance(cell, (int, float, np.number)):
        return "–" if isinstance(cell, float) and math.isnan(cell) else f"{cell:.{digits}f}"
    return format_mean_std(list(cell), digits)


def markdown_table(rows: Mapping[str, Mapping[str, Cell]], columns: Sequence[str] | None = None,
                   row_header: str = "system", digits: int = 2, caption: str | None = None) -> str:
    """A GitHub markdown table, one row per system.

    Args:
        rows: ``{row name: {column: cell}}``; a cell is a list of per-seed values (printed as
            ``mean ± std``, sample std), a number, text, or missing/None (printed as ``–``).
        columns: column order (default: first appearance).
        row_header: title of the first column.
        caption: a line printed above the table (e.g. the command that produced it).
    """
    if columns is None:
        columns = list(dict.fromkeys(c for cells in rows.values() for c in cells))
    lines = [f"{caption}\n"] if caption else []
    lines.append("| " + " | ".join([row_header, *columns]) + " |")
    lines.append("|" + "---|" + "---:|" * len(columns))
    for name, cells in rows.items():
        lines.append("| " + " | ".join([name, *(format_cell(cells.get(c), digits) for c in columns)]) + " |")
    return "\n".join(lines) + "\n"


def write_markdown_table(path: str | os.PathLike, rows: Mapping[str, Mapping[str, Cell]], **kwargs: Any) -> Path:
    """Atomically write :func:`markdown_table` ``(rows, **kwargs)`` to ``path``; returns the path."""
    with atomic_open(path) as f:
        f.write(markdown_table(rows, **kwargs))
    return Path(path)


def seed_summary(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "n", "values"}`` of per-seed values, for results JSON."""
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "n": len(values), "values": [float(v) for v in values]}


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays and paths -> plain JSON types (recursively)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return str(obj)
    return obj


def write_results_json(path: str | os.PathLike, results: Mapping[str, Any]) -> Path:
    """Atomically write ``results`` (numpy values and paths allowed) as indented JSON; returns the path."""
    write_json(path, _jsonable(results))
    return Path(path)
