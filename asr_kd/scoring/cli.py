"""``asr-kd evaluate`` (frame accuracy) and ``asr-kd score`` (WER, LM weight / insertion penalty tuning)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asr_kd.cli_options import add_temperature, load_cli_model, model_options, options
from asr_kd.utils.errors import AsrKdError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="frame accuracy (overall, silence, non-silence) of a model or ensemble as JSON",
        description="Frame accuracy against <exp>/ali/<subset>/senones; silence frames from the phones store.",
        parents=[*model_options(), *options("utts")],
    )
    add_temperature(p)
    p.add_argument("--members", action="store_true", help="also score every ensemble member on its own")
    p.add_argument("--out", type=Path, help="write the JSON here (also printed)")
    p.set_defaults(func=run_evaluate)

    p = subparsers.add_parser(
        "score",
        help="word error rate of hypothesis files, or of N-best lists with Kaldi-style weight tuning",
        description="WER (jiwer) of each hypothesis file against the references; writes <hyp>.wer.json "
        "(overall + per utterance S/D/I) and <hyp>.per_utt.txt (Kaldi-style alignments) next to it. "
        "With --nbest, the LM weight, word-insertion penalty and prior scale are swept over a grid (as "
        "Kaldi's score.sh sweeps LMWT and WIP) and the setting is chosen on a tuning set (--tune REF NBEST: "
        "other utterances, decoded with the same system), or on the scored set itself (--best-on-dev, "
        "labelled so), or not at all (the search's own setting); the chosen values are stored with the WER "
        "in <nbest stem>.<mode>.wer.json next to the hypotheses <nbest stem>.<mode>.txt.",
        parents=options("utts"),
    )
    p.add_argument("--ref", required=True, type=Path, help="manifest .tsv or Kaldi text file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--hyp", type=Path, nargs="+", help="hypothesis text files")
    source.add_argument("--nbest", type=Path, help="nbest.jsonl.gz of the reported set (`asr-kd decode --nbest`)")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--tune", nargs=2, type=Path, metavar=("REF", "NBEST"),
                        help="choose the setting on this tuning set: the utterances with both a reference in REF "
                        "and an N-best list in NBEST")
    choice.add_argument("--best-on-dev", action="store_true",
                        help="choose on the scored set itself (Kaldi RESULTS style; labelled 'best on dev')")
    p.add_argument("--lm-weights", type=float, nargs="+", default=None, help="LMWT grid (default 7 .. 17)")
    p.add_argument("--word-ins-penalties", type=float, nargs="+", default=None, help="WIP grid (default 0 0.5 1)")
    p.add_argument("--prior-scales", type=float, nargs="+", default=None,
                   help="prior-scale grid (default: the decode's own prior scale only)")
    p.add_argument("--out", type=Path, default=None,
                   help="output prefix with --nbest (default <nbest stem>.<untuned|tuned|best_on_dev>)")
    p.set_defaults(func=run_score)


def run_evaluate(args: argparse.Namespace) -> int:
    from asr_kd.experiment import Experiment
    from asr_kd.models import Ensemble
    from asr_kd.scoring.frame_accuracy import alignment_stores, frame_accuracy
    from asr_kd.training.validation import read_listed_utts
    from asr_kd.utils.atomic import write_json

    loaded = load_cli_model(args)
    features = loaded.open_features(Experiment(args.exp).feats_dir(args.subset))
    senones, phones = alignment_stores(args.exp, args.subset)
    loaded.check_targets(senones)
    if loaded.temperature != 1.0:
        print("evaluate: note: temperature does not change a single model's argmax (frame accuracy)")
    utt_ids = read_listed_utts(args.utts, features.utt_ids(), f"the features of {features.dir}") if args.utts else None

    def score(m) -> dict:
        result = frame_accuracy(m, features, senones, phones, utt_ids, args.device, args.max_frames)
        return dict(result, subset=args.subset)

    model, meta = loaded.model, loaded.metadata
    result = {"model": [str(p) for p in args.model], **score(model)}
    if isinstance(model, Ensemble):
        result.update(combine=model.combine, temperature=model.temperature)
        if args.members:
            result["members"] = [dict(score(m), model=mm.get("path")) for m, mm in zip(model.members, meta["members"])]
            accs = [r["frame_acc"] for r in result["members"]]
            result["mean_member_frame_acc"] = sum(accs) / len(accs)
            result["gain_over_mean_member"] = result["frame_acc"] - result["mean_member_frame_acc"]
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


def run_score(args: argparse.Namespace) -> int:
    from asr_kd.scoring.wer import read_references, read_text, score

    refs = read_references(args.ref)
    if args.nbest is not None:
        return _score_nbest(args, refs)
    if args.tune or args.best_on_dev or args.utts or args.out:
        raise AsrKdError("--tune, --best-on-dev, --utts and --out go with --nbest, not --hyp")
    results = []
    for hyp_path in args.hyp:
        stem = hyp_path.with_suffix("")
        s = score(refs, read_text(hyp_path), f"{stem}.wer.json", f"{stem}.per_utt.txt")
        results.append((s.wer, hyp_path))
        print(f"score: {hyp_path}: %WER {100 * s.wer:.2f} [ {s.substitutions + s.deletions + s.insertions} / "
              f"{s.ref_words}, {s.insertions} ins, {s.deletions} del, {s.substitutions} sub ] "
              f"{s.utterances} utterances, {s.missing_hypotheses} without hypothesis")
    if len(results) > 1:
        best_wer, best = min(results)
        print(f"score: best %WER {100 * best_wer:.2f} from {best}")
    return 0


def _score_nbest(args: argparse.Namespace, refs: dict[str, str]) -> int:
    from asr_kd.decoding.nbest import NBestLists, read_nbest
    from asr_kd.scoring import tuning
    from asr_kd.scoring.wer import read_references, score, write_text
    from asr_kd.training.validation import read_listed_utts

    lists = read_nbest(args.nbest)
    if args.utts is not None:
        keep = set(read_listed_utts(args.utts, refs, f"the references {args.ref}"))
        refs = {u: t for u, t in refs.items() if u in keep}
        lists = NBestLists(lists.header, {u: h for u, h in lists.utterances.items() if u in keep})
    tuning.check_coverage(refs, lists, str(args.nbest))
    settings = tuning.grid(args.lm_weights or tuning.DEFAULT_LM_WEIGHTS,
                           args.word_ins_penalties or tuning.DEFAULT_WORD_INS_PENALTIES,
                           args.prior_scales or [lists.decode_prior_scale])
    if args.tune:
        mode, label = tuning.TUNED, "tuned"
        tune_refs, tune_lists = read_references(args.tune[0]), read_nbest(args.tune[1])
        # the tuning set: utterances with both a reference and an N-best list (either file may hold more)
        common = set(tune_refs) & set(tune_lists.utterances)
        if not common:
            raise AsrKdError(f"{args.tune[1]}: no N-best list has a reference in {args.tune[0]}")
        tune_refs = {u: t for u, t in tune_refs.items() if u in common}
        tune_lists = NBestLists(tune_lists.header, {u: h for u, h in tune_lists.utterances.items() if u in common})
        chosen_on = f"{args.tune[1]} ({len(common)} utterances)"
        overlap = common & set(refs)
        if overlap:
            raise AsrKdError(f"tuning set and scored set share {len(overlap)} utterances, e.g. {sorted(overlap)[:3]}: "
                             "tune on other utterances, or say --best-on-dev")
        results = tuning.sweep(tune_refs, tune_lists, settings)
    elif args.best_on_dev:
        mode, label, chosen_on = tuning.BEST_ON_DEV, "best_on_dev", str(args.nbest)
        results = tuning.sweep(refs, lists, settings)
    else:
        mode, label, chosen_on = tuning.UNTUNED, "untuned", None
        results = tuning.sweep(refs, lists, [lists.search_setting()])
    chosen = tuning.choose(results)
    prefix = str(args.out) if args.out else f"{str(args.nbest).removesuffix('.gz').removesuffix('.jsonl')}.{label}"
    hyps = lists.best(chosen.setting)
    write_text(f"{prefix}.txt", hyps)
    block = tuning.describe(mode, chosen, chosen_on, results)
    s = score(refs, hyps, f"{prefix}.wer.json", f"{prefix}.per_utt.txt", extra={"scoring": block})
    setting = ", ".join(f"{k} {v:g}" for k, v in chosen.setting.as_dict().items())
    where = f" (chosen on {chosen_on}: %WER {100 * chosen.summary.wer:.2f})" if chosen_on else ""
    print(f"score: {args.nbest} [{mode}] {setting}{where}: %WER {100 * s.wer:.2f} "
          f"[ {s.substitutions + s.deletions + s.insertions} / {s.ref_words}, {s.insertions} ins, {s.deletions} del, "
          f"{s.substitutions} sub ] {s.utterances} utterances -> {prefix}.wer.json")
    return 0
