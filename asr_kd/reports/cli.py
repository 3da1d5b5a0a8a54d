"""``asr-kd report table | recovery | tradeoff | significance | posteriors | curves | ...``: results/ files."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from asr_kd.cli_options import options
from asr_kd.utils.errors import AsrKdError


def _pair(text: str) -> tuple[str, str]:
    """``"LABEL=VALUE"`` -> ``(LABEL, VALUE)``; a bare ``VALUE`` gets the label ``""``."""
    label, sep, value = text.partition("=")
    return (label, value) if sep else ("", text)


def _labelled(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Labels for ``LABEL=PATH`` arguments; unlabelled paths are named after their parent folder."""
    return {label or Path(value).parent.name or value: value for label, value in pairs}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="results tables (JSON, markdown, bar charts) and PNG figures for results/",
        description="Write the human-facing results of a recipe run: per-seed tables with mean ± std and bar "
        "charts, learning curves, one utterance through the models, posterior entropy vs temperature.",
    )
    commands = parser.add_subparsers(dest="report_command", metavar="SUBCOMMAND", required=True)

    p = commands.add_parser(
        "table", help="gather metrics of per-seed JSON files into <name>.json, <name>.md, <name>_<metric>.png",
        description="Each --row NAME=GLOB adds the JSON files matching GLOB (one per seed) to row NAME (repeat a "
        "name to combine files, e.g. frame accuracy and WER). Each --metric KEY[:SCALE][=LABEL] is a dotted key "
        "into those files, e.g. 'frame_acc:100=frame accuracy (%%)' or 'summary.wer:100=WER (%%)'. The markdown "
        "table's caption is this command line.",
    )
    p.add_argument("--row", action="append", required=True, type=_pair, metavar="NAME=GLOB")
    p.add_argument("--metric", action="append", required=True, metavar="KEY[:SCALE][=LABEL]")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--name", required=True, help="file stem, e.g. e1")
    p.set_defaults(func=run_table)

    p = commands.add_parser(
        "recovery", help="fraction of a gain a system recovers, e.g. student between baseline and ensemble",
        description="For each --rows ROW of a `report table` JSON: (ROW - LOW) / (HIGH - LOW) of METRIC per seed, "
        "with LOW/HIGH the means of the --low/--high rows (the paper: the distilled model recovers 86%% of "
        "the ensemble's frame-accuracy gain).",
    )
    p.add_argument("--table", required=True, type=Path, help="<name>.json written by `asr-kd report table`")
    p.add_argument("--metric", required=True, help="metric label in that table, e.g. 'frame accuracy (%%)'")
    p.add_argument("--low", required=True, help="row at 0%%, e.g. baseline")
    p.add_argument("--high", required=True, help="row at 100%%, e.g. ensemble")
    p.add_argument("--rows", required=True, nargs="+")
    p.add_argument("--out", required=True, type=Path, help="markdown file to write")
    p.set_defaults(func=run_recovery)

    p = commands.add_parser(
        "tradeoff", help="one metric against another (e.g. frame accuracy vs parameters), a line per series",
        description="Plot metric --y against metric --x of the rows of a `report table` JSON: each --series "
        "NAME=ROW adds ROW to the line NAME (repeat a name for more points, e.g. hard-label models of several sizes), "
        "each --reference ROW is a "
        "horizontal line at its mean --y (e.g. the ensemble). Points are row means, error bars the std over seeds.",
    )
    p.add_argument("--table", required=True, type=Path, help="<name>.json written by `asr-kd report table`")
    p.add_argument("--x", required=True, help="metric label on the x axis, e.g. 'parameters (M)'")
    p.add_argument("--y", required=True, help="metric label on the y axis, e.g. 'dev frame accuracy (%%)'")
    p.add_argument("--series", action="append", required=True, type=_pair, metavar="NAME=ROW")
    p.add_argument("--reference", action="append", default=[], metavar="ROW")
    p.add_argument("--linear-x", action="store_true", help="linear x axis (default: logarithmic)")
    p.add_argument("--out", required=True, type=Path, help="PNG to write")
    p.set_defaults(func=run_tradeoff)

    p = commands.add_parser(
        "significance", help="paired bootstrap of WER differences between systems (95%% interval, P(better))",
        description="Each --compare A=GLOB B=GLOB compares two systems on the utterances both scored: GLOB "
        "matches `asr-kd score` JSON files (<hyp>.wer.json, one per seed; a system's per-utterance errors are "
        "averaged over its files). Utterances are resampled with replacement (Bisani & Ney 2004, as Kaldi's "
        "compute-wer-bootci): the 95%% interval of WER(B) - WER(A) and the probability that B is better. "
        "Writes a markdown table (and the same as JSON next to it).",
    )
    p.add_argument("--compare", action="append", nargs=2, required=True, type=_pair, metavar=("A=GLOB", "B=GLOB"))
    p.add_argument("--samples", type=int, default=None, help="bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="markdown file to write (+ .json)")
    p.set_defaults(func=run_significance)

    p = commands.add_parser(
        "posteriors", help="cross-entropy, entropy, top-k accuracy of stored log-posteriors against the alignment",
        description="For each --scores NAME=GLOB (log-posterior stores of `asr-kd posteriors`, one per seed): "
        "per-frame cross-entropy of the aligned senone (nats), posterior entropy (nats), mean top "
        "probability and top-1/5/20 frame accuracy on <exp>/ali/<subset>; how the argmax errors cluster in "
        "time (error runs per 100 frames, share of frames in runs of >= 8 frames); with the senone priors of "
        "<exp>/tree, the frame accuracy of the prior-divided scores the decoder adds up; with its tree.json, "
        "phone frame accuracy and the cross-entropy of the aligned phone; a markdown table "
        "with mean ± std over the matching stores (and the values as JSON next to it). No forward pass.",
        parents=options("exp", "subset"),
    )
    p.add_argument("--scores", action="append", required=True, type=_pair, metavar="NAME=GLOB")
    p.add_argument("--out", required=True, type=Path, help="markdown file to write (+ .json)")
    p.set_defaults(func=run_posteriors)

    p = commands.add_parser("curves", help="learning curves (loss, frame accuracy) of trainer log.csv files")
    p.add_argument("--log", action="append", required=True, type=_pair, metavar="[LABEL=]LOG_CSV")
    p.add_argument("--out", required=True, type=Path, help="PNG to write")
    p.add_argument("--title")
    p.set_defaults(func=run_curves)

    p = commands.add_parser("utterance", help="spectrogram, phone alignment and model posteriors of one utterance",
                            parents=options("exp", "subset"))
    p.add_argument("--model", action="append", required=True, type=_pair, metavar="[LABEL=]MODEL",
                   help="model file or ensemble JSON, e.g. teacher=exp/models/ens/ensemble.json (repeat)")
    p.add_argument("--utt", help="utterance id (default: the first aligned one)")
    p.add_argument("--max-seconds", type=float, default=4.0, help="plot only the first seconds (0: all)")
    p.add_argument("--top-k", type=int, default=6, help="senones shown in the posterior images")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=run_utterance)

    p = commands.add_parser("entropy", help="posterior entropy vs softmax temperature of models on a subset",
                            parents=options("exp", "subset"))
    p.add_argument("--model", action="append", required=True, type=_pair, metavar="[LABEL=]MODEL")
    p.add_argument("--temperatures", type=float, nargs="+", default=[1, 2, 5, 10, 20])
    p.add_argument("--max-utts", type=int, default=5)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=run_entropy)


def run_recovery(args: argparse.Namespace) -> int:
    from asr_kd.reports.recovery import write_recovery

    result = write_recovery(args.table, args.metric, args.low, args.high, args.rows, args.out)
    for row, r in result.items():
        print(f"report recovery: {row} recovers {100 * r['fraction']:.1f}% ± {100 * r['std']:.1f}% of the "
              f"{args.metric} gain {args.low} -> {args.high} ({r['low']:.2f} -> {r['high']:.2f}) -> {args.out}")
    return 0


def run_table(args: argparse.Namespace) -> int:
    from asr_kd.reports.collect import Metric, collect, expand_rows, write_results

    metrics = [Metric.parse(m) for m in args.metric]
    files = expand_rows(args.row)
    table = collect(files, metrics)
    command = ["asr-kd", "report", "table", *(f"--row={n}={g}" for n, g in args.row),
               *(f"--metric={m}" for m in args.metric), f"--out-dir={args.out_dir}", f"--name={args.name}"]
    caption = f"`{shlex.join(command)}`"
    written = write_results(table, metrics, args.out_dir, args.name, caption, files)
    cells = sum(len(c) for c in table.values())
    print(f"report table: {len(table)} rows x {len(metrics)} metrics ({cells} cells, "
          f"{sum(len(f) for f in files.values())} result files) -> {', '.join(str(p) for p in written)}")
    return 0


def run_tradeoff(args: argparse.Namespace) -> int:
    from asr_kd.reports.plots import plot_tradeoff

    try:
        rows = json.loads(args.table.read_text())["rows"]
    except (OSError, ValueError, KeyError) as err:
        raise AsrKdError(f"{args.table}: not a `report table` JSON ({err})") from None

    def cell(row: str, metric: str) -> dict:
        if row not in rows:
            raise AsrKdError(f"{args.table}: no row {row!r} (rows: {', '.join(rows)})")
        if metric not in rows[row]:
            raise AsrKdError(f"{args.table}: row {row!r} has no metric {metric!r} (has: {', '.join(rows[row])})")
        return rows[row][metric]

    series: dict[str, list[tuple[float, float, float]]] = {}
    for name, row in args.series:
        series.setdefault(name or row, []).append((cell(row, args.x)["mean"], cell(row, args.y)["mean"],
                                                   cell(row, args.y)["std"]))
    references = {r: cell(r, args.y)["mean"] for r in args.reference}
    path = plot_tradeoff(series, args.out, args.x, args.y, references, log_x=not args.linear_x)
    print(f"report tradeoff: {len(series)} series, {sum(len(v) for v in series.values())} points -> {path}")
    return 0


def run_significance(args: argparse.Namespace) -> int:
    from asr_kd.reports.collect import expand_rows
    from asr_kd.reports.tables import write_markdown_table, write_results_json
    from asr_kd.scoring.significance import DEFAULT_SAMPLES, paired_bootstrap, read_counts

    rows, results = {}, []
    for (name_a, glob_a), (name_b, glob_b) in args.compare:
        files = expand_rows([(name_a, glob_a), (name_b, glob_b)])
        if len(files) < 2:
            raise AsrKdError(f"--compare {name_a}={glob_a} {name_b}={glob_b}: give the two systems different names")
        r = paired_bootstrap(read_counts(files[name_a]), read_counts(files[name_b]),
                             args.samples or DEFAULT_SAMPLES, args.seed)
        rows[f"{name_b} vs {name_a}"] = {
            "WER A (%)": f"{100 * r.wer_a:.2f}", "WER B (%)": f"{100 * r.wer_b:.2f}",
            "B - A (points)": f"{100 * r.delta:+.2f}",
            "95% interval": f"[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]",
            "P(B better)": f"{r.prob_b_better:.3f}", "files A / B": f"{len(files[name_a])} / {len(files[name_b])}"}
        results.append({"a": name_a, "b": name_b, "files_a": [str(f) for f in files[name_a]],
                        "files_b": [str(f) for f in files[name_b]], **vars(r)})
        print(f"report significance: {name_b} - {name_a}: {100 * r.delta:+.2f} WER points, 95% interval "
              f"[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}], P(better) {r.prob_b_better:.3f} "
              f"({r.utterances} utterances, {r.samples} resamples)")
    command = ["asr-kd", "report", "significance", *(f"--compare={a[0]}={a[1]} {b[0]}={b[1]}" for a, b in args.compare)]
    write_markdown_table(args.out, rows, caption=f"`{shlex.join(command)}` (paired bootstrap over utterances)")
    write_results_json(args.out.with_suffix(".json"), {"seed": args.seed, "comparisons": results})
    return 0


def run_posteriors(args: argparse.Namespace) -> int:
    from asr_kd.alignment import SenoneTree, load_senone_log_priors
    from asr_kd.experiment import COUNTS_FILE, TREE_FILE
    from asr_kd.reports.collect import expand_rows
    from asr_kd.reports.tables import write_markdown_table, write_results_json
    from asr_kd.scoring.frame_accuracy import alignment_stores
    from asr_kd.scoring.posterior_stats import LONG_RUN, TOP_K, senone_phone_ids, stored_posterior_stats

    senones, _ = alignment_stores(args.exp, args.subset)
    tree_dir = Path(args.exp) / "tree"
    log_priors = load_senone_log_priors(tree_dir) if (tree_dir / COUNTS_FILE).exists() else None
    if log_priors is None:
        print(f"report posteriors: no {tree_dir / COUNTS_FILE}: no prior-divided frame accuracy")
    phones = senone_phone_ids(SenoneTree.load(tree_dir / TREE_FILE)) if (tree_dir / TREE_FILE).exists() else None
    if phones is None:
        print(f"report posteriors: no {tree_dir / TREE_FILE}: no phone frame accuracy")
    columns = {"cross_entropy": "cross-entropy (nats/frame)", "entropy": "entropy (nats/frame)",
               "mean_max_prob": "mean top probability", **{f"top{k}_acc": f"top-{k} frame acc (%)" for k in TOP_K},
               **({"prior_divided_acc": "prior-divided frame acc (%)"} if log_priors is not None else {}),
               **({"phone_acc": "phone frame acc (%)", "phone_cross_entropy": "phone cross-entropy (nats/frame)"}
                  if phones is not None else {}),
               "error_runs_per_100": "error runs per 100 frames",
               "long_error_run_frames": f"frames in error runs >= {LONG_RUN} (%)"}
    percent = {key for key in columns if key.endswith("_acc")} | {"long_error_run_frames"}
    rows, results = {}, {}
    for name, stores in expand_rows(args.scores).items():
        results[name] = [stored_posterior_stats(store, senones, log_priors=log_priors,
                                                 senone_phones=phones) for store in stores]
        rows[name] = {label: [r[key] * (100 if key in percent else 1) for r in results[name]]
                      for key, label in columns.items()}
        print(f"report posteriors: {name}: cross-entropy {rows[name][columns['cross_entropy']][0]:.3f} nats/frame "
              f"({len(stores)} store(s))")
    command = ["asr-kd", "report", "posteriors", f"--exp={args.exp}", f"--subset={args.subset}",
               *(f"--scores={n}={g}" for n, g in args.scores)]
    write_markdown_table(args.out, rows, columns=list(columns.values()), digits=3, caption=f"`{shlex.join(command)}`")
    write_results_json(args.out.with_suffix(".json"), results)
    return 0


def run_curves(args: argparse.Namespace) -> int:
    from asr_kd.reports.plots import plot_learning_curves

    logs = _labelled(args.log)
    path = plot_learning_curves(logs if len(logs) > 1 else next(iter(logs.values())), args.out, args.title)
    print(f"report curves: {len(logs)} runs -> {path}")
    return 0


def run_utterance(args: argparse.Namespace) -> int:
    from asr_kd.reports.figures import utterance_figure

    models = _labelled(args.model)
    path = utterance_figure(args.exp, args.subset, models, args.out, args.utt, args.max_seconds or None, args.top_k)
    print(f"report utterance: {len(models)} models -> {path}")
    return 0


def run_entropy(args: argparse.Namespace) -> int:
    from asr_kd.reports.figures import entropy_figure

    models = _labelled(args.model)
    path = entropy_figure(args.exp, args.subset, models, args.out, args.temperatures, args.max_utts)
    print(f"report entropy: {len(models)} models at T = {' '.join(f'{t:g}' for t in args.temperatures)} -> {path}")
    return 0
