"""Teacher-store design study: fidelity of candidate encodings at one byte budget, in memory.

Runs a teacher (ensemble JSON or model) over a seeded sample of training utterances to fit
the PCA bases (as ``dump-teacher --store-kind lowrank`` does), then over other training
utterances (first ``--eval-utts`` sorted ids outside that sample), and compares, frame by frame,
the exact soft targets at each T (the paper's mean of tempered member probabilities) with
each candidate's decoded targets (:mod:`asr_kd.distillation.fidelity` metrics). Every
candidate fills ``--budget`` bytes per frame (``n`` = number of temperatures):

* ``(a) top-k renormalised`` / ``(a) top-k tail uniform``: the top-k kind, one store per T,
  ``k = budget / 4`` (int16 id + fp16 probability);
* ``(b) top-k T=1 + tail masses, uniform tail``: low-rank kind at rank 0 with a flat tail,
  ``k = (budget - 2 n) / 4``;
* ``(d) 8-bit top-k log-probs + tail masses, uniform tail``: as (b) with the log-probabilities
  quantised to 8 bits between the frame's k-th and first value (2 fp16 scalars), so ``k`` grows
  to ``(budget - 2 n - 4) / 3`` (study only, not a store kind);
* ``(e) top-k + mean-profile tail``: rank 0, the tail shaped like the mean training profile;
* ``(c) top-k + PCA``: the low-rank kind, ``r`` coefficients in ``budget - 4 k - 2 n`` bytes
  (a quarter of them 8-bit codes, the rest 4-bit), for several k, and with 8-bit codes only;
* ``(c) without per-T tail masses``: (c) decoded at T0 = 1 and re-tempered whole (what a store
  keeping only the T0 tail mass would give, at ``2 (n - 1)`` fewer bytes: study only);
* ``(c) T=1 profile only``: (c) without the ensemble part of the tail profiles (its basis fitted
  on the T0 part alone): what re-tempering the T = 1 mean's tail gives;
* ``(c) one store per T``: (c) with the base temperature at each T (exact top-k shape for an
  ensemble too), n times the bytes in all;
* the re-tempering floor: the exact T = 1 ensemble mean re-tempered, no compression.

Usage (run heavy studies under the shared CPU lock)::

    python recipes/mini_librispeech/local/store_designs.py --teacher exp/e1/ensemble/ensemble.json \\
        --exp exp --subset train-clean-5 --budget 100 --out results/store_designs.json
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from asr_kd.distillation.cli import load_teacher
from asr_kd.distillation.fidelity import (
    FidelityAccumulator,
    effective_log_targets,
    format_kl,
    frame_divergences,
    temperature_key,
)
from asr_kd.distillation.lowrank import default_rank_8bit, rank_for_bytes, uniform_tail
from asr_kd.distillation.soft_targets import TopKTargets
from asr_kd.distillation.teacher_store import (
    LOGP_DIR,
    TeacherStoreConfig,
    decode_frames,
    encode_frames,
    fit_bases,
    tempered_batches,
)
from asr_kd.utils.atomic import write_json


def quantise_top_log_probs(top: torch.Tensor) -> torch.Tensor:
    """8-bit linear quantisation of ``(N, k)`` sorted log-probabilities between their last and first value."""
    lo, hi = top[:, -1:], top[:, :1]
    step = (hi - lo).clamp_min(1e-6) / 255
    return lo.half().float() + torch.round((top - lo) / step) * step.half().float()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", nargs="+", required=True, type=Path)
    parser.add_argument("--exp", required=True, type=Path)
    parser.add_argument("--subset", required=True)
    parser.add_argument("--budget", type=int, default=100, help="bytes per frame of every candidate")
    parser.add_argument("--temperature", nargs="+", type=float, default=[1.0, 2.0, 5.0, 10.0])
    parser.add_argument("--ks", nargs="+", type=int, default=[4, 8, 16], help="k of the (c) candidates")
    parser.add_argument("--fit-frames", type=int, default=20000)
    parser.add_argument("--eval-utts", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-frames", type=int, default=10000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    loaded, features = load_teacher(args.teacher, "mean_prob", args.device, args.exp, args.subset)
    teacher = loaded.model
    num_senones, temps, budget = int(teacher.num_senones), sorted(args.temperature), args.budget
    n = len(temps)
    lowrank = {}
    for k in args.ks:
        rank = min(rank_for_bytes(budget - 4 * k - 2 * n), num_senones - 1)
        lowrank[f"(c) top-{k} + PCA r={rank} ({default_rank_8bit(rank)} x 8 bits, the rest 4)"] = TeacherStoreConfig(
            1.0, num_senones, top_k=k, rank=rank, temperatures=tuple(temps), fit_frames=args.fit_frames)
    rank_8 = budget - 32 - 2 * n
    wide = {f"(c) top-8 + PCA r={rank_8}, all 8 bits": TeacherStoreConfig(
        1.0, num_senones, top_k=8, rank=rank_8, rank_8bit=rank_8, temperatures=tuple(temps),
        fit_frames=args.fit_frames)} if 8 in args.ks and rank_8 > 0 else {}
    chosen = next(iter(c for c in lowrank.values() if c.top_k == 8), next(iter(lowrank.values())))  # the store's k
    per_t_rank = min(rank_for_bytes(budget - 4 * chosen.top_k - 2), num_senones - 1)
    per_t = {t: replace(chosen, temperature=t, temperatures=(t,), rank=per_t_rank, rank_8bit=None) for t in temps}
    k_uniform = (budget - 2 * n) // 4
    mean_profile = TeacherStoreConfig(1.0, num_senones, top_k=k_uniform, rank=0, temperatures=tuple(temps),
                                      fit_frames=args.fit_frames)
    lowrank.update(wide)
    fitted = [*lowrank.values(), *per_t.values(), mean_profile]
    ids = features.utt_ids()
    bases, fit_utts = fit_bases(teacher, features, ids, fitted, args.device, args.max_frames)
    basis = dict(zip(map(id, fitted), bases))
    t0_only = replace(chosen)  # the same store without the ensemble part of its profiles
    basis[id(t0_only)] = fit_bases(teacher, features, ids, [t0_only], args.device, args.max_frames,
                                   ensemble_part=False)[0][0]
    eval_utts = sorted(set(ids) - set(fit_utts))[: args.eval_utts]
    uniform = replace(mean_profile, top_k=k_uniform)
    k_8bit = (budget - 2 * n - 4) // 3
    quantised = replace(mean_profile, top_k=k_8bit)

    k_top = budget // 4
    names = {"topk_renorm": f"(a) top-{k_top} renormalised, one store per T",
             "topk_tail": f"(a) top-{k_top} tail uniform, one store per T",
             "uniform": f"(b) top-{k_uniform} T=1 + tail masses, uniform tail",
             "quantised": f"(d) 8-bit top-{k_8bit} T=1 + tail masses, uniform tail",
             "mean_profile": f"(e) top-{k_uniform} T=1 + tail masses, mean-profile tail",
             **{name: name for name in lowrank},
             "no_masses": f"(c) top-{chosen.top_k} + PCA r={chosen.rank}, no per-T tail masses",
             "t0_only": f"(c) top-{chosen.top_k} + PCA r={chosen.rank}, T=1 profile only (no ensemble part)",
             "per_t": f"(c) top-{chosen.top_k} + PCA r={per_t_rank}, one store per T (all T together)",
             "floor": "re-tempered exact T=1 mean (floor, no compression)"}
    sizes = {"topk_renorm": budget, "topk_tail": budget, "uniform": uniform.bytes_per_frame,
             "quantised": quantised.bytes_per_frame - k_8bit + 4,  # 1-byte log-probs + 2 fp16 range scalars
             "mean_profile": mean_profile.bytes_per_frame, **{name: c.bytes_per_frame for name, c in lowrank.items()},
             "no_masses": chosen.bytes_per_frame - 2 * (n - 1), "t0_only": chosen.bytes_per_frame,
             "per_t": sum(c.bytes_per_frame for c in per_t.values()), "floor": None}
    acc = {key: FidelityAccumulator() for key in names}
    settings = [(t, "mean_prob") for t in sorted({1.0, *temps})] + [(1.0, "mean_logits")]
    for _, lengths, log_probs in tempered_batches(teacher, features, eval_utts, settings, args.device,
                                                  args.max_frames):
        valid = [torch.cat([x[:m] for x, m in zip(lp, lengths)]) for lp in log_probs]
        ref = {t: v for (t, combine), v in zip(settings, valid) if combine == "mean_prob"}
        limit = valid[-1]  # mean logits at T0 = 1
        def add(key, targets, temperatures=temps, ref=ref):
            for t in temperatures:
                acc[key].add(t, frame_divergences(ref[t], targets.log_probs(t), targets.ids))

        def decoded(config, tail_basis, quantise=False, ensemble_part=True, ref=ref, limit=limit):
            """The candidate's targets as training reads them: encoded to store arrays, then decoded."""
            served = [ref[t] for t in config.served_temperatures]
            # the ensemble part: the mean logits at T0 against the T0 mean (none if it is the mean)
            uses_part = ensemble_part and config.settings()[-1][1] == "mean_logits"
            asymptotic = torch.log_softmax(limit / config.temperature, -1) if uses_part else ref[config.temperature]
            arrays = encode_frames([*served, asymptotic], config, tail_basis)
            arrays = {k: torch.from_numpy(v) for k, v in arrays.items()}
            if quantise:
                arrays[LOGP_DIR] = quantise_top_log_probs(arrays[LOGP_DIR].float())
            return decode_frames(config, arrays, tail_basis)

        for key, policy in (("topk_renorm", "renormalise"), ("topk_tail", "tail")):
            for t in temps:
                top, top_ids = ref[t].topk(k_top, dim=-1)
                q = effective_log_targets(TopKTargets(top_ids, top.exp().half().float()), t, policy, num_senones)
                acc[key].add(t, frame_divergences(ref[t], q, top_ids))
        add("uniform", decoded(uniform, uniform_tail(num_senones)))
        add("quantised", decoded(quantised, uniform_tail(num_senones), quantise=True))
        add("mean_profile", decoded(mean_profile, basis[id(mean_profile)]))
        for name, config in lowrank.items():
            add(name, decoded(config, basis[id(config)]))
        base = decoded(chosen, basis[id(chosen)]).log_probs(1.0)
        for t in temps:
            acc["no_masses"].add(t, frame_divergences(ref[t], torch.log_softmax(base / t, dim=-1)))
            acc["floor"].add(t, frame_divergences(ref[t], torch.log_softmax(ref[1.0] / t, dim=-1)))
        for t, config in per_t.items():
            add("per_t", decoded(config, basis[id(config)]), [t])
        add("t0_only", decoded(t0_only, basis[id(t0_only)], ensemble_part=False))

    dense = 2 * num_senones
    rows = [{"name": names[key], "bytes_per_frame": size, "fraction_of_dense": None if size is None else size / dense,
             **{temperature_key(t): m for t, m in acc[key].means().items()}} for key, size in sizes.items()]
    frames = sum(features.store.num_rows(u) for u in eval_utts)
    result = {"teacher": [str(p) for p in args.teacher], "subset": args.subset, "num_senones": num_senones,
              "budget_bytes_per_frame": budget, "fit_utterances": len(fit_utts), "eval_utterances": len(eval_utts),
              "eval_frames": frames, "rows": rows}
    if args.out:
        write_json(args.out, result)
    print(markdown(rows, temps))
    print(f"store_designs: {len(rows)} designs at <= {budget} bytes/frame ({100 * budget / dense:.2f}% of dense fp16, "
          f"{num_senones} senones), {len(eval_utts)} utterances / {frames} frames of {args.subset} outside the "
          f"{len(fit_utts)}-utterance PCA sample" + (f" -> {args.out}" if args.out else ""))
    return result


def markdown(rows: list[dict], temps: list[float]) -> str:
    head = ["design", "bytes/frame", *(f"KL T={t:g}" for t in temps), *(f"kept T={t:g}" for t in temps)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in rows:
        m = [row[temperature_key(t)] for t in temps]
        kl = [format_kl(x["kl_dense_store"]) for x in m]
        kept = [f"{100 * x['kept_mass']:.1f}%" for x in m]
        size = "–" if row["bytes_per_frame"] is None else str(row["bytes_per_frame"])
        lines.append("| " + " | ".join([row["name"], size, *kl, *kept]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
