#!/usr/bin/env bash
# Stage 7 of run.sh: E1 tables (JSON + markdown), bar charts and figures from the runs' own outputs.
# Usage: bash recipes/mini_librispeech/local/e1_results.sh --exp DIR --out DIR [--temperatures "2"]
set -euo pipefail
exp=exp/mini_librispeech
out=recipes/mini_librispeech/results
temperatures="2"
while [ $# -gt 0 ]; do
  case "$1" in
    --exp) exp=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --temperatures) temperatures=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done
e1=$exp/e1
mkdir -p "$out"
acc='frame_acc:100=dev frame accuracy (%)'
nonsil='nonsilence.frame_acc:100=dev non-silence frame accuracy (%)'
wer='summary.wer:100=dev WER (%)'

# E1: each row = one JSON per seed (frame accuracy) + one per seed (WER).
rows=(--row "baseline=$e1/eval/baseline_member*/frame_acc.json" --row "baseline=$e1/eval/baseline_member*/decode/hyp.wer.json"
      --row "ensemble=$e1/eval/ensemble/frame_acc.json" --row "ensemble=$e1/eval/ensemble/decode/hyp.wer.json")
students=()
for T in $temperatures; do
  # the share of the teacher's probability mass its top-k store keeps, next to each student row
  asr-kd distill inspect --store "$e1/teacher_T$T" > "$e1/teacher_T$T/inspect.json"
  rows+=(--row "student T$T=$e1/eval/student_T${T}_seed*/frame_acc.json"
         --row "student T$T=$e1/eval/student_T${T}_seed*/decode/hyp.wer.json"
         --row "student T$T=$e1/teacher_T$T/inspect.json")
  students+=("student T$T")
done
asr-kd report table "${rows[@]}" --metric "$acc" --metric "$nonsil" --metric "$wer" \
  --metric "mean_kept_mass:100=teacher mass in the store (%)" --out-dir "$out" --name e1
asr-kd report recovery --table "$out/e1.json" --metric "dev frame accuracy (%)" --low baseline --high ensemble \
  --rows "${students[@]}" --out "$out/e1_recovery.md"

# Figures: learning curves, posterior entropy vs temperature, one utterance through the models.
T=${temperatures%% *}
asr-kd report curves --log "member0=$e1/ensemble/member0/log.csv" --log "student T$T=$e1/student_T$T/seed0/log.csv" \
  --out "$out/e1_learning_curves.png" --title "E1: learning curves"
asr-kd report entropy --exp "$exp" --subset dev-clean-2 --model "ensemble=$e1/ensemble/ensemble.json" \
  --model "student T$T=$e1/student_T$T/seed0/model.pt" --out "$out/entropy_vs_temperature.png"
asr-kd report utterance --exp "$exp" --subset dev-clean-2 --model "teacher=$e1/ensemble/ensemble.json" \
  --model "student=$e1/student_T$T/seed0/model.pt" --out "$out/utterance.png"
echo "e1_results: tables and figures in $out"
