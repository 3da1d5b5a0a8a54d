#!/usr/bin/env bash
# E4 compression (issue 17): students smaller than the ensemble's members, distilled from the E1
# teacher store, against the same small nets trained on hard labels.
#   1 train     per --hidden-dims H and --seeds: a hard-label DNN (the members' recipe: newbob on the
#               held-out split) and, per --teachings, a student at --temperature with --alpha, all the
#               members' conf with model.overrides.hidden_dim=H (same inputs and depth, narrower layers:
#               hidden 120 is 4.1x fewer parameters than 384). Teachings:
#                 store       the E1 teacher store, newbob to convergence (run.sh's student recipe)
#                 consistent  the same ensemble run on every batch of the student's own SpecAugment-masked
#                             inputs (--consistent-augment), a cosine schedule over --consistent-epochs, the
#                             last epoch kept: run.sh's E2 consistent teaching (Beyer et al. 2022, "a good
#                             teacher is patient and consistent", whose use is compression)
#   2 evaluate  dev frame accuracy and WER of each (common.sh: evaluate_system, weights tuned on the
#               validation split), with the decoding real-time factor of the search; --wer false: the
#               frame accuracy only (common.sh: system_posteriors; minutes instead of ~10 min per model),
#               also of the members and the ensemble where run.sh's stage 6 has not evaluated them
#   3 table     <out>/<name>.{md,json} (with run.sh's full-size members, ensemble and students as
#               reference rows), <name>_recovery.md (share of the full-size ensemble's gain over the
#               full-size members that each small model keeps), <name>_{frame_acc,wer}_vs_size.png
# Needs run.sh stages 0-6 (or e1_subset_students.sh for --ensemble-name): the E1 store, the
# members' and students' evaluation; --teachings consistent --wer false needs only stages 0-2 and 4.
# Writes <exp>/e4/h<H>/{hard,student_T<T>,consistent_T<T>}/seed<s>, <exp>/e4/eval/.
#
# Usage: bash recipes/mini_librispeech/local/e4_compression.sh [--exp DIR] [--hidden-dims "120"]
#            [--seeds "0 1 2"] [--ensemble-name ""] [--temperature 2] [--alpha 0.666667] [--jobs 2]
#            [--teachings "store"] [--consistent-epochs 40] [--consistent-augment "augment.KEY=V ..."]
#            [--wer true] [--out DIR] [--name e4_compression] [--stage N --stop-stage M]
#   --ensemble-name m01: the teacher and reference rows of e1_subset_students.sh --name m01
#   (<exp>/e1/m01/teacher_T<T>, e1/eval/ensemble_m01, e1/eval/student_m01_T<T>_seed*) instead of
#   run.sh's (<exp>/e1/teacher_T<T>, e1/eval/ensemble, e1/eval/student_T<T>_seed*).
set -euo pipefail
cd "$(dirname "$0")/../../.."

exp=exp/mini_librispeech
hidden_dims="120"           # 3 x 120 ReLU: 227k parameters at 1000 senones, 4.1x fewer than the members' 3 x 384
seeds="0 1 2"
ensemble_name=""            # "" = run.sh's E1 ensemble; NAME = e1_subset_students.sh --name NAME
temperature=2
alpha=0.666667
teachings=store             # how the small students are taught: store and/or consistent (header)
consistent_epochs=40        # consistent: the cosine schedule's length (E2's 100 at 3% of the data; 40 epochs of
                            # all of it are ~14x as many frames)
consistent_augment="augment.freq_masks=2 augment.freq_width=8 augment.time_masks=1 augment.time_width=4"  # run.sh's --e2-augment
jobs=2
model_conf=recipes/mini_librispeech/conf/dnn_mini.yaml
out=recipes/mini_librispeech/results
name=e4_compression
recovery=true               # false: no recovery fractions (tiny data)
wer=true                    # false: nothing is decoded (stage 2: frame accuracy only; stage 3: no WER columns)
stage=1
stop_stage=3
. recipes/mini_librispeech/local/common.sh
evaluation_options
parse_options "$@"
require_configs "$model_conf"
case "$wer" in true|false) ;; *) die "--wer $wer: true or false" ;; esac
evaluate_small=evaluate_system
[ "$wer" = true ] || evaluate_small=system_posteriors
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
e1=$exp/e1
e4=$exp/e4
log_dir=$e4/log
data=(data.exp="$exp" data.train_subset="$train")
if [ -n "$ensemble_name" ]; then
  store=$e1/$ensemble_name/teacher_T$temperature ensemble_eval=$e1/eval/ensemble_$ensemble_name
  ensemble=$e1/ensemble/ensemble_$ensemble_name.json
  students_eval="$e1/eval/student_${ensemble_name}_T${temperature}_seed*" students="$e1/$ensemble_name/student_T$temperature/seed*"
else
  store=$e1/teacher_T$temperature ensemble_eval=$e1/eval/ensemble
  students_eval="$e1/eval/student_T${temperature}_seed*" students="$e1/student_T$temperature/seed*"
  ensemble=$e1/ensemble/ensemble.json
fi
declare -A teaching_label=([store]="student T$temperature" [consistent]="student T$temperature, consistent")
for teaching in $teachings; do
  [ -n "${teaching_label[$teaching]:-}" ] || die "unknown --teachings $teaching (store or consistent)"
done
teaches() { [[ " $teachings " == *" $1 "* ]]; }
! in_stages 1 || ! teaches store || [ -d "$store" ] || die "$store is missing: run run.sh stage 5 (or e1_subset_students.sh)"
! in_stages 1 || ! teaches consistent || [ -f "$ensemble" ] ||
  die "$ensemble is missing: run run.sh stage 4 (or e1_subset_students.sh)"
check_settings "$e4/settings.txt" "store=$store" "model_conf=$model_conf $(sha256sum < "$model_conf" | cut -c1-16)" \
  "alpha=$alpha"
! teaches consistent ||
  check_settings "$e4/consistent/settings.txt" "teacher=$ensemble" "epochs=$consistent_epochs cosine" "$consistent_augment"
mkdir -p "$out"

student_dir() {  # teaching -> the training directory's name under <exp>/e4/h<H>/
  case "$1" in store) echo "student_T$temperature" ;; consistent) echo "consistent_T$temperature" ;; esac
}
train_student() {  # teaching, hidden dim, seed
  local dir=$e4/h$2/$(student_dir "$1")/seed$3 common=("${data[@]}" model.overrides.hidden_dim="$2" train.seed="$3")
  if [ "$1" = store ]; then
    train_model "$dir" asr-kd distill train --config "$model_conf" --store "$store" --temperature "$temperature" \
      --alpha "$alpha" "${common[@]}"
  else
    # validated every 5th epoch: no decision reads it (the last epoch is kept), the curve needs only a few points
    # shellcheck disable=SC2086  # $consistent_augment: a word list
    train_model "$dir" asr-kd distill train --config "$model_conf" --online-teacher "$ensemble" \
      --temperature "$temperature" --alpha "$alpha" "${common[@]}" optim.schedule=cosine \
      train.epochs="$consistent_epochs" train.patience=0 train.keep=last train.valid_every=5 $consistent_augment
  fi
}

for hidden in $hidden_dims; do
  for seed in $seeds; do
    hard=$e4/h$hidden/hard/seed$seed
    job "h${hidden}_hard_seed$seed" 1 "" train_model "$hard" asr-kd train --config "$model_conf" "${data[@]}" \
      model.overrides.hidden_dim="$hidden" train.seed="$seed"
    job "eval_h${hidden}_hard_seed$seed" 2 "h${hidden}_hard_seed$seed" "$evaluate_small" \
      "$e4/eval/h${hidden}_hard_seed$seed" "$hard/model.pt"
    for teaching in $teachings; do
      kind=$(student_dir "$teaching")
      job "h${hidden}_${kind}_seed$seed" 1 "" train_student "$teaching" "$hidden" "$seed"
      job "eval_h${hidden}_${kind}_seed$seed" 2 "h${hidden}_${kind}_seed$seed" "$evaluate_small" \
        "$e4/eval/h${hidden}_${kind}_seed$seed" "$e4/h$hidden/$kind/seed$seed/model.pt"
    done
  done
done
if [ "$wer" = false ]; then  # the reference rows' frame accuracy, where run.sh's stage 6 has not given it
  for model in "$e1"/ensemble/member*/model.pt; do
    [ -f "$model" ] || continue
    member=$(basename "$(dirname "$model")")
    newer_than "$e1/eval/baseline_$member/frame_acc.json" "$model" ||
      job "eval_baseline_$member" 2 "" system_posteriors "$e1/eval/baseline_$member" "$model"
  done
  newer_than "$ensemble_eval/frame_acc.json" "$ensemble" || job eval_ensemble 2 "" system_posteriors "$ensemble_eval" "$ensemble"
fi
run_jobs
stage_times "1=train" "2=evaluate"

in_stages 3 || exit 0
e1_rows_with_rtf() {  # e1_rows plus the search's decode.json (its CPU real-time factor)
  e1_rows "$@"
  e1_table+=(--row "$1=$2/decode/decode.json")
}
system_rows() {  # label, eval dir glob, training dir glob or "": e1_rows_with_rtf; --wer false: frame accuracy + summary
  if [ "$wer" = true ]; then
    e1_rows_with_rtf "$@"
  else
    e1_table+=(--row "$1=$2/frame_acc.json")
    [ -z "$3" ] || e1_table+=(--row "$1=$3/summary.json")
  fi
}
hard_series=(--series "hard labels=baseline") soft_series=() small_rows=() consistent_series=()
system_rows baseline "$e1/eval/baseline_member*" "$e1/ensemble/member*"
system_rows ensemble "$ensemble_eval" ""
# the full-size students' row when they exist (consistent teaching alone needs no E1 students)
if compgen -G "$students_eval/frame_acc.json" > /dev/null; then
  system_rows "student T$temperature" "$students_eval" "$students"
  soft_series+=(--series "distilled (T$temperature)=student T$temperature") small_rows+=("student T$temperature")
fi
for hidden in $hidden_dims; do
  system_rows "hard, hidden $hidden" "$e4/eval/h${hidden}_hard_seed*" "$e4/h$hidden/hard/seed*"
  hard_series+=(--series "hard labels=hard, hidden $hidden")
  small_rows+=("hard, hidden $hidden")
  for teaching in $teachings; do
    kind=$(student_dir "$teaching") row="${teaching_label[$teaching]}, hidden $hidden"
    system_rows "$row" "$e4/eval/h${hidden}_${kind}_seed*" "$e4/h$hidden/$kind/seed*"
    small_rows+=("$row")
    if [ "$teaching" = store ]; then
      soft_series+=(--series "distilled (T$temperature)=$row")
    else
      consistent_series+=(--series "consistent (T$temperature)=$row")
    fi
  done
done
metrics=()
for ((i = 0; i < ${#e1_metrics[@]}; i += 2)); do  # (--metric, spec) pairs; --wer false: no WER or scoring column
  spec=${e1_metrics[i + 1]}
  [ "$wer" = true ] || [[ $spec != summary.wer* && $spec != scoring.* ]] || continue
  metrics+=(--metric "$spec")
done
metrics+=(--metric "parameters:1e-6=parameters (M)" --metric "valid_frame_acc:100=validation frame accuracy (%)")
[ "$wer" = false ] || metrics+=(--metric "cpu_rtf=decoding CPU RTF")
asr-kd report table "${e1_table[@]}" "${metrics[@]}" --out-dir "$out" --name "$name"
if [ "$recovery" = true ]; then
  asr-kd report recovery --table "$out/$name.json" --metric "dev frame accuracy (%)" --low baseline --high ensemble \
    --rows "${small_rows[@]}" --out "$out/${name}_recovery.md"
  cat "$out/${name}_recovery.md"
fi
plots=("dev frame accuracy (%)=frame_acc")
[ "$wer" = false ] || plots+=("dev WER, weights tuned on validation (%)=wer")
for metric in "${plots[@]}"; do
  asr-kd report tradeoff --table "$out/$name.json" --x "parameters (M)" --y "${metric%=*}" \
    "${hard_series[@]}" "${soft_series[@]}" "${consistent_series[@]}" --reference ensemble \
    --out "$out/${name}_${metric#*=}_vs_size.png"
done
cat "$out/$name.md"
