#!/usr/bin/env bash
# Interpolate the general en-us trigram with an in-domain 3-gram of the training transcripts.
# The mixture weight is chosen on held-out TRAINING utterances (every 10th of $train, or
# --heldout FILE), whose transcripts are left out of the in-domain LM; dev text only scores the
# result. Needs stage 3's en-us ARPA and KenLM (tools/install_kenlm.sh).
# Usage: bash recipes/mini_librispeech/local/lm_mix.sh [--exp DIR] [--train SUBSET] [--dev SUBSET]
#            [--heldout FILE] [--weights "0.5 0.6 0.7 0.8 0.9"]
set -euo pipefail
cd "$(dirname "$0")/../../.."

exp=exp/mini_librispeech
train=train-clean-5
dev=dev-clean-2
heldout=""
weights="0.5 0.6 0.7 0.8 0.9 0.95"
. recipes/mini_librispeech/local/common.sh  # parse_options (the working directory is the repo root)
parse_options "$@"
lm=$exp/lm
if [ -z "$heldout" ]; then
  heldout=$lm/$train.heldout_utts.txt
  awk -F'\t' 'NR > 1 && (NR - 1) % 10 == 0 {print $1}' "$exp/manifests/$train.tsv" > "$heldout"
fi
lmplz=$(bash tools/install_kenlm.sh | tail -n 1)
ASR_KD_LMPLZ=$lmplz asr-kd lm --exp "$exp" --subset "$train" --exclude-utts "$heldout" --eval-subset "$dev" \
  --out "$lm/$train.minus_heldout.3gram.arpa"
weight=$(python - "$lm/en-us.3gram.arpa" "$lm/$train.minus_heldout.3gram.arpa" "$exp/manifests/$train.tsv" \
  "$heldout" $weights <<'EOF'
import sys
from asr_kd.data import read_manifest
from asr_kd.lm import read_arpa
from asr_kd.lm.evaluate import mixture_perplexity

general, domain = read_arpa(sys.argv[1]), read_arpa(sys.argv[2])
held = {line.split()[0] for line in open(sys.argv[4]) if line.strip()}
text = [u.transcript.split() for u in read_manifest(sys.argv[3]) if u.utt_id in held]
scores = {float(w): mixture_perplexity(general, domain, float(w), text).perplexity for w in sys.argv[5:]}
for w, ppl in scores.items():
    print(f"weight of en-us {w:g}: held-out perplexity {ppl:.1f}", file=sys.stderr)
print(min(scores, key=scores.get))
EOF
)
echo "chosen weight of en-us (on held-out training utterances): $weight"
asr-kd lm --exp "$exp" --source arpa --arpa "$lm/en-us.3gram.arpa" --mix-with "$lm/$train.minus_heldout.3gram.arpa" \
  --mix-weight "$weight" --eval-subset "$dev" --out "$lm/en-us+$train.3gram.arpa"
