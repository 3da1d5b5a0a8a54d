#!/usr/bin/env bash
# Stage 7 of run.sh: E1 tables (JSON + markdown), bar charts and figures from the runs' own outputs:
# dev frame accuracy (all frames and non-silence), WER (weights tuned on the validation split, and
# untuned / best on dev in e1_wer), the teacher mass each store keeps, how many
# epochs each model trained (members vs students: students usually need longer) and the fraction
# of the ensemble's gain the students recover (mean ± std over seeds); e1_valid (validation frame
# accuracy, parameters, epochs of the members and students) and e1_significance (paired bootstrap
# of the tuned WER: ensemble and students against the members, students against the ensemble).
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
# E1: each row = one JSON per seed (frame accuracy, WER, training summary); common.sh: e1_rows.
e1_rows baseline "$e1/eval/baseline_member*" "$e1/ensemble/member*"
e1_rows ensemble "$e1/eval/ensemble" ""
students=()
curves=(--log "member0=$e1/ensemble/member0/log.csv")
tuned=decode/nbest.tuned.wer.json
members_wer="members=$e1/eval/baseline_member*/$tuned"
ensemble_wer="ensemble=$e1/eval/ensemble/$tuned"
valid_table=(--row "baseline=$e1/ensemble/member*/summary.json")
significance=(--compare "$members_wer" "$ensemble_wer")
for T in $temperatures; do
  e1_rows "student T$T" "$e1/eval/student_T${T}_seed*" "$e1/student_T$T/seed*"
  # the share of the teacher's probability mass its store keeps, next to each student row
  asr-kd distill inspect --store "$e1/teacher_T$T" > "$e1/teacher_T$T/inspect.json"
  e1_table+=(--row "student T$T=$e1/teacher_T$T/inspect.json")
  students+=("student T$T")
  curves+=(--log "student T$T seed 0=$e1/student_T$T/seed0/log.csv")
  valid_table+=(--row "student T$T=$e1/student_T$T/seed*/summary.json")
  students_wer="students T$T=$e1/eval/student_T${T}_seed*/$tuned"
  significance+=(--compare "$members_wer" "$students_wer" --compare "$ensemble_wer" "$students_wer")
done
asr-kd report table "${e1_table[@]}" "${e1_metrics[@]}" --metric "mean_kept_mass:100=teacher mass in the store (%)" \
  --out-dir "$out" --name e1
asr-kd report table "${e1_wer_table[@]}" "${e1_wer_metrics[@]}" --out-dir "$out" --name e1_wer
asr-kd report table "${valid_table[@]}" --metric "valid_frame_acc:100=validation frame accuracy (%)" \
  --metric "parameters:1e-6=parameters (M)" --metric "epochs_run=epochs trained" --out-dir "$out" --name e1_valid
asr-kd report significance "${significance[@]}" --out "$out/e1_significance.md"
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
