#!/usr/bin/env bash
# E1 study: which part of the protocol buys what. Students distilled from an ensemble, one row per
# setting, each with its own baseline members and ensemble, dev frame accuracy (mean ± std over
# --seeds) and the fraction of its ensemble's gain each student row recovers.
# Parts (--parts, any subset; every job is idempotent, so parts can run one at a time):
#   protocol  from the old recipe to the corrected one, one factor at a time (T = 2):
#             old recipe (validation on a quarter of dev, 4 epochs, alpha 1, top-20 store)
#             -> validation held out of training -> converged members -> converged students
#             -> alpha 2/3 -> dense targets (= run.sh's default)
#   alpha     alpha 1 vs 2/3 (converged, dense targets, T = 2)
#   store     store kinds at T = 2 (converged, alpha 2/3): --store-kinds, e.g. top-5 / top-20
#             renormalised, top-20 with the tail spread, dense, a faithful --store-kind
#   tsweep    T in --temperatures with the --faithful-kind store (converged, alpha 2/3)
# Needs run.sh stages 0-2 (features, alignments, the validation split) in --exp; the converged
# ensemble is run.sh's own (<exp>/e1/ensemble, trained here if missing). Writes
# <exp>/study/{ens_*/, students/*/seed*/, splits/dev-quarter/} and <out>/e1_study.{md,json,png}
# + <out>/e1_study_recovery.md. Dev is only scored (frame accuracy; no decoding).
# Cost on the 2-core machine (CPU, --jobs 2, 3 seeds), measured parts in the recipe README:
#   protocol ~3.5 h, alpha ~1 h, store ~1 h per extra kind, tsweep ~3 h (3 temperatures besides T = 2).
#
# Usage: bash recipes/mini_librispeech/local/e1_study.sh [--exp DIR] [--parts "protocol alpha store tsweep"]
#            [--seeds "0 1 2"] [--jobs J] [--members N] [--temperatures "1 2 5 10"]
#            [--store-kinds "topk:5 topk:20 topk-tail:20 dense"] [--faithful-kind dense]
#            [--model-conf YAML] [--student-conf YAML] [--out DIR] [--train SUBSET] [--dev SUBSET]
#            [--device cpu|cuda] [--recovery true|false] [--stage N --stop-stage M]
#            (stages: 4 train + dump, 6 evaluate, 7 table)
set -euo pipefail
cd "$(dirname "$0")/../../.."

exp=exp/mini_librispeech
parts="protocol alpha store tsweep"
seeds="0 1 2"
jobs=2
members=4
temperatures="1 2 5 10"
store_kinds="topk:5 topk:20 topk-tail:20 dense"
faithful_kind=dense         # the store of the T sweep: dense (exact, one store per T) or lowrank (one store, 5% of dense)
conf=recipes/mini_librispeech/conf
model_conf=$conf/dnn_mini.yaml
student_conf=""             # default: --model-conf
out=recipes/mini_librispeech/results
train=train-clean-5
dev=dev-clean-2
device=cpu
recovery=true               # false: no recovery fractions (tiny data)
stage=0
stop_stage=100
. recipes/mini_librispeech/local/common.sh
parse_options "$@"
student_conf=${student_conf:-$model_conf}
require_configs "$model_conf" "$student_conf"
study=$exp/study
log_dir=$study/log
split=$exp/splits/$train
devq=$study/splits/dev-quarter/valid.txt
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
data=(data.exp="$exp" data.train_subset="$train")
[ -f "$split/valid.txt" ] || die "$split/valid.txt is missing: run recipes/mini_librispeech/run.sh --stop-stage 2 first"

# ---- the rows: name (no "=") | ensemble | student length | student validation | alpha | store | T ---------
# ensembles: conv (run.sh's: held-out validation, to convergence), 4ep_heldout, 4ep_devq.
# length: conv (the config's stopping rule) or 4ep (4 epochs, as the old recipe); validation:
# heldout (the split) or devq (a quarter of dev, as the old recipe); store: KIND[:K].
rows=()
add_row() { rows+=("$1|$2|$3|$4|$5|$6|$7"); }
for part in $parts; do
  case "$part" in
    protocol)
      add_row "old recipe: dev-quarter validation, 4 epochs, alpha 1, top-20" 4ep_devq 4ep devq 1 topk:20 2
      add_row "validation held out of training" 4ep_heldout 4ep heldout 1 topk:20 2
      add_row "+ converged members" conv 4ep heldout 1 topk:20 2
      add_row "+ converged students" conv conv heldout 1 topk:20 2
      add_row "+ alpha 2/3" conv conv heldout 0.666667 topk:20 2
      add_row "+ dense targets (run.sh default)" conv conv heldout 0.666667 dense 2 ;;
    alpha)
      add_row "alpha 1, dense" conv conv heldout 1 dense 2
      add_row "+ dense targets (run.sh default)" conv conv heldout 0.666667 dense 2 ;;
    store)
      for kind in $store_kinds; do add_row "store $kind, alpha 2/3" conv conv heldout 0.666667 "$kind" 2; done ;;
    tsweep)
      for T in $temperatures; do add_row "T $T, $faithful_kind store" conv conv heldout 0.666667 "$faithful_kind" "$T"; done ;;
    *) die "unknown part $part (protocol, alpha, store, tsweep)" ;;
  esac
done

# ---- helpers -----------------------------------------------------------------------------------
ensemble_dir() { [ "$1" = conv ] && echo "$exp/e1/ensemble" || echo "$study/ens_$1"; }
ensemble_overrides() {  # ensemble or student settings -> config overrides
  case "$1" in
    conv) ;;
    4ep) echo train.epochs=4 ;;
    4ep_heldout) echo train.epochs=4 ;;
    4ep_devq) echo train.epochs=4 data.valid_subset="$dev" data.valid_utts="$devq" ;;
    devq) echo data.valid_subset="$dev" data.valid_utts="$devq" ;;
    heldout) ;;
    *) die "unknown setting $1" ;;
  esac
}
train_list() {  # ensemble -> the utterances its members (and their students) train on
  [ "$1" = 4ep_devq ] && echo "$study/splits/all_train.txt" || echo "$split/train.txt"
}
store_tag() { echo "${1/:/}"; }               # topk:20 -> topk20
store_dir() { echo "$study/stores/$1_$(store_tag "$2")_T$3"; }  # ensemble, store, T

make_lists() {
  asr-kd valid-split --exp "$exp" --subset "$dev" --fraction 0.25 --stratify none --seed 0 \
    --out "$(dirname "$devq")"
  # the old recipe trained on every training utterance: its store covers them all
  cat "$split/train.txt" "$split/valid.txt" | sort > "$study/splits/all_train.txt"
  echo "dev quarter: $(wc -l < "$devq") utterances"
}

dump_stores() {  # ensemble, store kind, temperatures
  local kind=${2%%:*} k=${2#*:}
  # shellcheck disable=SC2046,SC2086  # word lists
  asr-kd distill dump-teacher --teacher "$(ensemble_dir "$1")/ensemble.json" --exp "$exp" --subset "$train" \
    --utts "$(train_list "$1")" --temperature $3 $(store_dump_args "$kind" "$k") --device "$device" \
    --out "$study/stores/$1_$(store_tag "$2")_T{T}"
  for T in $3; do asr-kd distill inspect --store "$(store_dir "$1" "$2" "$T")" > "$(store_dir "$1" "$2" "$T")/inspect.json"; done
}

write_ensemble() {  # ensemble
  local dir
  dir=$(ensemble_dir "$1")
  [ -f "$dir/ensemble.json" ] && { echo "reusing $dir/ensemble.json"; return 0; }
  # shellcheck disable=SC2046
  asr-kd train-ensemble --config "$model_conf" --members "$members" --resume "${data[@]}" \
    $(ensemble_overrides "$1") out_dir="$dir" train.progress=false
}

student_run() {  # row fields: ensemble length valid alpha store T seed -> out dir
  echo "$study/students/$1_$2_$3_a$4_$(store_tag "$5")_T$6/seed$7"
}

train_student() {  # ensemble length valid alpha store T seed
  local kind=${5%%:*}
  # shellcheck disable=SC2046  # word lists
  train_model "$(student_run "$@")" asr-kd distill train --config "$student_conf" --store "$(store_dir "$1" "$5" "$6")" \
    --temperature "$6" --alpha "$4" $(store_train_args "$kind") "${data[@]}" $(ensemble_overrides "$2") \
    $(ensemble_overrides "$3") train.seed="$7"
}

evaluate() {  # out json, model
  [ -f "$1" ] || asr-kd evaluate --model "$2" --exp "$exp" --subset "$dev" --threads 1 --device "$device" \
    --out "$1" > /dev/null
  echo "$1: frame accuracy $(grep -m1 '"frame_acc"' "$1" | tr -d ' ,')"
}

# ---- jobs --------------------------------------------------------------------------------------
mkdir -p "$study/splits"
job lists 4 "" make_lists
declare -A ensembles=() stores=()
for row in "${rows[@]}"; do
  IFS='|' read -r _ ens _ _ _ store T <<< "$row"
  ensembles[$ens]=1
  [[ " ${stores[$ens|$store]:-} " == *" $T "* ]] || stores[$ens|$store]="${stores[$ens|$store]:-} $T"
done
for ens in "${!ensembles[@]}"; do
  dir=$(ensemble_dir "$ens")
  member_jobs=""
  for i in $(seq 0 $((members - 1))); do
    # shellcheck disable=SC2046
    job "${ens}_member$i" 4 "lists" train_model "$dir/member$i" asr-kd train --config "$model_conf" "${data[@]}" \
      $(ensemble_overrides "$ens") train.seed="$i"
    member_jobs+=" ${ens}_member$i"
    job "eval_${ens}_member$i" 6 "${ens}_member$i" evaluate "$study/eval/$ens/member$i.json" "$dir/member$i/model.pt"
  done
  job "${ens}_ensemble" 4 "$member_jobs" write_ensemble "$ens"
  job "eval_${ens}_ensemble" 6 "${ens}_ensemble" evaluate "$study/eval/$ens/ensemble.json" "$dir/ensemble.json"
done
for key in "${!stores[@]}"; do
  ens=${key%%|*} store=${key#*|}
  job "store_${ens}_$(store_tag "$store")" 4 "${ens}_ensemble" dump_stores "$ens" "$store" "${stores[$key]# }"
done
declare -A declared=()
for row in "${rows[@]}"; do
  IFS='|' read -r name ens length valid alpha store T <<< "$row"
  [ -z "${declared[$name]:-}" ] || continue
  declared[$name]=1
  for seed in $seeds; do
    run=$(student_run "$ens" "$length" "$valid" "$alpha" "$store" "$T" "$seed")
    tag=$(basename "$(dirname "$run")")_seed$seed
    [ -n "${declared[$tag]:-}" ] || job "$tag" 4 "store_${ens}_$(store_tag "$store")" \
      train_student "$ens" "$length" "$valid" "$alpha" "$store" "$T" "$seed"
    [ -n "${declared[$tag]:-}" ] || job "eval_$tag" 6 "$tag" evaluate "$run/frame_acc.json" "$run/model.pt"
    declared[$tag]=1
  done
done
run_jobs

# ---- the table ---------------------------------------------------------------------------------
in_stages 7 || exit 0
args=()
for ens in "${!ensembles[@]}"; do
  args+=(--row "members ($ens)=$study/eval/$ens/member*.json" --row "members ($ens)=$(ensemble_dir "$ens")/member*/summary.json"
         --row "ensemble ($ens)=$study/eval/$ens/ensemble.json")
done
declare -A by_ensemble=()
declare -A listed=()
for row in "${rows[@]}"; do
  IFS='|' read -r name ens length valid alpha store T <<< "$row"
  [ -z "${listed[$name]:-}" ] || continue
  listed[$name]=1
  runs=$(dirname "$(student_run "$ens" "$length" "$valid" "$alpha" "$store" "$T" 0)")
  args+=(--row "$name=$runs/seed*/frame_acc.json" --row "$name=$runs/seed*/summary.json"
         --row "$name=$(store_dir "$ens" "$store" "$T")/inspect.json")
  by_ensemble[$ens]+="$name"$'\n'
done
asr-kd report table "${args[@]}" --metric "frame_acc:100=dev frame accuracy (%)" \
  --metric "nonsilence.frame_acc:100=dev non-silence frame accuracy (%)" --metric "epochs_run=epochs trained" \
  --metric "kept_epoch=epoch kept" --metric "mean_kept_mass:100=teacher mass in the store (%)" \
  --out-dir "$out" --name e1_study
: > "$out/e1_study_recovery.md"
[ "$recovery" = true ] || by_ensemble=()
for ens in "${!by_ensemble[@]}"; do
  mapfile -t names <<< "${by_ensemble[$ens]%$'\n'}"
  asr-kd report recovery --table "$out/e1_study.json" --metric "dev frame accuracy (%)" --low "members ($ens)" \
    --high "ensemble ($ens)" --rows "${names[@]}" --out "$study/recovery_$ens.md"
  cat "$study/recovery_$ens.md" >> "$out/e1_study_recovery.md"
done
stage_times 4=train+dump 6=evaluate
say "e1_study: $out/e1_study.md, $out/e1_study_recovery.md"
