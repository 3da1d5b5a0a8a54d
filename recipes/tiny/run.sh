#!/usr/bin/env bash
# `make demo`: the whole pipeline end to end on the tiny real data in data/ (20 train + 10 dev
# utterances): prepare, features, senone tree + alignment, LM + HCLG, a DNN ensemble, a student
# distilled from it, frame accuracy, decoding, WER, and the E1-style table. It runs the Mini
# LibriSpeech recipe's own stages with small settings; numbers at this size only show that the
# pipeline works (a 20-utterance LM cannot cover the dev words, so WER is near 100%; the LM is
# the training-transcript one: the 72k-word en-us graph takes minutes and GBs to build).
#
# Usage: bash recipes/tiny/run.sh [--exp DIR] [any option of recipes/mini_librispeech/run.sh]
set -euo pipefail
cd "$(dirname "$0")/../.."
exp=exp/tiny
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --exp) exp=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
bash recipes/mini_librispeech/run.sh --root data/LibriSpeech --exp "$exp" --results "$exp/results" \
  --model-conf recipes/mini_librispeech/conf/dnn_tiny.yaml --num-senones 150 \
  --tree-args "--mono-iters 2 --tri-iters 1 --min-leaf-frames 20" \
  --members 3 --seeds "0 1" --temperatures 2 --lm train --stop-stage 7 "${args[@]}"
echo
echo "E1 on the tiny data (pipeline check only):"
cat "$exp/results/e1.md" "$exp/results/e1_recovery.md"
