"""PNG figures for ``results/``: learning curves, result bars, trade-off lines, entropy vs temperature, one utterance.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas (no pyplot,
no display, no global state), and every function writes its PNG atomically and returns the path.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from asr_kd.utils.atomic import write_with
from asr_kd.utils.errors import AsrKdError

#: ``(label, start_s, end_s)``, as :func:`asr_kd.alignment.outputs.read_ctm` returns them.
Segment = tuple[str, float, float]
LogRows = str | os.PathLike | Sequence[Mapping[str, object]]
DPI = 120


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    FigureCanvasAgg(fig)
    write_with(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"), suffix=".png")
    return Path(path)


def _read_log(log: LogRows) -> list[dict[str, float]]:
    """Rows of a trainer ``log.csv`` (or already-parsed dicts) with numeric values only."""
    if isinstance(log, (str, os.PathLike)):
        path = Path(log)
        if not path.exists():
            raise AsrKdError(f"{path}: training log does not exist")
        with open(path, newline="", encoding="utf-8") as f:
            log = list(csv.DictReader(f))
    rows = []
    for row in log:
        parsed = {}
        for key, value in row.items():
            try:
                parsed[key] = float(value)
            except (TypeError, ValueError):
                continue  # empty cells and text columns are not curves
        rows.append(parsed)
    return rows


def plot_learning_curves(logs: LogRows | Mapping[str, LogRows], out_path: str | os.PathLike,
                         title: str | None = None) -> Path:
    """Loss and frame accuracy against epoch (or step) for one run or several (e.g. seeds).

    One colour per run; training curves dashed, validation curves solid.

    Args:
        logs: a trainer ``log.csv`` path or a list of row dicts (``epoch``/``step`` plus any
            ``*loss`` and ``*acc`` columns, e.g. ``train_loss, valid_loss, train_frame_acc,
            valid_frame_acc``), or ``{run label: such a log}``.
        out_path: PNG to write.
    """
    runs = dict(logs) if isinstance(logs, Mapping) else {"": logs}
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for run_index, (label, log) in enumerate(runs.items()):
        rows = _read_log(log)
        if not rows:
            raise AsrKdError(f"training log {label or log!s} has no rows")
        x_key = "epoch" if "epoch" in rows[0] else "step"
        for key in rows[0]:
            ax = ax_loss if key.endswith("loss") else ax_acc if key.endswith("acc") else None
            if ax is None:
                continue
            points = [(r[x_key], r[key]) for r in rows if x_key in r and key in r]
            xs, ys = zip(*points)
            ys = np.asarray(ys) * (100 if ax is ax_acc else 1)
            name = key.replace("_", " ")
            ax.plot(xs, ys, marker="o", ms=3, color=f"C{run_index % 10}",
                    linestyle="--" if key.startswith("train") else "-",
                    label=f"{label}: {name}" if label else name)
    for ax, ylabel in ((ax_loss, "loss (nats/frame)"), (ax_acc, "frame accuracy (%)")):
        ax.set_xlabel(x_key)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, out_path)


def plot_results_bars(results: Mapping[str, Sequence[float]], out_path: str | os.PathLike,
                      ylabel: str = "WER (%)", title: str | None = None) -> Path:
    """Bar per system: mean over seeds, error bar = sample std, dots = individual seeds.

    Args:
        results: ``{row name: [value of each seed]}`` (one value = no error bar).
        ylabel: the metric with its unit.
    """
    if not results or any(len(v) == 0 for v in results.values()):
        raise AsrKdError(f"results to plot are empty: {dict(results)}")
    names = list(results)
    values = [np.asarray(results[n], dtype=float) for n in names]
    means = [v.mean() for v in values]
    stds = [v.std(ddof=1) if len(v) > 1 else 0.0 for v in values]
    fig = Figure(figsize=(max(4.0, 1.2 * len(names) + 1.5), 4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x, means, yerr=stds, capsize=5, color="tab:blue", alpha=0.7, edgecolor="black")
    for i, v in enumerate(values):
        ax.scatter(np.full(len(v), x[i]) + np.linspace(-0.15, 0.15, len(v)), v, color="black", s=12, zorder=3)
        ax.annotate(f"{means[i]:.2f}" + (f" ± {stds[i]:.2f}" if len(v) > 1 else ""), (x[i], means[i] + stds[i]),
                    textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    ax.set_xticks(x, [f"{n}\n(n={len(v)})" for n, v in zip(names, values)], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    lo, hi = min(float(v.min()) for v in values), max(m + s for m, s in zip(means, stds))
    ax.set_ylim(min(0.0, lo), hi * 1.15 if hi > 0 else 1.0)
    if title:
        ax.set_title(title)
    return _save(fig, out_path)


def plot_tradeoff(series: Mapping[str, Sequence[tuple[float, float, float]]], out_path: str | os.PathLike,
                  xlabel: str, ylabel: str, references: Mapping[str, float] | None = None, log_x: bool = True,
                  title: str | None = None) -> Path:
    """One line per series of ``(x, y mean, y std)`` points, e.g. frame accuracy against parameters.

    Args:
        series: ``{name: [(x, mean, std), ...]}``, e.g. ``{"hard labels": [...], "distilled": [...]}``;
            points are joined in order of x, std is drawn as an error bar.
        references: horizontal lines, e.g. ``{"ensemble": 40.8}``.
        log_x: logarithmic x axis (model sizes are compared in ratios).
    """
    if not series or any(len(points) == 0 for points in series.values()):
        raise AsrKdError(f"series to plot are empty: {dict(series)}")
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    for name, points in series.items():
        x, mean, std = (np.asarray(v, dtype=float) for v in zip(*sorted(points)))
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=4, label=name)
        for xi, mi in zip(x, mean):
            ax.annotate(f"{mi:.2f}", (xi, mi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for k, (name, value) in enumerate((references or {}).items()):
        ax.axhline(value, color=f"C{len(series) + k}", linestyle="--", linewidth=1, label=f"{name} ({value:.2f})")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, out_path)


def posterior_entropy(logits: np.ndarray, temperatures: Sequence[float]) -> np.ndarray:
    """Entropy in nats of ``softmax(logits / T)`` per frame: ``(len(temperatures), N)`` for ``logits (N, S)``."""
    z = np.asarray(logits, dtype=np.float64)
    out = []
    for t in temperatures:
        if t <= 0:
            raise AsrKdError(f"temperatures must be positive, got {t}")
        scaled = z / t
        scaled -= scaled.max(axis=1, keepdims=True)
        log_p = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
        out.append(-(np.exp(log_p) * log_p).sum(axis=1))
    return np.stack(out)


def plot_entropy_vs_temperature(logits: np.ndarray | Mapping[str, np.ndarray], temperatures: Sequence[float],
                                out_path: str | os.PathLike, title: str | None = None) -> Path:
    """Mean frame posterior entropy (nats) against softmax temperature, with the 10-90 % band.

    Args:
        logits: ``(N, S)`` logits of N frames, or ``{model label: (N, S) logits}`` for one curve each.
        temperatures: e.g. ``[1, 2, 5, 10, 20]``; the x axis is logarithmic.
    """
    curves = dict(logits) if isinstance(logits, Mapping) else {"": logits}
    entropies, num_senones = {}, 0
    for label, z in curves.items():
        z = np.asarray(z)
        if z.ndim != 2 or z.shape[0] == 0:
            raise AsrKdError(f"expected (N, S) logits with N > 0 for {label or 'the model'}, got shape {z.shape}")
        entropies[label or f"mean over {z.shape[0]} frames"] = posterior_entropy(z, temperatures)
        num_senones = z.shape[1]
    return plot_entropy_curves(entropies, temperatures, num_senones, out_path, title)


def plot_entropy_curves(entropies: Mapping[str, np.ndarray], temperatures: Sequence[float], num_senones: int,
                        out_path: str | os.PathLike, title: str | None = None) -> Path:
    """Plot precomputed ``{label: (len(temperatures), N) entropies in nats}`` (see :func:`posterior_entropy`).

    For models whose tempered posteriors are not ``softmax(logits / T)`` (an ensemble averages
    its members' tempered posteriors), compute the entropies yourself and plot them here.
    """
    order = np.argsort(np.asarray(temperatures, dtype=float))
    temps = np.asarray(temperatures, dtype=float)[order]
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for i, (label, entropy) in enumerate(entropies.items()):
        entropy = np.asarray(entropy)[order]
        ax.plot(temps, entropy.mean(axis=1), marker="o", color=f"C{i % 10}", label=f"{label} (mean)")
        ax.fill_between(temps, np.percentile(entropy, 10, axis=1), np.percentile(entropy, 90, axis=1),
                        color=f"C{i % 10}", alpha=0.2, label=f"{label}: 10-90 % of frames")
    ax.axhline(math.log(num_senones), color="gray", linestyle=":", label=f"uniform over {num_senones} senones")
    ax.set_xscale("log")
    ax.set_xticks(temps, [f"{t:g}" for t in temps])
    ax.minorticks_off()
    ax.set_xlabel("temperature T")
    ax.set_ylabel("posterior entropy (nats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, out_path)


def mel_bin_centers_hz(num_bins: int, low_freq: float = 20.0, high_freq: float = 8000.0) -> np.ndarray:
    """Centre frequencies (Hz) of Kaldi's mel filterbank channels (``mel = 1127 ln(1 + f / 700)``)."""
    mel_low, mel_high = (1127.0 * np.log1p(f / 700.0) for f in (low_freq, high_freq))
    mels = mel_low + (np.arange(num_bins) + 1) * (mel_high - mel_low) / (num_bins + 1)
    return 700.0 * np.expm1(mels / 1127.0)


def frame_labels_to_segments(labels: Sequence[int], names: Sequence[str],
                             frame_shift_s: float = 0.01) -> list[Segment]:
    """Per-frame ids (e.g. an alignment's phone ids, ``(T,)``) -> ``[(name, start_s, end_s), ...]`` runs."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    starts = np.concatenate([[0], np.flatnonzero(np.diff(labels)) + 1])
    ends = np.concatenate([starts[1:], [len(labels)]])
    return [(names[int(labels[s])], float(s * frame_shift_s), float(e * frame_shift_s)) for s, e in zip(starts, ends)]


def plot_utterance(feats: np.ndarray, out_path: str | os.PathLike, segments: Sequence[Segment] = (),
                   posteriors: Mapping[str, np.ndarray] | None = None, top_k: int = 6,
                   senone_names: Mapping[int, str] | None = None, frame_shift_s: float = 0.01,
                   low_freq: float = 20.0, high_freq: float = 8000.0, title: str | None = None) -> Path:
    """Log-mel spectrogram with alignment boundaries, and model posteriors of one utterance.

    Panels (time axis in seconds, shared): the spectrogram (y: mel channel, labelled with its
    centre frequency in Hz) with a line at each segment boundary and the segment labels on top;
    for each posterior source an image of the ``top_k`` senones (chosen by their largest mean
    probability over all sources, the same rows in every panel); and the probability of each
    source's top senone per frame.

    Args:
        feats: ``(T, D)`` log-mel features (raw or normalised).
        segments: ``(label, start_s, end_s)`` phones or words (from a CTM or
            :func:`frame_labels_to_segments`).
        posteriors: ``{"teacher": (T, S), "student": (T, S), ...}`` log-posteriors.
        senone_names: optional readable senone names (e.g. ``"AH_1"``) shown after the ids.
        low_freq, high_freq: filterbank edges in Hz (for the frequency labels).
    """
    feats = np.asarray(feats, dtype=np.float32)
    num_frames, num_bins = feats.shape
    posteriors = {k: np.exp(np.asarray(v, dtype=np.float64)) for k, v in (posteriors or {}).items()}
    for name, post in posteriors.items():
        if post.shape[0] != num_frames:
            raise AsrKdError(f"{name} posteriors have {post.shape[0]} frames, the features {num_frames}")
    duration = num_frames * frame_shift_s
    panels = 1 + len(posteriors) + (1 if posteriors else 0)
    fig = Figure(figsize=(11, 2.6 + 1.9 * (panels - 1)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(panels, 1, sharex=True, height_ratios=[1.4] + [1] * (panels - 1)))
    extent = (0.0, duration, -0.5, num_bins - 0.5)

    ax = axes[0]
    image = ax.imshow(feats.T, origin="lower", aspect="auto", extent=extent, cmap="magma", interpolation="nearest")
    fig.colorbar(image, ax=ax, pad=0.01, label="log energy")
    ticks = np.linspace(0, num_bins - 1, 5).round().astype(int)
    ax.set_yticks(ticks, [f"{hz:.0f}" for hz in mel_bin_centers_hz(num_bins, low_freq, high_freq)[ticks]])
    ax.set_ylabel(f"frequency (Hz)\n{num_bins} mel channels")
    for label, start, end in segments:
        ax.axvline(start, color="white", linewidth=0.6, alpha=0.8)
        ax.text((start + end) / 2, num_bins - 1, label, ha="center", va="top", fontsize=7, color="white",
                clip_on=True, bbox={"boxstyle": "square,pad=0.1", "facecolor": "black", "alpha": 0.4, "linewidth": 0})

    if posteriors:
        mean_prob = np.mean([p.mean(axis=0) for p in posteriors.values()], axis=0)
        top = np.argsort(-mean_prob)[:top_k]
        names = [f"{s} {senone_names.get(int(s), '')}" if senone_names else str(s) for s in top]
        for ax, (source, post) in zip(axes[1:], posteriors.items()):
            image = ax.imshow(post[:, top].T, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis",
                              extent=(0.0, duration, -0.5, len(top) - 0.5), interpolation="nearest")
            fig.colorbar(image, ax=ax, pad=0.01, label="probability")
            ax.set_yticks(range(len(top)), names, fontsize=7)
            ax.set_ylabel(f"{source}\ntop-{len(top)} senones")
            for _, start, _ in segments:
                ax.axvline(start, color="white", linewidth=0.4, alpha=0.5)
        ax = axes[-1]
        times = (np.arange(num_frames) + 0.5) * frame_shift_s
        for source, post in posteriors.items():
            ax.plot(times, post.max(axis=1), linewidth=0.9, label=source)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("top senone\nprobability")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
        # an invisible colorbar keeps this panel as wide as the image panels above it
        fig.colorbar(image, ax=ax, pad=0.01).ax.set_visible(False)
    axes[-1].set_xlim(0, duration)
    axes[-1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title)
    return _save(fig, out_path)
