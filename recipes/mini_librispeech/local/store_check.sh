#!/usr/bin/env bash
# Faithful soft targets: the low-rank teacher store against dense and top-k stores.
#   1. the design study (local/store_designs.py): candidate encodings at one byte budget;
#   2. one teacher pass writes the low-rank store (serving every T of --temperatures), and one
#      more the dense and top-k stores at --temperature;
#   3. `asr-kd distill fidelity`: KL(dense || store), kept mass, bytes/frame of each store;
#   4. students distilled from each store at --temperature (same config, seeds), dev frame accuracy.
# Needs run.sh stages 0-4 (features, alignments, the validation split, the E1 ensemble). The stores
# hold the training utterances outside the validation split, which the students validate on.
#
# Usage: bash recipes/mini_librispeech/local/store_check.sh [--exp DIR] [--ensemble JSON]
#            [--temperatures "1 2 5 10"] [--temperature 2] [--top-k 8] [--rank 96] [--baseline-k 20]
#            [--alpha 0.666667] [--seeds "0"] [--budget 100] [--jobs 3] [--model-conf YAML] [--out DIR]
#            [--train SUBSET] [--dev SUBSET] [--device cpu|cuda] [--stage N]
# Writes <exp>/e1/store/{teacher_*,student_*/seed<s>} and <out>/store_{designs,fidelity,students}.*
set -euo pipefail
cd "$(dirname "$0")/../../.."

exp=exp/mini_librispeech
ensemble=
temperatures="1 2 5 10"
temperature=2
top_k=8
rank=96
baseline_k=20
alpha=0.666667   # the recipe's: relative weight 0.5 on the hard term
seeds="0"
budget=100
jobs=3        # students side by side (1 thread each)
model_conf=recipes/mini_librispeech/conf/dnn_mini.yaml
out=recipes/mini_librispeech/results
train=train-clean-5
dev=dev-clean-2
device=cpu
stage=1
. recipes/mini_librispeech/local/common.sh  # parse_options (the working directory is the repo root)
parse_options "$@"
require_configs "$model_conf"
ensemble=${ensemble:-$exp/e1/ensemble/ensemble.json}
dir=$exp/e1/store
lowrank=$dir/teacher_lowrank_k${top_k}_r$rank
topk=$dir/teacher_T${temperature}_k$baseline_k
dense=$dir/teacher_T${temperature}_kdense
utts=$exp/splits/$train/train.txt  # run.sh stage 0 (asr-kd valid-split)
[ -f "$utts" ] || { echo "$0: $utts missing: run asr-kd valid-split --exp $exp --subset $train" >&2; exit 1; }
mkdir -p "$dir" "$out"
stamp() { echo "== $(date +%T) $*"; }

if [ "$stage" -le 1 ]; then
  stamp "design study at $budget bytes/frame"
  # shellcheck disable=SC2086  # temperatures is a list
  python recipes/mini_librispeech/local/store_designs.py --teacher "$ensemble" --exp "$exp" --subset "$train" \
    --budget "$budget" --temperature $temperatures --device "$device" --out "$out/store_designs.json" \
    > "$out/store_designs.md"
  cat "$out/store_designs.md"
fi
if [ "$stage" -le 2 ]; then
  stamp "teacher stores: low-rank (k=$top_k, r=$rank, T in {$temperatures}), top-$baseline_k and dense at T=$temperature"
  # shellcheck disable=SC2086
  asr-kd distill dump-teacher --teacher "$ensemble" --exp "$exp" --subset "$train" --utts "$utts" --store-kind lowrank \
    --temperature $temperatures --top-k "$top_k" --rank "$rank" --device "$device" --out "$lowrank"
  asr-kd distill dump-teacher --teacher "$ensemble" --exp "$exp" --subset "$train" --utts "$utts" \
    --temperature "$temperature" \
    --top-k "$baseline_k" dense --device "$device" --out "$dir/teacher_T{T}_k{k}"
  for store in "$lowrank" "$topk" "$dense"; do asr-kd distill inspect --store "$store" > "$store/inspect.json"; done
fi
if [ "$stage" -le 3 ]; then
  stamp "fidelity of the stores against the teacher's exact targets"
  # shellcheck disable=SC2086
  asr-kd distill fidelity --teacher "$ensemble" --exp "$exp" --subset "$train" --store "$lowrank" "$topk" "$dense" \
    --temperature $temperatures --topk-policy renormalise tail --device "$device" --out "$out/store_fidelity.json" \
    | tee "$out/store_fidelity.md"
fi
if [ "$stage" -le 4 ]; then
  stamp "students at T=$temperature, alpha $alpha, seeds $seeds"
  pids=()
  student() {  # name, store, seed
    local run=$dir/student_$1/seed$3
    mkdir -p "$(dirname "$run")"
    if [ ! -f "$run/model.pt" ]; then
      local resume=(); [ -f "$run/checkpoint.pt" ] && resume=(--resume)
      asr-kd distill train --config "$model_conf" --store "$2" --temperature "$temperature" --alpha "$alpha" \
        "${resume[@]}" data.exp="$exp" data.train_subset="$train" train.seed="$3" \
        out_dir="$run" train.progress=false > "$run.log" 2>&1 || { cat "$run.log" >&2; return 1; }
    fi
    [ -f "$run/frame_acc.json" ] || asr-kd evaluate --model "$run/model.pt" --exp "$exp" --subset "$dev" \
      --threads 1 --device "$device" --out "$run/frame_acc.json" > /dev/null
  }
  rows=()
  for entry in "lowrank:$lowrank" "top-$baseline_k renormalised:$topk" "dense:$dense"; do
    name=${entry%%:*}; store=${entry#*:}; tag=${name%% *}
    for seed in $seeds; do
      student "$tag" "$store" "$seed" & pids+=($!)
      if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    done
    rows+=(--row "$name=$dir/student_$tag/seed*/frame_acc.json" --row "$name=$store/inspect.json")
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  asr-kd report table "${rows[@]}" --metric "frame_acc:100=dev frame accuracy (%)" \
    --metric "fraction_of_dense:100=store size (% of dense fp16)" --out-dir "$out" \
    --name "store_students_T$temperature"
fi
stamp "store_check: $out/store_{designs,fidelity}.md, $out/store_students_T$temperature.md"
