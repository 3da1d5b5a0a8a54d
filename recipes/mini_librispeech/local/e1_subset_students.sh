#!/usr/bin/env bash
# E1 students of an ensemble of some of run.sh's members: the ensemble JSON of --member-ids, its
# dense teacher store at --temperature (the training utterances outside the validation split),
# students of --seeds (--alpha, newbob on the held-out split, as run.sh's students), then the dev
# frame accuracy and WER of the students and that ensemble as run.sh's stage 6 does (common.sh:
# evaluate_system; the decoding weights tuned on the validation split), and one table with run.sh's
# baseline members. For an experiment whose full ensemble's students
# cannot be trained in the time at hand (the session of 2026-12-01 ran it with members 0 and 1).
# Needs run.sh stages 0-4 for the named members (and stage 6 for the baseline rows).
#
# Usage: bash recipes/mini_librispeech/local/e1_subset_students.sh [--exp DIR] [--member-ids "0 1"]
#            [--seeds "0 1"] [--temperature 2] [--alpha 0.666667] [--jobs 2] [--out DIR] [--name m01]
#            [--student-tag _alpha1]  (students of another --alpha beside the default ones)
#            [--student-overrides "model.overrides.hidden_dim=512" --student-tag _h512]  (wider students)
#            [--seeds "" --stop-stage 5]  (the ensemble JSON and its store only: e4_compression.sh
#            --ensemble-name NAME's teacher; no students, no table)
# Writes <exp>/e1/<name>/{teacher_T<T>,student_T<T>/seed<s>}, <exp>/e1/eval/{ensemble,student}_<name>*
# and <out>/e1_<name>.{md,json} + <out>/e1_<name>_recovery.md.
set -euo pipefail
cd "$(dirname "$0")/../../.."

exp=exp/mini_librispeech
member_ids="0 1"
seeds="0 1"
temperature=2
alpha=0.666667
jobs=2
out=recipes/mini_librispeech/results
name=m01
student_tag=""               # e.g. _alpha1: students of other settings beside the default ones (dirs and tables get it)
student_overrides=""         # config overrides of the students only (KEY=VALUE words), e.g. model.overrides.hidden_dim=512
model_conf=recipes/mini_librispeech/conf/dnn_mini.yaml
stage=5                     # 5 teacher + students, 6 evaluation; the table is always made
stop_stage=6
. recipes/mini_librispeech/local/common.sh
evaluation_options
parse_options "$@"
require_configs "$model_conf"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
log_dir=$exp/log/$name
dir=$exp/e1/$name
ensemble=$exp/e1/ensemble/ensemble_$name.json
mkdir -p "$dir" "$out"

# shellcheck disable=SC2086  # $member_ids: a word list
job ensemble 5 "" write_ensemble_json "$ensemble" $member_ids
job teacher 5 "ensemble" asr-kd distill dump-teacher --teacher "$ensemble" --exp "$exp" --subset "$train" \
  --utts "$exp/splits/$train/train.txt" --temperature "$temperature" --top-k dense --device cpu \
  --out "$dir/teacher_T$temperature"
job eval_ensemble 6 "ensemble" evaluate_system "$exp/e1/eval/ensemble_$name" "$ensemble"
for seed in $seeds; do
  # shellcheck disable=SC2086  # $student_overrides: a word list
  job "student_seed$seed" 5 "teacher" train_model "$dir/student_T$temperature$student_tag/seed$seed" asr-kd distill train \
    --config "$model_conf" --store "$dir/teacher_T$temperature" --temperature "$temperature" --alpha "$alpha" \
    data.exp="$exp" data.train_subset="$train" train.seed="$seed" $student_overrides
  job "eval_student_seed$seed" 6 "student_seed$seed" evaluate_system "$exp/e1/eval/student_${name}_T${temperature}${student_tag}_seed$seed" \
    "$dir/student_T$temperature$student_tag/seed$seed/model.pt"
done
run_jobs
[ -n "$seeds" ] || exit 0   # no students: the table would have no student row

e1=$exp/e1
e1_rows baseline "$e1/eval/baseline_member*" "$e1/ensemble/member*"
e1_rows "ensemble of members $member_ids" "$e1/eval/ensemble_$name" ""
e1_rows "student T$temperature" "$e1/eval/student_${name}_T${temperature}${student_tag}_seed*" \
  "$dir/student_T$temperature$student_tag/seed*"
table=e1_$name$student_tag
asr-kd report table "${e1_table[@]}" "${e1_metrics[@]}" --out-dir "$out" --name "$table"
asr-kd report table "${e1_wer_table[@]}" "${e1_wer_metrics[@]}" --out-dir "$out" --name "${table}_wer"
asr-kd report recovery --table "$out/$table.json" --metric "dev frame accuracy (%)" --low baseline \
  --high "ensemble of members $member_ids" --rows "student T$temperature" --out "$out/${table}_recovery.md"
cat "$out/$table.md" "$out/${table}_wer.md" "$out/${table}_recovery.md"
