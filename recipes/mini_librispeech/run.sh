#!/usr/bin/env bash
# Mini LibriSpeech recipe: the paper's two experiments on CPU (Hinton, Vinyals & Dean 2015),
# under the paper's protocol.
#   E1: baseline DNNs trained to convergence, an ensemble of N of them, students distilled from
#       the ensemble at temperature T (loss weights of the paper) until they converge too.
#   E2: 3% of the training utterances: hard targets (with / without early stopping) vs soft
#       targets from a model trained on 100% of the data, under the paper's schedule and with
#       consistent teaching (that model run on the student's own augmented inputs, a longer schedule).
# Protocol: every per-epoch decision (newbob LR halving, early stopping, the epoch kept) reads a
# validation set held out of the TRAINING data (10% of each speaker's utterances, written once
# in stage 0 to <exp>/splits/<train>/ and shared by every model of the experiment); it is kept
# out of training, the teacher stores and the LM text. Dev is only scored, in stages 6 and 8.
# The data is a speaker subset of Mini LibriSpeech (../shared/data: 2.7 h train-clean-5,
# 55 min dev-clean-2): results are not comparable with published Mini LibriSpeech numbers.
#
# Usage: bash recipes/mini_librispeech/run.sh [--option value ...]      (--help prints this)
# Stages (--stage N --stop-stage M): 0 manifests + lexicon + validation split, 1 features,
#   2 senone tree + alignment, 3 LM + HCLG, 4 E1 ensemble, 5 E1 teacher store + students,
#   6 E1 frame accuracy + WER, 7 E1 results, 8 E2 training + evaluation, 9 E2 results.
# Options (defaults in the script): --root --exp --results --train --dev --jobs --members
#   --seeds --temperatures --alpha --store-kind --teacher-top-k --model-conf --student-conf --student-overrides
#   --e2-conf --e2-temperature --e2-alpha --e2-soft-epochs --e2-consistent-epochs --e2-augment --fraction
#   --valid-fraction --valid-seed --num-senones --tree-args --lm --lm-prune --beam --max-active
#   --search-scales --device --recovery
# All jobs of the stages run share one pool of --jobs processes (1 thread each) and start as
# soon as what they need exists, so E2 and the decoding of finished models run beside the
# students. Every job is idempotent: finished models/stores are reused, and a killed run
# continues where it stopped (training resumes from its last checkpoint). Job logs:
# <exp>/log/<job>.log; wall time per stage: printed at the end (from <exp>/log/jobs.tsv).
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=100
root=../shared/data/LibriSpeech
exp=exp/mini_librispeech
results=recipes/mini_librispeech/results
jobs=2                      # processes at a time (1 torch thread each): measured fastest on 2 cores
members=3                   # E1 ensemble size (the members are also the baseline seeds)
seeds="0 1 2"               # student / E2 seeds
temperatures="2"            # E1 distillation temperatures (the paper's best; "1 2 5 10" is its sweep. README: T = 1
                            # wins on validation and in WER, T = 2 in dev frame accuracy)
alpha=0.666667              # weight of the soft term: the paper's relative weight 0.5 on the hard term = 1 / (1 + 0.5)
store_kind=dense            # teacher store: dense | topk | topk-tail | a --store-kind of dump-teacher
teacher_top_k=20            # senones per frame of the topk kinds
conf=recipes/mini_librispeech/conf
model_conf=$conf/dnn_mini_256.yaml  # members: 3 x 256 to convergence (README: the default run's stage times); conf/dnn_mini.yaml: 3 x 384
student_conf=""             # default: --model-conf
student_overrides=""        # config overrides of the students only (KEY=VALUE words). Default beside the default
                            # --model-conf (and no --student-conf): model.overrides.hidden_dim=512, 3 x 512 students of
                            # the 3 x 256 members (README: 3 x 256 students recover 44 ± 3% of the ensemble's gain,
                            # 3 x 384 ones 84 ± 3%, 3 x 512 ones 99 ± 3%); otherwise none (students of the members' size)
e2_conf=""                  # default: --model-conf with E2's schedule (constant LR, 20 epochs, early stopping after 3)
e2_temperature=2
e2_alpha=1.0                # E2's soft-target model: soft targets only
e2_soft_epochs=100          # its maximum: it trains to convergence by newbob (it still gained 0.3 points per epoch at 20)
e2_consistent_epochs=100    # E2's consistent-teaching model: the same soft targets computed by the 100% model on the
                            # student's own augmented inputs (--e2-augment), a cosine LR schedule over this many epochs,
                            # the last kept (README: E2 beyond the paper's schedule: 87 ± 1% of the gap, newbob's 68 ± 3%);
                            # 0: not trained
e2_augment="augment.freq_masks=2 augment.freq_width=8 augment.time_masks=1 augment.time_width=4"  # chosen on validation
fraction=0.03               # E2 training fraction (of the utterances outside the validation split)
valid_fraction=0.1          # validation split: this share of every speaker's training utterances
valid_seed=0
num_senones=1000
tree_args=""                # extra `asr-kd tree` options
lm=en-us                    # stage 3: en-us = pocketsphinx's 72k-word trigram; train = 3-gram of the training transcripts
lm_prune=1e-7               # en-us: relative-entropy pruning of the trigram the graph is built from (README: LM)
recovery=true               # false: results without recovery fractions (tiny data: the "gain" is noise)
. recipes/mini_librispeech/local/common.sh
evaluation_options
parse_options "$@"
if [ -z "$student_conf$student_overrides" ] && [ "$model_conf" = "$conf/dnn_mini_256.yaml" ]; then
  student_overrides="model.overrides.hidden_dim=512"
fi
student_conf=${student_conf:-$model_conf}
case "$lm" in train|en-us) ;; *) die "unknown --lm $lm (en-us or train)" ;; esac
require_configs "$model_conf" "$student_conf" ${e2_conf:+"$e2_conf"}
# E2's models share the E1 members' architecture (its 100% model is member 0), as in the paper
e2_config=(--config "${e2_conf:-$model_conf}")
[ -n "$e2_conf" ] || e2_config+=(optim.schedule=constant train.epochs=20 train.patience=3 train.checkpoint_every=0)
log_dir=$exp/log
split=$exp/splits/$train    # valid.txt (held out) + train.txt (the rest), from stage 0
e1=$exp/e1
e2=$exp/e2
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1   # every job is one of --jobs single-threaded processes
data=(data.exp="$exp" data.train_subset="$train")
# shellcheck disable=SC2206  # word lists
member_ids=($(seq 0 $((members - 1)))) seed_list=($seeds) temperature_list=($temperatures)
store_args=$(store_dump_args "$store_kind" "$teacher_top_k")
mkdir -p "$exp"

# The models of an experiment depend on these: continuing it with others would mix two protocols.
check_settings "$exp/settings.txt" "train=$train" "valid_fraction=$valid_fraction valid_seed=$valid_seed" \
  "members=$members" "model_conf=$model_conf $(sha256sum < "$model_conf" | cut -c1-16)" \
  "student_conf=$student_conf $(sha256sum < "$student_conf" | cut -c1-16) $student_overrides" "alpha=$alpha" \
  "store=$store_kind $store_args" "lm=$lm prune=$lm_prune" \
  "e2=${e2_conf:-${e2_config[*]:1}} $(sha256sum < "${e2_conf:-$model_conf}" | cut -c1-16) T=$e2_temperature alpha=$e2_alpha fraction=$fraction" \
  "e2_soft=newbob max $e2_soft_epochs epochs"
# its own file: an experiment made before this system existed continues and gains it
[ "$e2_consistent_epochs" = 0 ] || check_settings "$e2/consistent/settings.txt" "epochs=$e2_consistent_epochs cosine" \
  "augment=$e2_augment" "T=$e2_temperature alpha=$e2_alpha"

# ---- what the jobs run -------------------------------------------------------------------------
prepare_data() {
  asr-kd prepare --root "$root" --subsets "$train" "$dev" --exp "$exp"
  asr-kd valid-split --exp "$exp" --subset "$train" --fraction "$valid_fraction" --seed "$valid_seed"
}

align_all() {
  # shellcheck disable=SC2086  # tree_args is a list of options
  asr-kd tree --exp "$exp" --subset "$train" --num-senones "$num_senones" $tree_args
  local reference ref_args=()
  reference=$(dirname "$root")/alignments/mfa_word_segments.tsv
  [ -f "$reference" ] && ref_args=(--reference "$reference")
  asr-kd align --exp "$exp" --subset "$dev" --report "${ref_args[@]}"
}

first_pass_arpa() {  # the ARPA file the graph is built from
  case "$lm" in
    train) echo "$exp/lm/train.3gram.arpa" ;;
    en-us) echo "$exp/lm/en-us.3gram.pruned$lm_prune.arpa" ;;
  esac
}

language_model() {  # the LM never sees the validation (or dev) transcripts; dev text only scores it
  local arpa lmplz
  arpa=$(first_pass_arpa)
  case "$lm" in
    train)
      lmplz=$(bash tools/install_kenlm.sh | tail -n 1)
      ASR_KD_LMPLZ=$lmplz asr-kd lm --exp "$exp" --subset "$train" --exclude-utts "$split/valid.txt" --order 3 \
        --eval-subset "$dev" --out "$arpa" ;;
    en-us)  # the full trigram is for rescoring, the pruned one for the first-pass graph
      [ -f "$exp/lm/en-us.3gram.json" ] || asr-kd lm --exp "$exp" --source pocketsphinx-en-us --eval-subset "$dev" \
        --out "$exp/lm/en-us.3gram.arpa"
      [ -f "${arpa%.arpa}.json" ] || asr-kd lm --exp "$exp" --source arpa --arpa "$exp/lm/en-us.3gram.arpa" \
        --prune "$lm_prune" --eval-subset "$dev" --out "$arpa" ;;
  esac
}

write_ensemble() {  # the members are finished: train-ensemble --resume only lists them in ensemble.json
  [ -f "$e1/ensemble/ensemble.json" ] && { echo "reusing $e1/ensemble/ensemble.json"; return 0; }
  asr-kd train-ensemble --config "$model_conf" --members "$members" --resume "${data[@]}" out_dir="$e1/ensemble" \
    train.progress=false
}

dump_teacher() {  # teacher, utterance list, temperatures, --out pattern
  # shellcheck disable=SC2086  # temperatures and store_args are word lists
  asr-kd distill dump-teacher --teacher "$1" --exp "$exp" --subset "$train" --utts "$2" --temperature $3 \
    $store_args --device "$device" --out "$4"
}

student() {  # T, seed
  # shellcheck disable=SC2046,SC2086  # store_train_args and student_overrides are word lists
  train_model "$e1/student_T$1/seed$2" asr-kd distill train --config "$student_conf" --store "$e1/teacher_T$1" \
    --temperature "$1" --alpha "$alpha" $(store_train_args "$store_kind") "${data[@]}" train.seed="$2" $student_overrides
}

e2_common() {  # seed -> the `asr-kd train` arguments shared by the three E2 systems
  echo "${e2_config[@]}" "${data[@]}" data.train_fraction="$fraction" data.subset_seed="$1" train.seed="$1"
}
e2_soft() {  # seed: soft targets of the 100% model (E1 member 0) on the seed's 3% utterances, trained until
  # newbob ends it on the held-out split (the members' schedule; the paper's soft model "simply converged"),
  # the last epoch kept
  local store=$e2/teacher_seed$1
  dump_teacher "$e1/ensemble/member0/model.pt" "$e2/hard/seed$1/train_utts.txt" "$e2_temperature" "$store"
  # shellcheck disable=SC2046  # word lists
  train_model "$e2/soft/seed$1" asr-kd distill train --store "$store" --temperature "$e2_temperature" \
    --alpha "$e2_alpha" $(store_train_args "$store_kind") $(e2_common "$1") optim.schedule=newbob \
    train.epochs="$e2_soft_epochs" train.patience=0 train.keep=last
}
e2_consistent() {  # seed: soft targets of the 100% model computed on the student's augmented batches
  # (consistent teaching, Beyer et al. 2022), a cosine schedule over --e2-consistent-epochs, the last epoch kept.
  # Validated every 10th epoch: no decision reads it, and at 3% a validation pass costs as much as an epoch.
  # shellcheck disable=SC2046,SC2086  # word lists
  train_model "$e2/consistent/seed$1" asr-kd distill train --online-teacher "$e1/ensemble/member0/model.pt" \
    --temperature "$e2_temperature" --alpha "$e2_alpha" $(e2_common "$1") optim.schedule=cosine \
    train.epochs="$e2_consistent_epochs" train.patience=0 train.keep=last train.valid_every=10 $e2_augment
}
e2_systems=(hard hard_no_es soft)
[ "$e2_consistent_epochs" = 0 ] || e2_systems+=(consistent)
e2_full_model() {  # the 100% model (E1 member 0): dev frame accuracy, and on its training utterances
  evaluate_once "$e2/full_dev_acc.json" "$e1/ensemble/member0/model.pt" "$dev"
  evaluate_once "$e2/full_train_acc.json" "$e1/ensemble/member0/model.pt" "$train" --utts "$split/train.txt"
}
e2_evaluate() {  # seed: dev frame accuracy, and frame accuracy on the model's own training utterances
  local system run
  for system in "${e2_systems[@]}"; do
    run=$e2/$system/seed$1
    evaluate_once "$run/dev_acc.json" "$run/model.pt" "$dev"
    evaluate_once "$run/train_acc.json" "$run/model.pt" "$train" --utts "$run/train_utts.txt"
  done
  echo "E2 seed $1: ${#e2_systems[@]} systems evaluated"
}

# ---- the jobs of each stage --------------------------------------------------------------------
job prepare 0 "" prepare_data
job features 1 "prepare" asr-kd features --exp "$exp" --subsets "$train" "$dev"
job align 2 "features" align_all
job lm 3 "prepare" language_model                       # beside the features and the tree
job graph 3 "align lm" asr-kd graph --exp "$exp" --arpa "$(first_pass_arpa)" --graph-dir "$exp/graph"

members_done=""
for i in "${member_ids[@]}"; do
  job "member$i" 4 "align" train_model "$e1/ensemble/member$i" asr-kd train --config "$model_conf" "${data[@]}" \
    train.seed="$i"
  members_done+=" member$i"
done
job ensemble 4 "$members_done" write_ensemble

job e1_teacher 5 "ensemble" dump_teacher "$e1/ensemble/ensemble.json" "$split/train.txt" "$temperatures" \
  "$e1/teacher_T{T}"
for T in "${temperature_list[@]}"; do
  for seed in "${seed_list[@]}"; do job "student_T${T}_seed$seed" 5 "e1_teacher" student "$T" "$seed"; done
done

evals=""
for i in "${member_ids[@]}"; do
  job "eval_member$i" 6 "member$i graph" evaluate_system "$e1/eval/baseline_member$i" "$e1/ensemble/member$i/model.pt"
  evals+=" eval_member$i"
done
job eval_ensemble 6 "ensemble graph" evaluate_system "$e1/eval/ensemble" "$e1/ensemble/ensemble.json"
evals+=" eval_ensemble"

# E2 (declared before the students' decoding: it fills the slots the three students leave free).
e2_evals=""
for seed in "${seed_list[@]}"; do
  # shellcheck disable=SC2046  # e2_common is a word list
  job "e2_hard_seed$seed" 8 "align" train_model "$e2/hard/seed$seed" asr-kd train $(e2_common "$seed")
  # shellcheck disable=SC2046
  job "e2_hard_no_es_seed$seed" 8 "align" train_model "$e2/hard_no_es/seed$seed" asr-kd train \
    $(e2_common "$seed") train.patience=0 train.keep=last
  job "e2_soft_seed$seed" 8 "member0 e2_hard_seed$seed" e2_soft "$seed"
  e2_trained="e2_hard_seed$seed e2_hard_no_es_seed$seed e2_soft_seed$seed"
  if [ "$e2_consistent_epochs" != 0 ]; then
    job "e2_consistent_seed$seed" 8 "member0" e2_consistent "$seed"
    e2_trained+=" e2_consistent_seed$seed"
  fi
  job "e2_eval_seed$seed" 8 "$e2_trained" e2_evaluate "$seed"
  e2_evals+=" e2_eval_seed$seed"
done
job e2_full_model 8 "member0" e2_full_model

for T in "${temperature_list[@]}"; do
  for seed in "${seed_list[@]}"; do
    job "eval_student_T${T}_seed$seed" 6 "student_T${T}_seed$seed graph" evaluate_system \
      "$e1/eval/student_T${T}_seed$seed" "$e1/student_T$T/seed$seed/model.pt"
    evals+=" eval_student_T${T}_seed$seed"
  done
done

job e1_results 7 "$evals" bash recipes/mini_librispeech/local/e1_results.sh --exp "$exp" --out "$results" \
  --dev "$dev" --temperatures "$temperatures" --recovery "$recovery"
job e2_results 9 "$e2_evals e2_full_model" bash recipes/mini_librispeech/local/e2_results.sh \
  --exp "$exp" --out "$results" --fraction "$fraction" --recovery "$recovery" \
  --consistent "$([ "$e2_consistent_epochs" = 0 ] && echo false || echo true)"

say "stages $stage-$stop_stage of $exp: ${#job_order[@]} jobs, $jobs at a time"
run_jobs
stage_times 0=prepare+split 1=features 2=tree+alignment 3=LM+HCLG 4=E1-ensemble 5=E1-store+students \
  6=E1-evaluation+decoding 7=E1-results 8=E2 9=E2-results
say "done"
