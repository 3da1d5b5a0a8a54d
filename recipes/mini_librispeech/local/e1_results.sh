#!/usr/bin/env bash
# Stage 7 of run.sh: E1 tables (JSON + markdown), bar charts and figures from the runs' own outputs:
# dev frame accuracy (all frames and non-silence), WER, the teacher mass each store keeps, how many
# epochs each model trained (members vs students: students usually need longer) and the fraction
# of the ensemble's gain the students recover (mean ± std over seeds).
# Usage: bash recipes/mini_librispeech/local/e1_results.sh --exp DIR --out DIR [--dev SUBSET]
#            [--temperatures "2"] [--recovery true|false]
#   --recovery false: no recovery fractions (tiny data: a gain measured on noise means nothing)
set -euo pipefail
exp=exp/mini_librispeech
out=recipes/mini_librispeech/results
dev=dev-clean-2
temperatures="2"
recovery=true
. "$(dirname "$0")/common.sh"
parse_options "$@"
e1=$exp/e1
mkdir -p "$out"
acc='frame_acc:100=dev frame accuracy (%)'
nonsil='nonsilence.frame_acc:100=dev non-silence frame accuracy (%)'
wer='summary.wer:100=dev WER (%)'
epochs='epochs_run=epochs trained'
best='kept_epoch=epoch kept'

# E1: each row = one JSON per seed (frame accuracy), one per seed (WER), one per seed (training summary).
rows=(--row "baseline=$e1/eval/baseline_member*/frame_acc.json" --row "baseline=$e1/eval/baseline_member*/decode/hyp.wer.json"
      --row "baseline=$e1/ensemble/member*/summary.json"
      --row "ensemble=$e1/eval/ensemble/frame_acc.json" --row "ensemble=$e1/eval/ensemble/decode/hyp.wer.json")
students=()
curves=(--log "member0=$e1/ensemble/member0/log.csv")
for T in $temperatures; do
  # the share of the teacher's probability mass its store keeps, next to each student row
  asr-kd distill inspect --store "$e1/teacher_T$T" > "$e1/teacher_T$T/inspect.json"
  rows+=(--row "student T$T=$e1/eval/student_T${T}_seed*/frame_acc.json"
         --row "student T$T=$e1/eval/student_T${T}_seed*/decode/hyp.wer.json"
         --row "student T$T=$e1/student_T$T/seed*/summary.json"
         --row "student T$T=$e1/teacher_T$T/inspect.json")
  students+=("student T$T")
  curves+=(--log "student T$T seed 0=$e1/student_T$T/seed0/log.csv")
done
asr-kd report table "${rows[@]}" --metric "$acc" --metric "$nonsil" --metric "$wer" --metric "$epochs" \
  --metric "$best" --metric "mean_kept_mass:100=teacher mass in the store (%)" --out-dir "$out" --name e1
if [ "$recovery" = true ]; then
  asr-kd report recovery --table "$out/e1.json" --metric "dev frame accuracy (%)" --low baseline --high ensemble \
    --rows "${students[@]}" --out "$out/e1_recovery.md"
fi

# Figures: learning curves (validation = the held-out training utterances), posterior entropy vs
# temperature, one utterance through the models.
T=${temperatures%% *}
asr-kd report curves "${curves[@]}" --out "$out/e1_learning_curves.png" --title "E1: learning curves"
asr-kd report entropy --exp "$exp" --subset "$dev" --model "ensemble=$e1/ensemble/ensemble.json" \
  --model "student T$T=$e1/student_T$T/seed0/model.pt" --out "$out/entropy_vs_temperature.png"
asr-kd report utterance --exp "$exp" --subset "$dev" --model "teacher=$e1/ensemble/ensemble.json" \
  --model "student=$e1/student_T$T/seed0/model.pt" --out "$out/utterance.png"
echo "e1_results: tables and figures in $out"
