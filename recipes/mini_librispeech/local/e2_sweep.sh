#!/usr/bin/env bash
# E2 temperature sweep: run.sh's E2 (stages 8-9, unchanged) once per soft-target temperature, each
# in its own experiment <exp>/e2_sweep/T<T> that links EXP's manifests, features, tree, alignments,
# validation split, LM and E1 members (so every temperature distils the same 100% model, member 0).
# The small-data hard models do not depend on T: EXP's own (run.sh stage 8 with the same E2 settings)
# or else the first temperature's are linked by the others, and at EXP's own --e2-temperature its soft
# models too. Then one table over the temperatures: dev (and own-training-data) frame
# accuracy of 100% hard, the small-data hard models and the soft models at each T, and the share of
# the dev gap each T closes (<out>/e2_sweep_{dev,train}.{md,json}, <out>/e2_sweep_recovery.md).
# Needs run.sh stages 0-4 in --exp (member 0 at least). --run-args: the run.sh options EXP was made
# with (--model-conf, --members, ...) plus any E2 option but the fraction and T (--e2-conf, --jobs); a
# derived experiment whose settings differ from EXP's in anything but E2 stops before training.
#
# Usage: bash recipes/mini_librispeech/local/e2_sweep.sh --exp DIR [--temperatures "1 2 5 10"]
#            [--run-args "--model-conf YAML --members N ..."] [--out DIR] [--fraction 0.03] [--recovery true]
set -euo pipefail
cd "$(dirname "$0")/../../.."

exp=exp/mini_librispeech
temperatures="1 2 5 10"
run_args=""
out=recipes/mini_librispeech/results/e2_sweep
fraction=0.03               # the E2 fraction (also passed to run.sh): for the row labels
recovery=true               # false: no gap fractions (tiny data)
. recipes/mini_librispeech/local/common.sh
parse_options "$@"
[ -d "$exp/splits" ] && [ -d "$exp/e1/ensemble/member0" ] ||
  die "$exp: needs run.sh stages 0-4 (the validation split and E1 member 0)"
# shellcheck disable=SC2206  # word lists
temperature_list=($temperatures) extra=($run_args)
[ ${#temperature_list[@]} -gt 0 ] || die "--temperatures is empty"
sweep=$exp/e2_sweep
first=$sweep/T${temperature_list[0]}
percent=$(awk -v f="$fraction" 'BEGIN { printf "%g%%", 100 * f }')   # 0.03 -> 3%

link_shared() {  # derived exp dir: EXP's shared parts as symlinks (never its E2, logs or settings)
  local dir=$1 entry
  mkdir -p "$dir/e2"
  for entry in "$exp"/*; do
    case "$(basename "$entry")" in e2|e2_sweep|log|settings.txt) continue ;; esac
    [ -e "$dir/$(basename "$entry")" ] || ln -s "$(realpath "$entry")" "$dir/$(basename "$entry")"
  done
}

e2_settings() { grep '^e2=' "$1/settings.txt" | sed "${2:-}"; }  # exp dir [, sed script]
link_e2() {  # derived exp dir: the E2 models it can share. EXP's own when run.sh made them with the same
  # E2 settings (all of them at EXP's temperature, the small-data hard models at the others), else
  # the hard models of the first temperature
  local dir=$1 entry source=$first/e2 no_t='s/ T=[^ ]*//'
  if [ -d "$exp/e2/hard" ] && [ "$(e2_settings "$exp" "$no_t")" = "$(e2_settings "$dir" "$no_t")" ]; then
    source=$exp/e2
    if [ "$(e2_settings "$exp")" = "$(e2_settings "$dir")" ]; then
      for entry in "$exp"/e2/*; do [ -e "$dir/e2/$(basename "$entry")" ] || ln -s "$(realpath "$entry")" "$dir/e2/"; done
      return 0
    fi
  fi
  [ "$source" != "$dir/e2" ] || return 0  # the first temperature trains them
  for entry in hard hard_no_es full_dev_acc.json full_train_acc.json; do  # the last two: member 0's, any T
    [ -e "$dir/e2/$entry" ] || [ ! -e "$source/$entry" ] || ln -s "$(realpath "$source/$entry")" "$dir/e2/$entry"
  done
}

same_settings() {  # derived exp dir: stop unless it was made with EXP's settings outside E2
  [ -f "$exp/settings.txt" ] || return 0
  diff <(grep -v '^e2' "$exp/settings.txt") <(grep -v '^e2' "$1/settings.txt") > /dev/null ||
    die "$1/settings.txt differs from $exp/settings.txt outside E2: pass EXP's run.sh options in --run-args"
}

dev_rows=() train_rows=() soft_rows=()
for T in "${temperature_list[@]}"; do
  dir=$sweep/T$T
  link_shared "$dir"
  options=(--exp "$dir" --results "$dir/results" --fraction "$fraction" --e2-temperature "$T" --recovery "$recovery"
           "${extra[@]}")
  bash recipes/mini_librispeech/run.sh "${options[@]}" --stage 99 --stop-stage 99 > /dev/null  # settings.txt only
  same_settings "$dir"
  link_e2 "$dir"
  say "E2 at T = $T in $dir"
  bash recipes/mini_librispeech/run.sh "${options[@]}" --stage 8 --stop-stage 9
  dev_rows+=(--row "$percent soft targets at T $T=$dir/e2/soft/seed*/dev_acc.json")
  train_rows+=(--row "$percent soft targets at T $T=$dir/e2/soft/seed*/train_acc.json")
  soft_rows+=("$percent soft targets at T $T")
done

mkdir -p "$out"
asr-kd report table --row "100% hard (baseline)=$first/e2/full_dev_acc.json" \
  --row "$percent hard, early stopping=$first/e2/hard/seed*/dev_acc.json" \
  --row "$percent hard, no early stopping=$first/e2/hard_no_es/seed*/dev_acc.json" "${dev_rows[@]}" \
  --metric "frame_acc:100=dev frame accuracy (%)" --out-dir "$out" --name e2_sweep_dev
asr-kd report table --row "100% hard (baseline)=$first/e2/full_train_acc.json" \
  --row "$percent hard, early stopping=$first/e2/hard/seed*/train_acc.json" \
  --row "$percent hard, no early stopping=$first/e2/hard_no_es/seed*/train_acc.json" "${train_rows[@]}" \
  --metric "frame_acc:100=train frame accuracy (%)" --out-dir "$out" --name e2_sweep_train
if [ "$recovery" = true ]; then
  asr-kd report recovery --table "$out/e2_sweep_dev.json" --metric "dev frame accuracy (%)" \
    --low "$percent hard, early stopping" --high "100% hard (baseline)" --rows "${soft_rows[@]}" \
    --out "$out/e2_sweep_recovery.md"
fi
cat "$out/e2_sweep_dev.md"
[ "$recovery" != true ] || cat "$out/e2_sweep_recovery.md"
