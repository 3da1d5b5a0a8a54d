"""Human-facing results: markdown/JSON tables over seeds and PNG plots (matplotlib, Agg canvas).

:mod:`asr_kd.reports.figures` builds the experiment-level figures (one utterance through the
models, entropy vs temperature) from model files; ``asr-kd report`` wraps everything for recipes.
"""

from asr_kd.reports.collect import Metric, collect, expand_rows, write_results
from asr_kd.reports.plots import (
    frame_labels_to_segments,
    mel_bin_centers_hz,
    plot_entropy_curves,
    plot_entropy_vs_temperature,
    plot_learning_curves,
    plot_results_bars,
    plot_utterance,
    posterior_entropy,
)
from asr_kd.reports.tables import (
    format_mean_std,
    markdown_table,
    mean_std,
    seed_summary,
    write_markdown_table,
    write_results_json,
)

__all__ = [
    "Metric", "collect", "expand_rows", "format_mean_std", "frame_labels_to_segments", "markdown_table", "mean_std",
    "mel_bin_centers_hz", "plot_entropy_curves", "plot_entropy_vs_temperature", "plot_learning_curves",
    "plot_results_bars", "plot_utterance", "posterior_entropy", "seed_summary", "write_markdown_table",
    "write_results", "write_results_json",
]
