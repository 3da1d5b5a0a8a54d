#!/usr/bin/env bash
# End-to-end smoke recipe on the tiny real data shipped in data/ (what `make demo` runs).
# Numbers at this size only show that the pipeline works.
#
# Usage: bash recipes/tiny/run.sh [--stage N] [--stop-stage M] [--exp DIR]
set -euo pipefail
stage=0
stop_stage=100
exp=exp/tiny
root=data/LibriSpeech
train=train-clean-5
dev=dev-clean-2
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if run_stage 0; then
  echo "== stage 0: prepare manifests + lexicon"
  asr-kd prepare --root "$root" --subsets $train $dev --exp "$exp"
fi
if run_stage 1; then
  echo "== stage 1: log-mel features + CMVN"
  asr-kd features --exp "$exp" --subsets $train $dev --utts-per-shard 10
fi
