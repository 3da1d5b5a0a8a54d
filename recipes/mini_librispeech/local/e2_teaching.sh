#!/usr/bin/env bash
# E2 beyond the paper's schedule (issue 12): patient and consistent teaching on 3% of the data.
# run.sh's E2 soft-target model stops when newbob stops gaining 0.05 points of validation frame
# accuracy per epoch; at 3% an epoch is ~100 optimiser steps, so that rule ends it after 17-21
# epochs. These rows ask what more the same teacher can give on the same 3%, with the same
# architecture, seeds and validation split (each model starts from the config.yaml of EXP's own
# E2 model of that seed, so the utterances and the 100% teacher, E1 member 0, are the same):
#   soft, patient             EXP's soft targets (its teacher store), a cosine LR schedule over
#                             --epochs epochs, the last epoch kept (no selection)
#   hard + augment            hard targets with --augment (SpecAugment-style masks, training
#                             inputs only), early stopping as E2's hard model, at most --epochs
#   soft + augment, store     patient soft targets from the store (the teacher saw clean
#                             features) on augmented inputs
#   soft + augment, online    patient soft targets from the teacher run on the student's own
#                             augmented inputs ("consistent" teaching, Beyer et al. 2022); with the
#                             defaults, the same config as run.sh's E2 system <exp>/e2/consistent
# Stages: 1 train (4 systems per seed), 2 evaluate (dev frame accuracy, and on the model's own
# training utterances), 3 tables: <out>/<name>_{dev,train,epochs}.{md,json} with EXP's E2 rows as
# references, <name>_recovery.md (share of the 3% hard (early stopping) -> 100% dev gap each row
# closes), <name>_learning_curves.png. Writes <exp>/<name>/{soft_patient,hard_aug,soft_aug_store,
# soft_aug_online}/seed<s>/ and <exp>/<name>/log/. Needs run.sh stages 0-8 on --exp.
#
# Usage: bash recipes/mini_librispeech/local/e2_teaching.sh --exp DIR [--seeds "0 1 2"] [--epochs 100]
#            [--augment "augment.freq_masks=2 ..."] [--temperature 2] [--jobs 2] [--out DIR] [--name e2_teaching]
#            [--fraction 0.03] [--recovery true] [--stage N --stop-stage M]
set -euo pipefail
cd "$(dirname "$0")/../../.."
exp=exp/mini_librispeech
seeds="0 1 2"
epochs=100                   # the patient rows' cosine schedule: 100 epochs of ~5 s at 3% (validation still gains at 60)
augment="augment.freq_masks=2 augment.freq_width=8 augment.time_masks=1 augment.time_width=4"  # SpecAugment's LB-like
temperature=2                # EXP's E2 temperature (run.sh --e2-temperature): its teacher stores hold that T
jobs=2
out=recipes/mini_librispeech/results/e2_teaching
name=e2_teaching
fraction=0.03                # EXP's E2 fraction (run.sh --fraction): for the row labels
recovery=true                # false: no gap fractions (tiny data)
stage=1
stop_stage=3
. recipes/mini_librispeech/local/common.sh
evaluation_options
parse_options "$@"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
e2=$exp/e2
study=$exp/$name
log_dir=$study/log
teacher=$exp/e1/ensemble/member0/model.pt    # run.sh's E2 teacher, the 100% model
percent=$(awk -v f="$fraction" 'BEGIN { printf "%g%%", 100 * f }')   # 0.03 -> 3%
# shellcheck disable=SC2206  # a word list
seed_list=($seeds)
for seed in "${seed_list[@]}"; do
  for model in hard soft; do
    [ -f "$e2/$model/seed$seed/config.yaml" ] || die "$e2/$model/seed$seed/config.yaml is missing: run run.sh stage 8 first"
  done
done
check_settings "$study/settings.txt" "epochs=$epochs" "augment=$augment" "T=$temperature"
evaluate_run() {  # model dir: dev frame accuracy, and on the model's own training utterances
  evaluate_once "$1/dev_acc.json" "$1/model.pt" "$dev"
  evaluate_once "$1/train_acc.json" "$1/model.pt" "$train" --utts "$1/train_utts.txt"
}
# the soft configs already keep the last epoch; nothing reads the per-epoch validation, which at 3%
# costs as much as the epoch: every 10th (curves) and the last
patient=(optim.schedule=cosine train.epochs="$epochs" train.valid_every=10)

for seed in "${seed_list[@]}"; do
  soft=(--config "$e2/soft/seed$seed/config.yaml" --temperature "$temperature" --alpha 1.0)
  store=(--store "$e2/teacher_seed$seed")
  # shellcheck disable=SC2086  # $augment: a word list
  {
    job "soft_patient$seed" 1 "" train_model "$study/soft_patient/seed$seed" asr-kd distill train "${store[@]}" \
      "${soft[@]}" "${patient[@]}"
    job "hard_aug$seed" 1 "" train_model "$study/hard_aug/seed$seed" asr-kd train \
      --config "$e2/hard/seed$seed/config.yaml" train.epochs="$epochs" $augment
    job "soft_aug_store$seed" 1 "" train_model "$study/soft_aug_store/seed$seed" asr-kd distill train "${store[@]}" \
      "${soft[@]}" "${patient[@]}" $augment
    job "soft_aug_online$seed" 1 "" train_model "$study/soft_aug_online/seed$seed" asr-kd distill train \
      --online-teacher "$teacher" "${soft[@]}" "${patient[@]}" $augment
  }
  for system in soft_patient hard_aug soft_aug_store soft_aug_online; do
    job "eval_$system$seed" 2 "$system$seed" evaluate_run "$study/$system/seed$seed"
  done
done
run_jobs
stage_times "1=train" "2=evaluate"
in_stages 3 || exit 0
mkdir -p "$out"
labels=("100% hard (baseline)" "$percent hard, early stopping" "$percent soft, newbob (run.sh)"
  "$percent soft, patient" "$percent hard + augment, early stopping" "$percent soft + augment, store, patient"
  "$percent soft + augment, online, patient")
dirs=("" "$e2/hard/seed*" "$e2/soft/seed*" "$study/soft_patient/seed*" "$study/hard_aug/seed*"
  "$study/soft_aug_store/seed*" "$study/soft_aug_online/seed*")
table_rows() {  # file name (dev_acc.json, summary.json, ...) -> rows=(--row LABEL=FILES ...) of every system that has it
  rows=()
  local i
  for i in "${!labels[@]}"; do
    if [ -z "${dirs[$i]}" ]; then  # the 100% model (E1 member 0): run.sh's E2 evaluated it once
      case "$1" in dev_acc.json|train_acc.json) rows+=(--row "${labels[$i]}=$e2/full_${1%_acc.json}_acc.json") ;; esac
    else
      rows+=(--row "${labels[$i]}=${dirs[$i]}/$1")
    fi
  done
}
for split in dev train; do
  table_rows "${split}_acc.json"
  asr-kd report table "${rows[@]}" --metric "frame_acc:100=$split frame accuracy (%)" --out-dir "$out" --name "${name}_$split"
done
table_rows summary.json
asr-kd report table "${rows[@]}" --metric "epochs_run=epochs trained" --metric "kept_epoch=epoch kept" \
  --metric "valid_frame_acc:100=validation frame accuracy of the kept epoch (%)" --out-dir "$out" --name "${name}_epochs"
if [ "$recovery" = true ]; then
  asr-kd report recovery --table "$out/${name}_dev.json" --metric "dev frame accuracy (%)" \
    --low "${labels[1]}" --high "${labels[0]}" --rows "${labels[@]:2}" --out "$out/${name}_recovery.md"
fi
first=${seed_list[0]}
asr-kd report curves --log "${labels[2]}=$e2/soft/seed$first/log.csv" \
  --log "${labels[3]}=$study/soft_patient/seed$first/log.csv" --log "${labels[4]}=$study/hard_aug/seed$first/log.csv" \
  --log "${labels[6]}=$study/soft_aug_online/seed$first/log.csv" \
  --out "$out/${name}_learning_curves.png" --title "E2 at $percent: patient and consistent teaching, seed $first"
for table in "${name}_dev" "${name}_epochs" "${name}_recovery"; do [ ! -f "$out/$table.md" ] || cat "$out/$table.md"; done
