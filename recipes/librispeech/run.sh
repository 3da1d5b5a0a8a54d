#!/usr/bin/env bash
# LibriSpeech 960 h recipe: the paper's E1 (ensemble of DNNs, students distilled at T in
# {1 2 5 10}) with the paper-size DNN (8 x 2560 ReLU, 26 frames of 40 log-mel) on a GPU.
# It is a thin wrapper around recipes/mini_librispeech/run.sh (same code, other settings): its
# own stage 0 prepares the training union train-960 = train-clean-100 + train-clean-360 +
# train-other-500 as ONE manifest (`asr-kd prepare --subsets NAME=PART+PART+...`) and holds out
# its validation split (0.2% of every speaker's utterances, ~560 utterances / ~2 h, as Kaldi's
# nnet3 holds out a few hundred), then the mini recipe runs stages 1-7 on it. Stages 8-9 (E2) would use the mini recipe's small E2 config, so
# the default --stop-stage is 7.
#
# Usage: bash recipes/librispeech/run.sh --root /path/to/LibriSpeech [--exp DIR] [--stage N]
#            [--stop-stage M] [--train-name NAME] [--train-parts "PART PART ..."] [--dev SUBSET]
#            [--results DIR] [--valid-fraction F] [--valid-seed S] [any other option of recipes/mini_librispeech/run.sh]
# Later options win, so e.g. --num-senones 14000 or --members 4 override the defaults below.
set -euo pipefail
cd "$(dirname "$0")/../.."

root=""
exp=exp/librispeech
stage=0
stop_stage=7
train=train-960                                           # name of the union's manifest
train_parts="train-clean-100 train-clean-360 train-other-500"
dev=dev-clean
results=""                                                # default: $exp/results
valid_fraction=0.002                                      # validation split of train-960
valid_seed=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --train|--train-name) train=$2; shift 2 ;;
    --train-parts) train_parts=$2; shift 2 ;;
    --dev) dev=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --valid-fraction) valid_fraction=$2; shift 2 ;;
    --valid-seed) valid_seed=$2; shift 2 ;;
    --*) [ $# -ge 2 ] || { echo "option $1 needs a value" >&2; exit 1; }
         args+=("$1" "$2"); shift 2 ;;
    *) echo "unexpected argument $1" >&2; exit 1 ;;
  esac
done
[ -n "$root" ] || { echo "usage: $0 --root /path/to/LibriSpeech [options] (--root is required)" >&2; exit 1; }
results=${results:-$exp/results}
parts=$(echo $train_parts | tr ' ' '+')                   # "a b c" or "a+b+c" -> a+b+c

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "== stage 0: manifests + lexicon ($train = $parts, $dev)"
  asr-kd prepare --root "$root" --subsets "$train=$parts" "$dev" --exp "$exp"
  asr-kd valid-split --exp "$exp" --subset "$train" --fraction "$valid_fraction" --seed "$valid_seed"
fi
if [ "$stop_stage" -ge 1 ]; then
  bash recipes/mini_librispeech/run.sh --root "$root" --exp "$exp" --results "$results" \
    --train "$train" --dev "$dev" --valid-fraction "$valid_fraction" --valid-seed "$valid_seed" \
    --model-conf recipes/librispeech/conf/dnn_paper.yaml --num-senones 8000 \
    --tree-args "--tri-gaussians 80000" \
    --members 10 --seeds "0 1 2" --jobs 1 --device cuda --temperatures "1 2 5 10" \
    "${args[@]}" --stage $(( stage > 1 ? stage : 1 )) --stop-stage "$stop_stage"
fi
