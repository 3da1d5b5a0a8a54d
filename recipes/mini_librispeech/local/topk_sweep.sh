#!/usr/bin/env bash
# Teacher store size vs student quality: students distilled from the E1 ensemble with its top-k
# senones per frame (renormalised, or with the tail mass spread uniformly) or with dense targets.
# Needs run.sh stages 0-4 (features, alignments, the E1 ensemble). One teacher pass writes every
# store; students train as run.sh's stage 5 does (same config, alpha 1); dev frame accuracy only.
#
# Usage: bash recipes/mini_librispeech/local/topk_sweep.sh [--exp DIR] [--ks "5 10 20 dense"]
#            [--policies "renormalise tail"] [--temperature 2] [--seeds "0 1 2"] [--jobs J]
#            [--model-conf YAML] [--out DIR] [--train SUBSET] [--dev SUBSET] [--device cpu|cuda]
# Writes <exp>/e1/topk/{teacher_k<k>,student_k<k>_<policy>/seed<s>} and <out>/topk.{json,md,png}.
set -euo pipefail
cd "$(dirname "$0")/../../.."

exp=exp/mini_librispeech
ks="5 10 20 dense"
policies="renormalise tail"
temperature=2
seeds="0 1 2"
jobs=2
model_conf=recipes/mini_librispeech/conf/dnn_mini.yaml
out=recipes/mini_librispeech/results
train=train-clean-5
dev=dev-clean-2
device=cpu   # teacher and evaluation forward passes (training: the config's train.device)
while [ $# -gt 0 ]; do
  case "$1" in
    --exp) exp=$2; shift 2 ;;
    --ks) ks=$2; shift 2 ;;
    --policies) policies=$2; shift 2 ;;
    --temperature) temperature=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --model-conf) model_conf=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --train) train=$2; shift 2 ;;
    --dev) dev=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done
dir=$exp/e1/topk
mkdir -p "$dir" "$out"

# shellcheck disable=SC2086  # ks is a list
asr-kd distill dump-teacher --teacher "$exp/e1/ensemble/ensemble.json" --exp "$exp" --subset "$train" \
  --temperature "$temperature" --top-k $ks --device "$device" --out "$dir/teacher_k{k}"
for k in $ks; do
  asr-kd distill inspect --store "$dir/teacher_k$k" > "$dir/teacher_k$k/inspect.json"
done

pids=()
student() {  # k, policy, seed
  local run=$dir/student_k$1_$2/seed$3
  if [ ! -f "$run/model.pt" ]; then
    local resume=(); [ -f "$run/checkpoint.pt" ] && resume=(--resume)
    asr-kd distill train --config "$model_conf" --store "$dir/teacher_k$1" --temperature "$temperature" --alpha 1.0 \
      --topk-policy "$2" "${resume[@]}" data.exp="$exp" data.train_subset="$train" \
      data.dev_subset="$dev" train.seed="$3" out_dir="$run" train.progress=false \
      > "$run.log" 2>&1 || { cat "$run.log" >&2; return 1; }
  fi
  [ -f "$run/frame_acc.json" ] || asr-kd evaluate --model "$run/model.pt" --exp "$exp" --subset "$dev" --threads 1 \
    --device "$device" --out "$run/frame_acc.json" > /dev/null
}
rows=()
for k in $ks; do
  # dense targets are the full distribution: the tail policy does not apply
  [ "$k" = dense ] && k_policies=renormalise || k_policies=$policies
  for policy in $k_policies; do
    mkdir -p "$dir/student_k${k}_$policy"
    for seed in $seeds; do
      student "$k" "$policy" "$seed" & pids+=($!)
      if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    done
    name="top-$k $policy"; [ "$k" = dense ] && name="dense"
    rows+=(--row "$name=$dir/student_k${k}_$policy/seed*/frame_acc.json" --row "$name=$dir/teacher_k$k/inspect.json")
  done
done
for pid in "${pids[@]}"; do wait "$pid"; done

asr-kd report table "${rows[@]}" --metric "frame_acc:100=dev frame accuracy (%)" \
  --metric "fraction_of_dense:100=store size (% of dense fp16)" \
  --metric "mean_kept_mass:100=teacher mass kept (%)" --out-dir "$out" --name "topk_T$temperature"
echo "topk_sweep: $out/topk_T$temperature.md"
