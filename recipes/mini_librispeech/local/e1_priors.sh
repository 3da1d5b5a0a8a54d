#!/usr/bin/env bash
# E1 decoding with each system's own senone priors: does dividing by the alignment's senone counts
# cost the students (trained on soft targets, so predicting another average senone distribution)
# the WER their frame accuracy should buy? For every system run.sh's stage 6 evaluated (members,
# ensemble, students of --temperatures), the mean posterior of its validation-split log-posteriors
# becomes its priors (Kaldi's nnet-adjust-priors; common.sh: evaluate_own_priors), dev and the
# validation split are decoded again with them (same graph, beam, 100-best, weights tuned on the
# validation split), and one table puts the WER with count priors beside the WER with own priors
# (weights tuned on the validation split, and best on dev, labelled).
# Needs run.sh stage 6 in --exp (the log-posteriors and the count-prior decodings). Dev is only
# decoded and scored; the priors and the decoding weights come from the validation split.
# Cost on the 2-core machine: 446-816 s of decoding and scoring per system (measured with 3-5 jobs
# sharing the 2 cores; 7 systems of run.sh's default: 74 min with --jobs 1 beside other work).
#
# Usage: bash recipes/mini_librispeech/local/e1_priors.sh [--exp DIR] [--temperatures "2"] [--jobs 2]
#            [--out DIR] [--name e1_priors]
# Writes <exp>/e1/eval/<system>/{own_priors.npy,decode_own_priors/,valid_decode_own_priors/} and
# <out>/<name>.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/../../.."

exp=exp/mini_librispeech
temperatures="2"
jobs=2
out=recipes/mini_librispeech/results
name=e1_priors
. recipes/mini_librispeech/local/common.sh
evaluation_options
parse_options "$@"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
eval_dir=$exp/e1/eval
log_dir=$exp/log/$name
stage=0 stop_stage=0        # every job of this script is stage 0

rows=("baseline=baseline_member*" "ensemble=ensemble")
for T in $temperatures; do rows+=("student T$T=student_T${T}_seed*"); done
table=()
for row in "${rows[@]}"; do
  label=${row%%=*} glob=${row#*=}
  dirs=("$eval_dir"/$glob)
  [ -d "${dirs[0]}/valid_logpost" ] || die "${dirs[0]}/valid_logpost is missing: run run.sh's stage 6 first"
  for d in "${dirs[@]}"; do job "own_priors_$(basename "$d")" 0 "" evaluate_own_priors "$d"; done
  table+=(--row "$label, count priors=$eval_dir/$glob/decode/nbest.tuned.wer.json"
          --row "$label, count priors, best on dev=$eval_dir/$glob/decode/nbest.best_on_dev.wer.json"
          --row "$label, own priors=$eval_dir/$glob/decode_own_priors/nbest.tuned.wer.json"
          --row "$label, own priors, best on dev=$eval_dir/$glob/decode_own_priors/nbest.best_on_dev.wer.json")
done
run_jobs
asr-kd report table "${table[@]}" "${e1_wer_metrics[@]}" --out-dir "$out" --name "$name"
say "e1_priors: $out/$name.md"
