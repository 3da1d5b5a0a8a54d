#!/usr/bin/env bash
# E3 specialists (the paper's section 5, for senones) and, beyond the paper, distilled back:
#   1 clusters    --num-clusters clusters of --cluster-size confusable senones from the covariance of
#                 the generalist's predictions on the training utterances outside the validation split
#   2 specialists one per cluster (a job each): initialised from the generalist, trained by the
#                 standard trainer on the cluster's frames mixed 1:1 with random others, other
#                 senones in a dustbin, validated on the held-out split, dustbin logit + log r
#   3 evaluate    dev frame accuracy of the generalist and of generalist + specialists (the paper's
#                 tables 3 and 4: by how many specialists cover the true senone); the log-posteriors of
#                 dev and of the validation split (and the validation split's tables)
#   4 decode      WER of both (run.sh's graph and search; LMWT x WIP x prior scale tuned on the
#                 validation split: common.sh decode_and_score)
#   5 distil      dense teacher stores at --temperature on the training utterances, of the combination
#                 and (the control) of the generalist alone; students of --seeds of each (run.sh's
#                 student recipe: --alpha, held-out validation), so that what the specialists add is
#                 told apart from what distilling the generalist alone gives
#   6 students    dev frame accuracy and WER of the students (common.sh evaluate_system, tuned as in 4)
#   7 table       <out>/e3_specialists.{md,json} (WER tuned on the validation split), <out>/e3_specialists_wer.md
#                 (WER at the search's weights, tuned, best on dev), the share of the specialists' gain over
#                 the generalist each student row reaches, the students' paired bootstrap and the coverage
#                 table <out>/e3_coverage.md
# Needs run.sh stages 0-4 (features, alignments, validation split, graph, the E1 members); the
# generalist is --generalist (default E1 member 0). Writes <exp>/<name>/{specialists,eval,teacher_T*,students}
# (--name, default e3), and with --specialist-valid speakers <exp>/<name>/valid_speakers/.
#
# Usage: bash recipes/mini_librispeech/local/e3_specialists.sh [--exp DIR] [--generalist MODEL]
#            [--num-clusters 20] [--cluster-size 50] [--specialist-lr 0.0003] [--top-n 1] [--method em]
#            [--temperature 2] [--alpha 0.666667] [--seeds "0 1 2"] [--jobs 2] [--out DIR]
#            [--specialist-valid split|speakers] [--valid-speakers-fraction 0.15] [--name e3]
#            [--stage N --stop-stage M]
set -euo pipefail
cd "$(dirname "$0")/../../.."

exp=exp/mini_librispeech
generalist=""               # default: <exp>/e1/ensemble/member0/model.pt
num_clusters=20             # specialists
cluster_size=50             # senones per specialist (20 x 50 of 1000: each senone covered ~once on average)
column_norm=l2              # covariance columns of unit length (l2) or raw as the paper (none: see clusters.py)
specialist_lr=0.0003        # specialists start from the generalist: a fine-tuning learning rate
other_ratio=1               # random other frames per cluster frame (the paper's 1:1)
specialist_valid=split      # what the specialists' newbob and kept epoch read: split = the experiment's validation
                            # split (utterances of the training speakers); speakers = whole training speakers held out
                            # of the specialists' training (a nested `asr-kd valid-split --stratify held-out-speakers`
                            # of the split's train.txt; the generalist did train on them)
valid_speakers_fraction=0.15  # speakers: hold out whole speakers until at least this share of train.txt (here 2 of 13: 24%)
name=e3                     # the folder under --exp (another --specialist-valid needs another one)
top_n=1                     # generalist senones that select the active specialists (the paper's n)
method=em                   # how q is found (asr-kd specialists evaluate --help): em | lbfgs
temperature=2
alpha=0.666667
seeds="0 1 2"
jobs=2
conf=recipes/mini_librispeech/conf
model_conf=$conf/dnn_mini.yaml
out=recipes/mini_librispeech/results
recovery=true               # false: no recovery fraction (tiny data)
stage=1
stop_stage=7
. recipes/mini_librispeech/local/common.sh
evaluation_options
parse_options "$@"
require_configs "$model_conf"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
generalist=${generalist:-$exp/e1/ensemble/member0/model.pt}
case "$specialist_valid" in split|speakers) ;; *) die "unknown --specialist-valid $specialist_valid (split or speakers)" ;; esac
e3=$exp/$name
dir=$e3/specialists
log_dir=$e3/log
split=$exp/splits/$train
data=(data.exp="$exp" data.train_subset="$train")
combination=(--dir "$dir" --top-n "$top_n" --method "$method" --exp "$exp" --device "$device" --threads 1)
[ -f "$generalist" ] || die "$generalist is missing: train it (run.sh stage 4) or pass --generalist"
[ -f "$split/train.txt" ] || die "$split/train.txt is missing: run recipes/mini_librispeech/run.sh --stop-stage 2 first"
check_settings "$e3/settings.txt" "generalist=$generalist" "num_clusters=$num_clusters" "cluster_size=$cluster_size" \
  "column_norm=$column_norm" "specialist_lr=$specialist_lr" "other_ratio=$other_ratio" \
  "specialist_valid=$specialist_valid$([ "$specialist_valid" = split ] || echo " $valid_speakers_fraction")"
specialist_data=("${data[@]}")
[ "$specialist_valid" = split ] ||
  specialist_data+=(data.train_utts="$e3/valid_speakers/train.txt" data.valid_utts="$e3/valid_speakers/valid.txt")
mkdir -p "$out"

cluster() {
  [ -f "$dir/clusters.json" ] && { echo "reusing $dir/clusters.json"; return 0; }
  asr-kd specialists cluster --generalist "$generalist" --exp "$exp" --subset "$train" --utts "$split/train.txt" \
    --dir "$dir" --num-clusters "$num_clusters" --cluster-size "$cluster_size" --column-norm "$column_norm" \
    --device "$device" --threads 1
}
combine_once() {  # JSON out, log-posteriors out, --subset ... : the coverage tables and the combined
  # log-posteriors of one set, in one pass
  local out=$1 logpost=$2
  shift 2
  [ -f "$out" ] && { echo "reusing $out"; return 0; }
  rm -rf "$logpost"  # written in the same pass as the counts: never half of an earlier run
  asr-kd specialists evaluate "${combination[@]}" "$@" --posteriors-out "$logpost" --out "$out"
}
evaluate_specialists() {  # dev (frame_acc.json, logpost/) and the validation split (valid_*), for decode_and_score
  local eval_dir=$e3/eval/specialists
  mkdir -p "$eval_dir"
  combine_once "$eval_dir/frame_acc.json" "$eval_dir/logpost" --subset "$dev"
  combine_once "$eval_dir/valid_frame_acc.json" "$eval_dir/valid_logpost" --subset "$train" --utts "$split/valid.txt"
}

job clusters 1 "" cluster
[ "$specialist_valid" = split ] || job valid_speakers 2 "" asr-kd valid-split --exp "$exp" --subset "$train" \
  --utts "$split/train.txt" --stratify held-out-speakers --fraction "$valid_speakers_fraction" --out "$e3/valid_speakers"
specialists=""
for ((m = 0; m < num_clusters; m++)); do
  job "specialist$m" 2 "clusters valid_speakers" asr-kd specialists train --dir "$dir" --only "$m" \
    --other-ratio "$other_ratio" --config "$model_conf" "${specialist_data[@]}" optim.lr="$specialist_lr" \
    train.progress=false
  specialists+=" specialist$m"
done
job eval_generalist 3 "" system_posteriors "$e3/eval/generalist" "$generalist"
job eval_specialists 3 "$specialists" evaluate_specialists
for system in generalist specialists; do
  job "decode_$system" 4 "eval_$system" decode_and_score "$e3/eval/$system" "" --tree-dir "$exp/tree"
done
job teacher 5 "$specialists" asr-kd specialists dump "${combination[@]}" --subset "$train" --utts "$split/train.txt" \
  --temperature "$temperature" --top-k dense --out "$e3/teacher_T$temperature"
job generalist_teacher 5 "" asr-kd distill dump-teacher --teacher "$generalist" --exp "$exp" --subset "$train" \
  --utts "$split/train.txt" --temperature "$temperature" --top-k dense --device "$device" \
  --out "$e3/generalist_teacher_T$temperature"
for seed in $seeds; do
  # students of the combination (students/) and of the generalist alone (generalist_students/)
  for kind in "" generalist_; do
    job "${kind}student_seed$seed" 5 "${kind}teacher" train_model "$e3/${kind}students/seed$seed" asr-kd distill \
      train --config "$model_conf" --store "$e3/${kind}teacher_T$temperature" --temperature "$temperature" \
      --alpha "$alpha" "${data[@]}" train.seed="$seed"
    job "eval_${kind}student_seed$seed" 6 "${kind}student_seed$seed" evaluate_system \
      "$e3/eval/${kind}student_seed$seed" "$e3/${kind}students/seed$seed/model.pt"
  done
done
run_jobs
stage_times "1=clusters" "2=specialists" "3=evaluate" "4=decode" "5=distil" "6=students"

in_stages 7 || exit 0
combined="generalist + $num_clusters specialists"
combined_student="student of generalist + specialists T$temperature"
control_student="student of the generalist alone T$temperature"
e1_rows generalist "$e3/eval/generalist" ""
e1_rows "$combined" "$e3/eval/specialists" ""
e1_rows "$combined_student" "$e3/eval/student_seed*" "$e3/students/seed*"
e1_rows "$control_student" "$e3/eval/generalist_student_seed*" "$e3/generalist_students/seed*"
asr-kd report table "${e1_table[@]}" "${e1_metrics[@]}" --out-dir "$out" --name e3_specialists
asr-kd report table "${e1_wer_table[@]}" "${e1_wer_metrics[@]}" --out-dir "$out" --name e3_specialists_wer
if [ "$recovery" = true ]; then
  asr-kd report recovery --table "$out/e3_specialists.json" --metric "dev frame accuracy (%)" --low generalist \
    --high "$combined" --rows "$combined_student" "$control_student" --out "$out/e3_specialists_recovery.md"
fi
tuned=decode/nbest.tuned.wer.json
asr-kd report significance \
  --compare "generalist=$e3/eval/generalist/$tuned" "$combined=$e3/eval/specialists/$tuned" \
  --compare "student of the generalist alone=$e3/eval/generalist_student_seed*/$tuned" \
  "student of generalist + specialists=$e3/eval/student_seed*/$tuned" \
  --out "$out/e3_students_significance.md"
cp "$e3/eval/specialists/frame_acc.md" "$out/e3_coverage.md"
cat "$out/e3_specialists.md" "$out/e3_coverage.md"
