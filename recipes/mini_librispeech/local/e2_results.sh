#!/usr/bin/env bash
# Stage 9 of run.sh: E2 tables (JSON + markdown), bar charts and learning curves.
# Usage: bash recipes/mini_librispeech/local/e2_results.sh --exp DIR --out DIR [--recovery true|false]
#   --recovery false: no recovered fraction of the gap (tiny data: the gap is noise)
set -euo pipefail
exp=exp/mini_librispeech
out=recipes/mini_librispeech/results
recovery=true
. "$(dirname "$0")/common.sh"
parse_options "$@"
e1=$exp/e1
e2=$exp/e2
mkdir -p "$out"
# E2: frame accuracy on the (3% or 100%) training utterances, dev frame accuracy.
for split in train dev; do
  full_file=$e2/full_${split}_acc.json
  asr-kd report table --row "100% hard (baseline)=$full_file" \
    --row "3% hard, early stopping=$e2/hard/seed*/${split}_acc.json" \
    --row "3% hard, no early stopping=$e2/hard_no_es/seed*/${split}_acc.json" \
    --row "3% soft targets=$e2/soft/seed*/${split}_acc.json" \
    --metric "frame_acc:100=$split frame accuracy (%)" --out-dir "$out" --name "e2_$split"
done
# How long each system trained (early stopping on the held-out validation utterances, or not).
asr-kd report table --row "3% hard, early stopping=$e2/hard/seed*/summary.json" \
  --row "3% hard, no early stopping=$e2/hard_no_es/seed*/summary.json" --row "3% soft targets=$e2/soft/seed*/summary.json" \
  --metric "epochs_run=epochs trained" --metric "kept_epoch=epoch kept" \
  --metric "valid_frame_acc:100=validation frame accuracy of the kept epoch (%)" --out-dir "$out" --name e2_epochs
if [ "$recovery" = true ]; then
  asr-kd report recovery --table "$out/e2_dev.json" --metric "dev frame accuracy (%)" \
    --low "3% hard, early stopping" --high "100% hard (baseline)" --rows "3% soft targets" --out "$out/e2_recovery.md"
fi

asr-kd report curves --log "3% hard=$e2/hard_no_es/seed0/log.csv" --log "3% soft=$e2/soft/seed0/log.csv" \
  --out "$out/e2_learning_curves.png" --title "E2: 3% of the training data"
echo "e2_results: tables and figures in $out"
