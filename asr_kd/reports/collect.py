"""Gather per-seed metrics from JSON result files into tables, JSON and bar charts.

A row of a results table (a system: baseline, ensemble, distilled student ...) is given as
glob patterns of JSON files, one file per seed (e.g. ``asr-kd evaluate --out`` or the
``*.wer.json`` of ``asr-kd score``); a metric is a dotted key into those files
(``frame_acc``, ``summary.wer``) with a scale and a label.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asr_kd.reports.plots import plot_results_bars
from asr_kd.reports.tables import seed_summary, write_markdown_table, write_results_json
from asr_kd.utils.errors import AsrKdError


@dataclass(frozen=True)
class Metric:
    """A number in each result file: ``key`` (dotted path), multiplied by ``scale``, shown as ``label``."""

    key: str
    label: str
    scale: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> Metric:
        """``"KEY[:SCALE][=LABEL]"``, e.g. ``"summary.wer:100=WER (%)"``."""
        head, _, label = spec.partition("=")
        key, _, scale = head.partition(":")
        try:
            return cls(key, label or key, float(scale) if scale else 1.0)
        except ValueError:
            raise AsrKdError(f"bad metric {spec!r}: expected KEY[:SCALE][=LABEL], e.g. summary.wer:100=WER (%)") \
                from None

    def value(self, result: Mapping[str, Any]) -> float | None:
        node: Any = result
        for part in self.key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return float(node) * self.scale


def expand_rows(rows: Sequence[tuple[str, str]]) -> dict[str, list[Path]]:
    """``[(row name, glob pattern), ...]`` -> ``{row name: sorted matching files}`` (a name may repeat)."""
    files: dict[str, list[Path]] = {}
    for name, pattern in rows:
        matches = sorted(Path(p) for p in glob.glob(pattern))
        if not matches:
            raise AsrKdError(f"results row {name!r}: no file matches {pattern}")
        files.setdefault(name, []).extend(matches)
    return files


def collect(row_files: Mapping[str, Sequence[Path]], metrics: Sequence[Metric]) -> dict[str, dict[str, list[float]]]:
    """``{row: {metric label: [value per file that has it]}}`` (metrics absent from every file are left out)."""
    table: dict[str, dict[str, list[float]]] = {}
    for name, paths in row_files.items():
        results = []
        for path in paths:
            try:
                results.append(json.loads(Path(path).read_text()))
            except (OSError, ValueError) as err:
                raise AsrKdError(f"{path}: not a readable JSON result ({err})") from None
        cells = {}
        for metric in metrics:
            values = [v for v in (metric.value(r) for r in results) if v is not None]
            if values:
                cells[metric.label] = values
        table[name] = cells
    return table


def write_results(table: Mapping[str, Mapping[str, Sequence[float]]], metrics: Sequence[Metric],
                  out_dir: str | os.PathLike, name: str, caption: str | None = None,
                  sources: Mapping[str, Sequence[Path]] | None = None) -> list[Path]:
    """Write ``<name>.json`` (mean/std/n/values per cell), ``<name>.md`` and one ``<name>_<metric>.png`` per metric.

    Returns the written paths.
    """
    out = Path(out_dir)
    summary = {row: {label: seed_summary(values) for label, values in cells.items()} for row, cells in table.items()}
    payload: dict[str, Any] = {"caption": caption, "rows": summary}
    if sources is not None:
        payload["sources"] = {row: [str(p) for p in paths] for row, paths in sources.items()}
    written = [write_results_json(out / f"{name}.json", payload),
               write_markdown_table(out / f"{name}.md", table, columns=[m.label for m in metrics], caption=caption)]
    for metric in metrics:
        bars = {row: cells[metric.label] for row, cells in table.items() if metric.label in cells}
        if bars:
            slug = re.sub(r"[^a-z0-9]+", "_", metric.key.lower()).strip("_")
            written.append(plot_results_bars(bars, out / f"{name}_{slug}.png", ylabel=metric.label, title=name))
    return written
