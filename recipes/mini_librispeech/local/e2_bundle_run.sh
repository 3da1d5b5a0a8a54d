#!/usr/bin/env bash
# E2 of recipes/mini_librispeech/run.sh (stage 8) from a make_e2_bundle.py folder, on a many-core machine:
# the same commands, the 3% utterance lists the recipe picks (data.train_fraction=0.03,
# data.subset_seed=s), one torch thread per process, all seeds in parallel.
set -uo pipefail
B=${BUNDLE:-.e2carry}
E=$B/exp
C=recipes/mini_librispeech/conf/dnn_mini_3pct.yaml
O=e2
asr() { python3 -m asr_kd.cli "$@"; }
OUT=${OUT:-.}
start=$(date +%s)
for s in 0 1 2; do
  common=(--config $C data.exp=$E data.train_utts=$B/lists/seed$s.txt train.seed=$s train.device=cpu
          train.progress=false)
  asr train "${common[@]}" out_dir=$O/hard/seed$s > $O.hard$s.log 2>&1 &
  asr train "${common[@]}" train.patience=0 train.keep=last out_dir=$O/hard_no_es/seed$s > $O.nes$s.log 2>&1 &
  (asr distill dump-teacher --teacher $B/member0.pt --exp $E --subset train-clean-5 \
     --utts $B/lists/seed$s.txt --temperature 2 --top-k 20 --out $O/teacher_seed$s &&
   asr distill train --store $O/teacher_seed$s --temperature 2 --alpha 1.0 "${common[@]}" train.patience=0 \
     train.keep=last out_dir=$O/soft/seed$s) > $O.soft$s.log 2>&1 &
done
wait
echo "training done after $(( $(date +%s) - start )) s"
for run in $O/*/seed*; do
  asr evaluate --model $run/model.pt --exp $E --subset dev-clean-2 --device cpu --threads 1 --out $run/dev_acc.json > /dev/null &
  asr evaluate --model $run/model.pt --exp $E --subset train-clean-5 --utts $run/train_utts.txt --device cpu \
    --threads 1 --out $run/train_acc.json > /dev/null &
done
wait
echo "evaluation done after $(( $(date +%s) - start )) s"
grep -h "dev frame accuracy" $O.*.log
tail -n 3 $O.*.log | grep -i error
tar czf "$OUT/e2.tgz" --exclude='*.pt' --exclude='teacher_seed*' $O $O.*.log
