#!/usr/bin/env bash
# E5 cross-architecture distillation (issue 17): a conformer ensemble as the teacher of run.sh's DNN
# student, against the DNN ensemble's students of the same size (run.sh's E1 rows).
#   1 teachers  conformer members of --members (seeds; --teacher-conf, whole-utterance context, the
#               experiment's held-out validation split) and their ensemble JSON (arithmetic mean of
#               the members' probabilities, the paper's combination, as run.sh's)
#   2 students  the conformer ensemble's dense teacher store at --temperature (training utterances
#               outside the validation split), then DNN students of --seeds with run.sh's student
#               recipe (--student-conf + --student-overrides: 3 x 512 by default, --alpha, newbob on
#               the held-out split, the best validation epoch)
#   3 evaluate  dev frame accuracy and WER of the conformer members, their ensemble and the students
#               (common.sh: evaluate_system, decoding weights tuned on the validation split; the
#               search's acoustic scale chosen per system among --search-scales on the validation
#               split: the conformer's flat posteriors want a larger one than run.sh's 0.1)
#   4 tables    <out>/<name>.{md,json} and <name>_wer.md with run.sh's DNN members, DNN ensemble and
#               DNN-ensemble students as reference rows; <name>_recovery.md (the share of the DNN
#               ensemble's gain over the DNN members that each teacher's students get); <name>_significance.md
#               (paired bootstrap of the conformer-taught students' WER against the DNN-taught students,
#               the DNN members and their own teacher); learning
#               curves of a conformer member and a student of each teacher
# The reverse direction, not run by default (a conformer costs ~11x a DNN member's CPU time per epoch
# here, recipe README: E5); --stage 5 --stop-stage 7, after stage 1 with the same --members:
#   5 reverse   conformer students of run.sh's DNN ensemble: its store <exp>/e1/teacher_T<T> (run.sh
#               stage 5), the conformer members' recipe (--teacher-conf + --teacher-overrides), --alpha,
#               seeds --reverse-seeds; the hard-label control is stage 1's conformer members (same
#               config, seeds = --members)
#   6 evaluate  evaluate_system of the conformer members (reused where stage 3 ran) and the reverse students
#   7 tables    <out>/<name>_reverse.{md,json} + _wer.md (DNN members and DNN ensemble of run.sh stage 6,
#               conformer members, conformer students of the DNN ensemble), _recovery.md (the share of
#               the DNN ensemble's gain over the conformer members the students get), _significance.md
# Needs run.sh stages 0-7 on the same --exp (its members, students, graph and evaluations; stages
# 5-7 only its members, store and their evaluations: run.sh stages 0-6 with --seeds "" suffice).
# Writes <exp>/e5/{ensemble/member<i>,ensemble/ensemble.json,teacher_T<T>,student_T<T>/seed<s>,
# reverse_T<T>/seed<s>,eval,log}.
#
# Usage: bash recipes/mini_librispeech/local/e5_cross_arch.sh [--exp DIR] [--members "0 1"]
#            [--seeds "0 1 2"] [--teacher-conf YAML] [--teacher-overrides ""] [--student-conf YAML]
#            [--student-overrides "model.overrides.hidden_dim=512"] [--temperature 2] [--alpha 0.666667]
#            [--jobs 2] [--out DIR] [--name e5_cross_arch] [--search-scales "0.1 0.2"] [--reverse-seeds "0"]
#            [--stage N --stop-stage M]
set -euo pipefail
cd "$(dirname "$0")/../../.."

exp=exp/mini_librispeech
members="0 1"                # conformer seeds: 2 members, ~55 min each (4 epochs of ~820 s, two at a time)
seeds="0 1 2"
temperature=2
alpha=0.666667               # run.sh's: the paper's relative weight 0.5 on the hard term
jobs=2
teacher_conf=recipes/mini_librispeech/conf/conformer_mini.yaml
teacher_overrides=""         # config overrides of the conformer members (KEY=VALUE words), e.g. model.preset=tiny
student_conf=recipes/mini_librispeech/conf/dnn_mini_256.yaml
student_overrides="model.overrides.hidden_dim=512"  # run.sh's default student: the same size as its E1 students
reverse_seeds="0"            # stages 5-7: conformer students of the DNN ensemble (~46 min each, two at a time)
out=recipes/mini_librispeech/results/e5
name=e5_cross_arch
recovery=true                # false: no recovery fractions (tiny data)
stage=1
stop_stage=4
. recipes/mini_librispeech/local/common.sh
evaluation_options
search_scales="0.1 0.2"      # run.sh's 0.1 and the flat conformer-taught posteriors' (README: E5)
parse_options "$@"
require_configs "$teacher_conf" "$student_conf"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
e1=$exp/e1
e5=$exp/e5
log_dir=$e5/log
ensemble=$e5/ensemble/ensemble.json
store=$e5/teacher_T$temperature
dnn_store=$e1/teacher_T$temperature
data=(data.exp="$exp" data.train_subset="$train")
[ -f "$exp/splits/$train/train.txt" ] || die "$exp/splits/$train/train.txt is missing: run run.sh stages 0-7 first"
! in_stages 5 || [ -d "$dnn_store" ] ||
  die "$dnn_store is missing: run run.sh stages 0-5 first (the DNN ensemble's store)"
check_settings "$e5/settings.txt" "members=$members" \
  "teacher_conf=$teacher_conf $(sha256sum < "$teacher_conf" | cut -c1-16) $teacher_overrides" \
  "student_conf=$student_conf $(sha256sum < "$student_conf" | cut -c1-16) $student_overrides" \
  "alpha=$alpha T=$temperature"

members_done=""
for i in $members; do
  # shellcheck disable=SC2086  # $teacher_overrides: a word list
  job "conformer$i" 1 "" train_model "$e5/ensemble/member$i" asr-kd train --config "$teacher_conf" "${data[@]}" \
    train.seed="$i" $teacher_overrides
  members_done+=" conformer$i"
done
# shellcheck disable=SC2086  # $members: a word list
job ensemble 1 "$members_done" write_ensemble_json "$ensemble" $members
job teacher 2 "ensemble" asr-kd distill dump-teacher --teacher "$ensemble" --exp "$exp" --subset "$train" \
  --utts "$exp/splits/$train/train.txt" --temperature "$temperature" --top-k dense --device "$device" --out "$store"
for seed in $seeds; do
  # shellcheck disable=SC2086  # $student_overrides: a word list
  job "student_seed$seed" 2 "teacher" train_model "$e5/student_T$temperature/seed$seed" asr-kd distill train \
    --config "$student_conf" --store "$store" --temperature "$temperature" --alpha "$alpha" "${data[@]}" \
    train.seed="$seed" $student_overrides
done
# the teachers' evaluations fill the slot the third student leaves free
for i in $members; do
  job "eval_conformer$i" 3 "conformer$i" evaluate_system "$e5/eval/conformer$i" "$e5/ensemble/member$i/model.pt"
done
job eval_ensemble 3 "ensemble" evaluate_system "$e5/eval/ensemble" "$ensemble"
for seed in $seeds; do
  job "eval_student_seed$seed" 3 "student_seed$seed" evaluate_system "$e5/eval/student_T${temperature}_seed$seed" \
    "$e5/student_T$temperature/seed$seed/model.pt"
done
for seed in $reverse_seeds; do
  # shellcheck disable=SC2086  # $teacher_overrides: a word list
  job "reverse_seed$seed" 5 "" train_model "$e5/reverse_T$temperature/seed$seed" asr-kd distill train \
    --config "$teacher_conf" --store "$dnn_store" --temperature "$temperature" --alpha "$alpha" "${data[@]}" \
    train.seed="$seed" $teacher_overrides
done
for i in $members; do  # stage 3's evaluations where it ran (evaluate_system reuses what is there)
  job "reverse_eval_conformer$i" 6 "eval_conformer$i" evaluate_system "$e5/eval/conformer$i" \
    "$e5/ensemble/member$i/model.pt"
done
for seed in $reverse_seeds; do
  job "eval_reverse_seed$seed" 6 "reverse_seed$seed" evaluate_system "$e5/eval/reverse_T${temperature}_seed$seed" \
    "$e5/reverse_T$temperature/seed$seed/model.pt"
done
run_jobs
stage_times "1=conformer-teachers" "2=store+students" "3=evaluate" "5=reverse-students" "6=reverse-evaluate"

rows() {  # e1_rows, and the search's acoustic scale from the dev decode
  e1_rows "$@"
  e1_table+=(--row "$1=$2/decode/decode.json")
}
write_tables() {  # name: the table of the rows added since the last call, and its WER-settings twin
  mkdir -p "$out"
  asr-kd report table "${e1_table[@]}" "${e1_metrics[@]}" --metric "valid_frame_acc:100=validation frame accuracy (%)" \
    --metric "parameters:1e-6=parameters (M)" --metric "config.acoustic_scale=search acoustic scale" \
    --out-dir "$out" --name "$1"
  asr-kd report table "${e1_wer_table[@]}" "${e1_wer_metrics[@]}" --out-dir "$out" --name "$1_wer"
  e1_table=() e1_wer_table=()
}
dnn_rows() {  # run.sh's DNN members and their ensemble, the reference rows of both tables
  rows "DNN members" "$dnn_members" "$e1/ensemble/member*"
  rows "DNN ensemble" "$e1/eval/ensemble" ""
}
recovery_of() {  # name, low row, rows...: the share of the gain from the low row to the DNN ensemble
  [ "$recovery" = true ] || return 0
  asr-kd report recovery --table "$out/$1.json" --metric "dev frame accuracy (%)" --low "$2" --high "DNN ensemble" \
    --rows "${@:3}" --out "$out/$1_recovery.md"
}
show_tables() {  # name: print its table, recovery and significance
  local table
  for table in "$1" "$1_recovery" "$1_significance"; do [ ! -f "$out/$table.md" ] || cat "$out/$table.md"; done
}
tuned=decode/nbest.tuned.wer.json  # each system's WER, weights tuned on the validation split
dnn_members=$e1/eval/baseline_member*
dnn_students="student T$temperature of the DNN ensemble"
cf_students="student T$temperature of the conformer ensemble"
reverse_students="conformer student T$temperature of the DNN ensemble"
first_member=${members%% *}

if in_stages 4; then
  dnn_rows
  rows "$dnn_students" "$e1/eval/student_T${temperature}_seed*" "$e1/student_T$temperature/seed*"
  rows "conformer members" "$e5/eval/conformer*" "$e5/ensemble/member*"
  rows "conformer ensemble" "$e5/eval/ensemble" ""
  rows "$cf_students" "$e5/eval/student_T${temperature}_seed*" "$e5/student_T$temperature/seed*"
  write_tables "$name"
  # both students against the one gain of the DNN ensemble over the DNN members (the conformer
  # ensemble's own "gain" over them can be negative: a weaker teacher)
  recovery_of "$name" "DNN members" "$dnn_students" "$cf_students"
  cf_student_wer=$e5/eval/student_T${temperature}_seed*/$tuned
  asr-kd report significance \
    --compare "$dnn_students=$e1/eval/student_T${temperature}_seed*/$tuned" "$cf_students=$cf_student_wer" \
    --compare "DNN members=$dnn_members/$tuned" "$cf_students=$cf_student_wer" \
    --compare "conformer ensemble=$e5/eval/ensemble/$tuned" "$cf_students=$cf_student_wer" \
    --out "$out/${name}_significance.md"
  asr-kd report curves --log "conformer member $first_member=$e5/ensemble/member$first_member/log.csv" \
    --log "DNN member 0=$e1/ensemble/member0/log.csv" \
    --log "$cf_students, seed ${seeds%% *}=$e5/student_T$temperature/seed${seeds%% *}/log.csv" \
    --log "$dnn_students, seed ${seeds%% *}=$e1/student_T$temperature/seed${seeds%% *}/log.csv" \
    --out "$out/${name}_learning_curves.png" --title "E5: learning curves"
  show_tables "$name"
fi

in_stages 7 || exit 0
reverse=${name}_reverse
dnn_rows
rows "conformer members" "$e5/eval/conformer*" "$e5/ensemble/member*"
rows "$reverse_students" "$e5/eval/reverse_T${temperature}_seed*" "$e5/reverse_T$temperature/seed*"
write_tables "$reverse"
recovery_of "$reverse" "conformer members" "$reverse_students"  # what a conformer could get from its teacher
reverse_wer=$e5/eval/reverse_T${temperature}_seed*/$tuned
asr-kd report significance --compare "conformer members=$e5/eval/conformer*/$tuned" "$reverse_students=$reverse_wer" \
  --compare "DNN members=$dnn_members/$tuned" "$reverse_students=$reverse_wer" --out "$out/${reverse}_significance.md"
asr-kd report curves --log "conformer member $first_member (hard labels)=$e5/ensemble/member$first_member/log.csv" \
  --log "$reverse_students, seed ${reverse_seeds%% *}=$e5/reverse_T$temperature/seed${reverse_seeds%% *}/log.csv" \
  --out "$out/${reverse}_learning_curves.png" --title "E5 reversed: learning curves"
show_tables "$reverse"
