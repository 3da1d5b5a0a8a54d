#!/usr/bin/env bash
# Decoding study (issue 13): search speed, N-best weight tuning and LM rescoring with the
# pocketsphinx en-us LM on the mini data. Run it under the CPU lock; it uses both cores.
#
# Usage: bash recipes/mini_librispeech/local/decode_study.sh --exp EXP --lm-dir LMDIR --out OUT
#            [--stage N] [--stop-stage M] [--systems "member0 member1 ... ensemble"]
#   EXP    a recipe experiment with tree/, manifests/, feats/ and e1/ensemble/ (read only)
#   LMDIR  <first-lm>.arpa + <first-lm>.lexicon.txt (first pass) and <big-lm>.arpa (rescoring) (asr-kd lm)
#   OUT    where graphs, posteriors, N-best lists and scores go
# Stages: 1 first-pass HCLG (default: the trigram pruned at 1e-7), 2 dev log-posteriors of each system,
# 3 search comparison (benchmarks.bench_decode: best path vs lattice search at 4 beam/max-active pairs and lattice
# beams 4/6/8, tuned on other speakers), 4 N-best decoding of dev, 5 trigram rescoring,
# 6 scoring: untuned, tuned on the other half of the dev speakers (2-fold), best on dev,
# 7 the pocketsphinx peer benchmark.
set -euo pipefail
cd "$(dirname "$0")/../../.."

stage=1
stop_stage=100
exp=
lm_dir=
out=
dev=dev-clean-2
systems="member0 member1 member2 member3 ensemble"
beam=13                     # best-path searches (the peer benchmark)
lattice_search_beam=10      # lattice searches (stage 4): see stage 3 for the speed and WER of each setting
max_active=2000
lattice_beam=6
nbest=100
first_lm=en-us.3gram.pruned1e-07
big_lm=en-us.3gram
reuse_graph=                # an existing graph dir; used when its inputs hash to the same key
. recipes/mini_librispeech/local/common.sh  # parse_options (the working directory is the repo root)
parse_options "$@"
[ -n "$exp" ] && [ -n "$lm_dir" ] && [ -n "$out" ] || { echo "need --exp, --lm-dir and --out" >&2; exit 1; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
start_time=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - start_time )) s] $*"; }
mkdir -p "$out"
graph=$out/graph_$first_lm
first_arpa=$lm_dir/$first_lm.arpa
model_of() {  # system name -> model file
  if [ "$1" = ensemble ]; then echo "$exp/e1/ensemble/ensemble.json"; else echo "$exp/e1/ensemble/$1/model.pt"; fi
}

if run_stage 1; then
  stamp "stage 1: HCLG of $first_lm (72k words), build time and peak memory"
  if [ -n "$reuse_graph" ] && [ -f "$reuse_graph/graph.json" ] && python -c '
import json, sys
from pathlib import Path
from asr_kd.decoding.hclg import GraphOptions, graph_key
graph, tree, lexicon, arpa = map(Path, sys.argv[1:])
sys.exit(json.loads((graph / "graph.json").read_text())["key"] != graph_key(tree, lexicon, arpa, GraphOptions()))
'  "$reuse_graph" "$exp/tree/tree.json" "$lm_dir/$first_lm.lexicon.txt" "$first_arpa"; then
    echo "reusing $reuse_graph (same tree, lexicon, LM and options)"
    ln -sfn "$(realpath "$reuse_graph")" "$graph"
  else
    /usr/bin/time -v asr-kd graph --exp "$exp" --arpa "$first_arpa" \
      --lexicon "$lm_dir/$first_lm.lexicon.txt" --graph-dir "$graph" 2> "$out/graph_$first_lm.time.log"
    grep -E "Maximum resident|Elapsed" "$out/graph_$first_lm.time.log"
  fi
fi
if run_stage 2; then
  stamp "stage 2: $dev log-posteriors of $systems"
  for s in $systems; do
    asr-kd posteriors --model "$(model_of "$s")" --exp "$exp" --subset $dev --threads 2 --out "$out/$s/logpost"
  done
fi
if run_stage 3; then
  stamp "stage 3: best path vs lattice search + $nbest-best (member0, 100 + 100 dev utterances)"
  python -m benchmarks.bench_decode --graph-dir "$graph" --scores "$out/member0/logpost" --tree-dir "$exp/tree" \
    --ref "$exp/manifests/$dev.tsv" --work-dir "$out/search_comparison" --utts 100 --seed 0 --nbest $nbest --jobs 2 \
    | tail -n 1 | tee "$out/search_comparison.txt"
fi
# the 2-fold tuning split: dev speakers alternately in half A and half B
split_dev() {
  tail -n +2 "$exp/manifests/$dev.tsv" | cut -f1,5,8 | sort -k2,2 -k1,1 > "$out/dev_utts.tsv"
  cut -f2 "$out/dev_utts.tsv" | uniq | awk 'NR % 2 == 1' > "$out/speakers_a.txt"
  awk -F'\t' 'NR == FNR { a[$1] = 1; next } { print $1 " " $3 > (($2 in a) ? OUT "/half_a.txt" : OUT "/half_b.txt") }' \
    OUT="$out" "$out/speakers_a.txt" "$out/dev_utts.tsv"
  cut -d' ' -f1 "$out/half_a.txt" > "$out/half_a.utts"; cut -d' ' -f1 "$out/half_b.txt" > "$out/half_b.utts"
}
if run_stage 4; then
  stamp "stage 4: lattice search + $nbest-best of $dev (beam $lattice_search_beam, max-active $max_active, lattice beam $lattice_beam)"
  for s in $systems; do
    asr-kd decode --graph-dir "$graph" --scores "$out/$s/logpost" --tree-dir "$exp/tree" --beam $lattice_search_beam \
      --max-active $max_active --lattice-beam $lattice_beam --nbest $nbest --jobs 2 --out "$out/$s/decode_first" \
      > "$out/$s/decode_first.log" 2>&1
    tail -n 1 "$out/$s/decode_first.log"
  done
fi
if run_stage 5; then
  stamp "stage 5: rescoring the N-best lists with $big_lm"
  for s in $systems; do
    asr-kd rescore --nbest "$out/$s/decode_first/nbest.jsonl.gz" --graph-dir "$graph" \
      --old-arpa "$first_arpa" --new-arpa "$lm_dir/$big_lm.arpa" --cache-dir "$out/rescore_cache" \
      --out "$out/$s/decode_first/nbest_rescored.jsonl.gz"
  done
fi
if run_stage 6; then
  stamp "stage 6: WER untuned / tuned on the other half of the speakers / best on dev"
  split_dev
  ref=$exp/manifests/$dev.tsv
  for s in $systems; do
    for lists in nbest nbest_rescored; do
      nb=$out/$s/decode_first/$lists.jsonl.gz
      asr-kd score --ref "$ref" --nbest "$nb" --out "$out/$s/$lists.untuned"
      asr-kd score --ref "$ref" --nbest "$nb" --prior-scales 0.7 0.85 1.0 --best-on-dev --out "$out/$s/$lists.best_on_dev"
      for half in a b; do
        other=$([ $half = a ] && echo b || echo a)
        asr-kd score --ref "$ref" --nbest "$nb" --utts "$out/half_$half.utts" --prior-scales 0.7 0.85 1.0 \
          --tune "$out/half_$other.txt" "$nb" --out "$out/$s/$lists.tuned_$half"
      done
    done
  done
  python - "$out" "$first_lm" "$big_lm" $systems <<'EOF'
import json, sys
from pathlib import Path
out, first_lm, big_lm, systems = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
print("| system | LM | untuned %WER | tuned (2-fold over speaker halves) %WER [LMWT, WIP, prior scale per half] "
      "| best on dev %WER [LMWT, WIP, prior scale] |")
print("|---|---|---|---|---|")
for s in systems:
    for lists, lm in (("nbest", first_lm), ("nbest_rescored", f"{first_lm} + {big_lm} rescoring")):
        load = lambda tag: json.loads((out / s / f"{lists}.{tag}.wer.json").read_text())
        untuned, best = load("untuned"), load("best_on_dev")
        halves = [load(f"tuned_{h}") for h in "ab"]
        errors = sum(h["summary"]["substitutions"] + h["summary"]["deletions"] + h["summary"]["insertions"] for h in halves)
        words = sum(h["summary"]["ref_words"] for h in halves)
        fmt = lambda r: "{lm_weight:g}, {word_ins_penalty:g}, {prior_scale:g}".format(**r["scoring"]["setting"])
        print(f"| {s} | {lm} | {100 * untuned['summary']['wer']:.2f} | {100 * errors / words:.2f} "
              f"[{fmt(halves[0])}; {fmt(halves[1])}] | {100 * best['summary']['wer']:.2f} [{fmt(best)}] |")
EOF
fi
if run_stage 7; then
  stamp "stage 7: peer benchmark: pocketsphinx vs asr_kd, same LM ($first_lm), 120 random $dev utterances"
  models=(); for s in $systems; do models+=("$(model_of "$s")"); done
  python -m benchmarks.bench_pocketsphinx_peer --exp "$exp" --subset $dev --num-utts 120 --seed 0 \
    --arpa "$first_arpa" --graph-dir "$graph" --tree-dir "$exp/tree" --ps-own-lm --model "${models[@]}" \
    | tee "$out/peer_benchmark.txt"
fi
stamp "done"
