#!/usr/bin/env bash
# Mini LibriSpeech recipe: the paper's two experiments on CPU (Hinton, Vinyals & Dean 2015).
#   E1: baseline DNNs, an ensemble of N, students distilled from the ensemble at temperature T.
#   E2: 3% of the training utterances, hard targets (with / without early stopping) vs soft
#       targets from a model trained on 100% of the data.
# The data is a speaker subset of Mini LibriSpeech (../shared/data: 2.7 h train-clean-5,
# 55 min dev-clean-2): results are not comparable with published Mini LibriSpeech numbers.
#
# Usage: bash recipes/mini_librispeech/run.sh [--stage N] [--stop-stage M] [--root DIR] [--exp DIR]
#            [--jobs J] [--members N] [--seeds "0 1 2"] [--temperatures "2"] [--model-conf YAML]
#            [--num-senones N] [--tree-args "..."] [--results DIR] [--train SUBSET] [--dev SUBSET]
#            [--teacher-top-k K] [--beam B] [--device cpu|cuda] [--lm en-us|train] [--lm-prune THRESHOLD]
# Stages: 0 prepare, 1 features, 2 tree + alignment, 3 LM + HCLG, 4 E1 ensemble, 5 E1 teacher
# store + students, 6 E1 frame accuracy + WER, 7 E1 results, 8 E2 training + evaluation, 9 E2 results.
# Every stage is idempotent: finished models/stores are reused, so a killed run continues
# where it stopped (training resumes from its last checkpoint).
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=100
root=../shared/data/LibriSpeech
exp=exp/mini_librispeech
jobs=2                      # parallel training processes (1 torch thread each)
members=4                   # E1 ensemble size
seeds="0 1 2"               # student / E2 seeds
temperatures="2"            # E1 distillation temperatures (the paper's sweep: --temperatures "1 2 5 10")
teacher_top_k=20            # senones kept per frame in the teacher store
beam=13                     # decoding beam: WER within 0.1 of beam 16 at a third of its CPU time
train=train-clean-5
dev=dev-clean-2
device=cpu                  # forward passes of evaluate / posteriors / dump-teacher (training: train.device)
lm=en-us                    # stage 3: en-us = pocketsphinx's 72k-word trigram; train = 3-gram of the training transcripts
lm_prune=1e-7               # en-us: relative-entropy pruning of the trigram the graph is built from (README: LM)
num_senones=1000
tree_args=""                # extra `asr-kd tree` options
fraction=0.03               # E2 training fraction
conf=recipes/mini_librispeech/conf
model_conf=$conf/dnn_mini.yaml
e2_conf=$conf/dnn_mini_3pct.yaml
results=recipes/mini_librispeech/results
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --members) members=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --temperatures) temperatures=$2; shift 2 ;;
    --model-conf) model_conf=$2; shift 2 ;;
    --num-senones) num_senones=$2; shift 2 ;;
    --tree-args) tree_args=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --train) train=$2; shift 2 ;;
    --dev) dev=$2; shift 2 ;;
    --teacher-top-k) teacher_top_k=$2; shift 2 ;;
    --beam) beam=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --lm) lm=$2; shift 2 ;;
    --lm-prune) lm_prune=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
e1=$exp/e1
e2=$exp/e2
mkdir -p "$exp"
start_time=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - start_time )) s] $*"; }

# A pool of at most $jobs background commands; `set -e` stops the recipe when one fails.
pids=()
spawn() {
  "$@" & pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
}
wait_all() { for pid in "${pids[@]}"; do wait "$pid"; done; pids=(); }

# Train one model unless its model.pt exists (then reuse it); --resume continues a killed run.
train_model() {  # out_dir, then asr-kd train/distill arguments
  local out=$1; shift
  [ -f "$out/model.pt" ] && { echo "reusing $out/model.pt"; return 0; }
  local resume=(); [ -f "$out/checkpoint.pt" ] && resume=(--resume)
  "$@" "${resume[@]}" out_dir="$out" train.progress=false
}

# Evaluate (frame accuracy JSON), compute dev log-posteriors, decode, score: one model or ensemble.
# Output goes to <eval dir>/eval.log, since several run side by side.
eval_and_decode() {  # name, model files...
  local name=$1; shift
  local dir=$e1/eval/$name
  mkdir -p "$dir"
  eval_and_decode_steps "$dir" "$@" > "$dir/eval.log" 2>&1 || { cat "$dir/eval.log" >&2; return 1; }
  echo "$name: $(tail -n 1 "$dir/eval.log")"
}
eval_and_decode_steps() {  # eval dir, model files...  (`set -e` is off here: each step checks)
  local dir=$1; shift
  if [ ! -f "$dir/frame_acc.json" ]; then
    asr-kd evaluate --model "$@" --exp "$exp" --subset $dev --threads 1 --device "$device" \
      --out "$dir/frame_acc.json" || return 1
  fi
  asr-kd posteriors --model "$@" --exp "$exp" --subset $dev --threads 1 --device "$device" --out "$dir/logpost" || return 1
  if [ ! -f "$dir/decode/hyp.txt" ]; then
    asr-kd decode --graph-dir "$exp/graph" --scores "$dir/logpost" --kind log-posteriors --tree-dir "$exp/tree" \
      --beam "$beam" --out "$dir/decode" || return 1
  fi
  asr-kd score --ref "$exp/manifests/$dev.tsv" --hyp "$dir/decode/hyp.txt"
}

if run_stage 0; then
  stamp "stage 0: manifests + lexicon"
  asr-kd prepare --root "$root" --subsets $train $dev --exp "$exp"
fi
if run_stage 1; then
  stamp "stage 1: log-mel features + CMVN"
  asr-kd features --exp "$exp" --subsets $train $dev
fi
if run_stage 2; then
  stamp "stage 2: senone tree + forced alignment (train), alignment of dev with a quality report"
  # shellcheck disable=SC2086  # tree_args is a list of options
  asr-kd tree --exp "$exp" --subset $train --num-senones $num_senones $tree_args
  reference=$(dirname "$root")/alignments/mfa_word_segments.tsv
  ref_args=(); [ -f "$reference" ] && ref_args=(--reference "$reference")
  asr-kd align --exp "$exp" --subset $dev --report "${ref_args[@]}"
fi
if run_stage 3; then
  case "$lm" in
    train)
      stamp "stage 3: 3-gram LM from the training transcripts (KenLM) + HCLG"
      lmplz=$(bash tools/install_kenlm.sh | tail -n 1)
      arpa=$exp/lm/train.3gram.arpa
      ASR_KD_LMPLZ=$lmplz asr-kd lm --exp "$exp" --subset $train --order 3 --eval-subset $dev --out "$arpa" ;;
    en-us)
      # the full trigram is for rescoring, the pruned one for the first-pass graph; dev text only scores them
      stamp "stage 3: pocketsphinx's en-us trigram (graph: pruned at $lm_prune) + HCLG"
      arpa=$exp/lm/en-us.3gram.pruned$lm_prune.arpa
      [ -f "$exp/lm/en-us.3gram.json" ] || asr-kd lm --exp "$exp" --source pocketsphinx-en-us --eval-subset $dev \
        --out "$exp/lm/en-us.3gram.arpa"
      [ -f "${arpa%.arpa}.json" ] || asr-kd lm --exp "$exp" --source arpa --arpa "$exp/lm/en-us.3gram.arpa" \
        --prune "$lm_prune" --eval-subset $dev --out "$arpa" ;;
    *) echo "unknown --lm $lm (en-us or train)" >&2; exit 1 ;;
  esac
  asr-kd graph --exp "$exp" --arpa "$arpa" --graph-dir "$exp/graph"
fi
if run_stage 4; then
  stamp "stage 4: E1 ensemble of $members DNNs (members double as the baseline seeds)"
  [ -f "$e1/ensemble/ensemble.json" ] || asr-kd train-ensemble --config $model_conf --members "$members" \
    --jobs "$jobs" data.exp="$exp" data.train_subset=$train data.dev_subset=$dev out_dir="$e1/ensemble" \
    train.progress=false
fi
if run_stage 5; then
  stamp "stage 5: E1 teacher stores at T in {$temperatures} (top-$teacher_top_k, one teacher pass) + students, seeds $seeds"
  # shellcheck disable=SC2086  # temperatures is a list
  asr-kd distill dump-teacher --teacher "$e1/ensemble/ensemble.json" --exp "$exp" --subset $train \
    --temperature $temperatures --top-k $teacher_top_k --device "$device" --out "$e1/teacher_T{T}"
  for T in $temperatures; do
    for seed in $seeds; do
      spawn train_model "$e1/student_T${T}/seed$seed" asr-kd distill train --config $model_conf \
        --store "$e1/teacher_T$T" --temperature "$T" --alpha 1.0 data.exp="$exp" data.train_subset=$train \
        data.dev_subset=$dev train.seed="$seed"
    done
  done
  wait_all
fi
if run_stage 6; then
  stamp "stage 6: E1 frame accuracy + WER (beam $beam) of each member, the ensemble and the students"
  for m in "$e1"/ensemble/member*/; do spawn eval_and_decode "baseline_$(basename "$m")" "$m/model.pt"; done
  spawn eval_and_decode ensemble "$e1/ensemble/ensemble.json"
  for T in $temperatures; do
    for seed in $seeds; do spawn eval_and_decode "student_T${T}_seed$seed" "$e1/student_T${T}/seed$seed/model.pt"; done
  done
  wait_all
fi
if run_stage 7; then
  stamp "stage 7: E1 results tables and figures -> $results"
  bash recipes/mini_librispeech/local/e1_results.sh --exp "$exp" --out "$results" --temperatures "$temperatures"
fi
if run_stage 8; then
  stamp "stage 8: E2 on $fraction of the training utterances, seeds $seeds"
  teacher=$e1/ensemble/member0/model.pt   # a single model trained on 100% of the data, as in the paper
  for seed in $seeds; do
    common=(--config $e2_conf data.exp="$exp" data.train_subset=$train data.dev_subset=$dev
            data.train_fraction=$fraction data.subset_seed="$seed" train.seed="$seed")
    train_model "$e2/hard/seed$seed" asr-kd train "${common[@]}" &
    train_model "$e2/hard_no_es/seed$seed" asr-kd train "${common[@]}" train.patience=0 train.keep=last
    wait
    store=$e2/teacher_seed$seed
    asr-kd distill dump-teacher --teacher "$teacher" --exp "$exp" --subset $train --utts "$e2/hard/seed$seed/train_utts.txt" \
      --temperature 2 --top-k $teacher_top_k --out "$store"
    # options before the section.key=value overrides: argparse takes one run of positionals only
    train_model "$e2/soft/seed$seed" asr-kd distill train --store "$store" --temperature 2 --alpha 1.0 "${common[@]}" \
      train.patience=0 train.keep=last
  done
  for run in "$e2"/*/seed*/; do
    [ -f "$run/dev_acc.json" ] || asr-kd evaluate --model "$run/model.pt" --exp "$exp" --subset $dev --threads 1 --out "$run/dev_acc.json"
    [ -f "$run/train_acc.json" ] || asr-kd evaluate --model "$run/model.pt" --exp "$exp" --subset $train \
      --utts "$run/train_utts.txt" --threads 1 --out "$run/train_acc.json"
  done
  asr-kd evaluate --model "$teacher" --exp "$exp" --subset $train --threads 1 --out "$e2/full_train_acc.json"
fi
if run_stage 9; then
  stamp "stage 9: E2 results tables and figures -> $results"
  bash recipes/mini_librispeech/local/e2_results.sh --exp "$exp" --out "$results"
fi
stamp "done"
