"""``asr-kd tree`` and ``asr-kd align``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from asr_kd.alignment.train import AlignerTrainingConfig
from asr_kd.cli_options import add_field, options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tree",
        help="train the aligner from transcripts: monophones, senone tree, triphones, alignment",
        description="Flat-start GMM-HMM training from <exp>/manifests/<subset>.tsv, <exp>/lang/lexicon.txt and "
        "<exp>/feats/<subset>: monophones, a phonetic decision tree to --num-senones tied triphone states, "
        "triphone GMMs and a final alignment. Writes <exp>/tree/{tree.json,final_model.npz,senone_counts.npy,"
        "summary.json} and <exp>/ali/<subset>/. Finished stages (<exp>/tree/work/) are reused on rerun.",
        parents=options("exp", "subset", "jobs"),
    )
    add_field(p, "--num-senones", AlignerTrainingConfig, help="tied triphone states")
    add_field(p, "--mono-iters", AlignerTrainingConfig, help="monophone align/re-estimate rounds")
    add_field(p, "--mono-gaussians", AlignerTrainingConfig, help="total monophone Gaussians at the end")
    add_field(p, "--tri-iters", AlignerTrainingConfig, help="triphone align/re-estimate rounds")
    add_field(p, "--tri-gaussians", AlignerTrainingConfig, help="total triphone Gaussians at the end")
    add_field(p, "--min-leaf-frames", AlignerTrainingConfig, help="fewest frames per senone when splitting")
    p.add_argument("--no-interword-silence", action="store_true", help="silence only at utterance edges")
    p.set_defaults(func=run_tree)

    p = subparsers.add_parser(
        "align",
        help="forced-align a subset with the trained aligner, or import/export Kaldi pdf alignments",
        description="Align <exp>/feats/<subset> to its transcripts with the models of `asr-kd tree` into "
        "<exp>/ali/<subset>/ (senones/, phones/: int32 per feature frame; skipped.tsv; words.ctm, phones.ctm). "
        "--import-kaldi instead reads ali-to-pdf output (ark or scp) as the subset's senone targets.",
        parents=options("exp", "subset", "jobs"),
    )
    p.add_argument("--report", action="store_true",
                   help="print and write <exp>/ali/<subset>/report.json: phone durations, silence fraction and "
                   "(with --reference) word-boundary agreement")
    p.add_argument("--reference", type=Path, help="reference word segments TSV (utt_id word start_s end_s ...)")
    p.add_argument("--import-kaldi", type=Path, metavar="ALI", help="Kaldi pdf alignments (.ark or .scp) to import")
    p.add_argument("--num-pdfs", type=int, help="number of pdfs of the Kaldi tree (required with --import-kaldi)")
    p.add_argument("--set-priors", action="store_true",
                   help="with --import-kaldi: write the imported frame counts as <exp>/tree/senone_counts.npy")
    p.add_argument("--export-kaldi", type=Path, metavar="ARK",
                   help="after aligning (or with --no-align, from the existing alignment) write the senone "
                   "alignment as a Kaldi int-vector ark plus .scp")
    p.add_argument("--no-align", action="store_true", help="do not realign; use <exp>/ali/<subset> as it is")
    p.set_defaults(func=run_align)


def _jobs(jobs: int | None) -> int:
    return jobs or os.cpu_count() or 1


def run_tree(args: argparse.Namespace) -> int:
    from asr_kd.alignment.train import Trainer
    from asr_kd.experiment import Experiment

    config = AlignerTrainingConfig(
        num_senones=args.num_senones, mono_iters=args.mono_iters, mono_gaussians=args.mono_gaussians,
        tri_iters=args.tri_iters, tri_gaussians=args.tri_gaussians, min_leaf_frames=args.min_leaf_frames,
        interword_silence=not args.no_interword_silence,
    )
    s = Trainer(args.exp, args.subset, config, jobs=_jobs(args.jobs)).run()
    print(f"tree {args.subset}: {s['num_senones']} senones ({s['senones_without_frames']} without frames), "
          f"{s['num_gaussians']} Gaussians; {s['aligned']} utterances aligned, {s['skipped']} skipped; "
          f"{s['wall_seconds']:.0f} s wall, final pass {s['final_pass_x_realtime_per_core']:.0f}x real time per "
          f"core -> {Experiment(args.exp).tree_dir}")
    return 0


def run_align(args: argparse.Namespace) -> int:
    from asr_kd.alignment.priors import save_senone_counts
    from asr_kd.experiment import SENONES_DIR, Experiment
    from asr_kd.utils.errors import AsrKdError

    exp = Experiment(args.exp)
    out = exp.ali_dir(args.subset)
    if args.import_kaldi is not None:
        from asr_kd.alignment.kaldi_io import import_pdf_alignments

        if args.num_pdfs is None:
            raise AsrKdError("--import-kaldi needs --num-pdfs (Kaldi: tree-info <tree> | grep num-pdfs)")
        kept, skipped, counts = import_pdf_alignments(args.import_kaldi, args.num_pdfs,
                                                      exp.feats_dir(args.subset), out)
        if args.set_priors:
            save_senone_counts(exp.tree_dir, counts)
        print(f"align {args.subset}: imported {kept} Kaldi alignments ({args.num_pdfs} pdfs), {len(skipped)} "
              f"skipped (see {out / 'skipped.tsv'}) -> {out}")
    elif not args.no_align:
        from asr_kd.alignment.train import align_subset

        s = align_subset(args.exp, args.subset, jobs=_jobs(args.jobs))
        print(f"align {args.subset}: {s['aligned']} utterances aligned, {s['skipped']} skipped "
              f"({s['audio_hours']:.2f} h) in {s['wall_seconds']:.1f} s wall, {s['x_realtime_per_core']:.0f}x "
              f"real time per core -> {s['out']}")
    if args.report:
        from asr_kd.alignment.report import alignment_report, format_report
        from asr_kd.utils.atomic import write_json

        report = alignment_report(out, args.reference)
        write_json(out / "report.json", report)
        print(format_report(report))
    if args.export_kaldi is not None:
        from asr_kd.alignment.kaldi_io import export_pdf_alignments

        n = export_pdf_alignments(exp.targets_dir(args.subset, SENONES_DIR), args.export_kaldi)
        print(f"align {args.subset}: exported {n} senone alignments -> {args.export_kaldi} (+ .scp)")
    return 0
