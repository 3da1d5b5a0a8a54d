#!/usr/bin/env bash
# Stage 9 of run.sh: E2 tables (JSON + markdown), bar charts and learning curves.
# Usage: bash recipes/mini_librispeech/local/e2_results.sh --exp DIR --out DIR [--fraction 0.03] [--recovery true|false]
#            [--consistent true|false]
#   --consistent false: no consistent-teaching row (run.sh --e2-consistent-epochs 0)
#   --fraction: the training fraction the E2 models were trained on (run.sh --fraction), for the row labels
#   --recovery false: no recovered fraction of the gap (tiny data: the gap is noise)
set -euo pipefail
exp=exp/mini_librispeech
out=recipes/mini_librispeech/results
recovery=true
fraction=0.03
consistent=true
. "$(dirname "$0")/common.sh"
parse_options "$@"
percent=$(awk -v f="$fraction" 'BEGIN { printf "%g%%", 100 * f }')   # 0.03 -> 3%
e2=$exp/e2
mkdir -p "$out"
soft_rows=("$percent soft targets")
[ "$consistent" = false ] || soft_rows+=("$percent soft targets, consistent teaching")
rows() {  # file name under each E2 system's seed directory -> --row options of its systems
  printf -- '--row\n%s\n' "$percent hard, early stopping=$e2/hard/seed*/$1" \
    "$percent hard, no early stopping=$e2/hard_no_es/seed*/$1" "${soft_rows[0]}=$e2/soft/seed*/$1"
  [ "$consistent" = false ] || printf -- '--row\n%s\n' "${soft_rows[1]}=$e2/consistent/seed*/$1"
}
# E2: frame accuracy on the ($percent or 100%) training utterances, dev frame accuracy.
for split in train dev; do
  mapfile -t system_rows < <(rows "${split}_acc.json")
  asr-kd report table --row "100% hard (baseline)=$e2/full_${split}_acc.json" "${system_rows[@]}" \
    --metric "frame_acc:100=$split frame accuracy (%)" --out-dir "$out" --name "e2_$split"
done
# How long each system trained (early stopping on the held-out validation utterances, or not).
mapfile -t system_rows < <(rows summary.json)
asr-kd report table "${system_rows[@]}" --metric "epochs_run=epochs trained" --metric "kept_epoch=epoch kept" \
  --metric "valid_frame_acc:100=validation frame accuracy of the kept epoch (%)" --out-dir "$out" --name e2_epochs
if [ "$recovery" = true ]; then
  asr-kd report recovery --table "$out/e2_dev.json" --metric "dev frame accuracy (%)" \
    --low "$percent hard, early stopping" --high "100% hard (baseline)" --rows "${soft_rows[@]}" --out "$out/e2_recovery.md"
fi

curves=(--log "$percent hard=$e2/hard_no_es/seed0/log.csv" --log "$percent soft=$e2/soft/seed0/log.csv")
[ "$consistent" = false ] || curves+=(--log "$percent soft, consistent teaching=$e2/consistent/seed0/log.csv")
asr-kd report curves "${curves[@]}" --out "$out/e2_learning_curves.png" --title "E2: $percent of the training data"
echo "e2_results: tables and figures in $out"
