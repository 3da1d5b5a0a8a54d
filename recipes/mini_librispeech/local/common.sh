# Shared by the recipe scripts (source it after declaring the option defaults):
#   parse_options "$@"   Kaldi's parse_options.sh idiom: every lower-case variable set before the
#                        call is an option, --foo-bar VALUE (or --foo-bar=VALUE) sets foo_bar;
#                        --help prints the calling script's header comment.
#   say MESSAGE          one log line with the seconds since the script started
#   job NAME STAGE "DEPS" COMMAND...   declare a job of stage STAGE (skipped unless that stage
#                        is in --stage..--stop-stage) that starts once the jobs named in DEPS
#                        have finished; DEPS not declared in this run count as done (an earlier
#                        run made their outputs)
#   evaluation_options   declare the options of every script that evaluates systems (call it before
#                        parse_options): --train --dev --beam --max-active --search-scales --device,
#                        run.sh's defaults
#   require_configs F... stop with one line unless every config file F exists
#   run_jobs             run the declared jobs, at most $jobs at a time, in declaration order as
#                        their dependencies allow; the first failure stops the others and the
#                        script. Each job logs to $log_dir/NAME.log; $log_dir/jobs.tsv records
#                        start/end times and stage_times prints the wall time per stage.
# Requires bash >= 5.1 (wait -n -p).

script_start=$(date +%s)

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
say() { echo "== [$(( $(date +%s) - script_start )) s] $*"; }

parse_options() {
  local _opt _val _var
  while [ $# -gt 0 ]; do
    case "$1" in
      -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
      --*=*) _opt=${1%%=*}; _val=${1#*=}; shift ;;
      --*) [ $# -ge 2 ] || die "option $1 needs a value"; _opt=$1; _val=$2; shift 2 ;;
      *) die "unexpected argument '$1' (options are --name value; --help lists them)" ;;
    esac
    _var=${_opt#--}; _var=${_var//-/_}
    if ! [[ $_var =~ ^[a-z][a-z0-9_]*$ ]] || ! declare -p "$_var" > /dev/null 2>&1; then
      die "unknown option $_opt (--help lists the options)"
    fi
    printf -v "$_var" '%s' "$_val"
  done
  # a --stage past the default --stop-stage (e.g. an optional stage) would otherwise run nothing, silently
  if [ -n "${stage:-}" ] && [ -n "${stop_stage:-}" ] && [ "$stage" -gt "$stop_stage" ]; then
    die "--stage $stage is after --stop-stage $stop_stage: nothing to run (give --stop-stage too)"
  fi
}

evaluation_options() {  # one definition of the evaluation settings the recipe scripts share
  train=train-clean-5    # training subset; its held-out validation split is <exp>/splits/<train>/
  dev=dev-clean-2        # the reported set: only scored, never read by training or tuning
  beam=10                # decoding beam and max active states: on the 72k-word en-us graph (4.6M states)
  max_active=2000        # beam 13 / 7000 costs CPU RTF 0.66, beam 10 / 2000 RTF 0.07 (README: decoding beam)
  search_scales=0.1      # the search's acoustic scale (its LM weight is 1 / scale); with several ("0.1 0.2"),
                         # each system's is chosen on the validation split (decode_and_score)
  device=cpu             # forward passes of evaluate / posteriors / dump-teacher (training: train.device)
}

in_stages() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

declare -a job_order=()
declare -A job_command=() job_deps=() job_stage=() job_state=() job_of_pid=() job_started=()

job() {
  local name=$1 job_stage_number=$2 deps=$3
  shift 3
  in_stages "$job_stage_number" || return 0
  [ -z "${job_state[$name]+x}" ] || die "job $name declared twice"
  job_order+=("$name")
  job_command[$name]=$(printf '%q ' "$@")
  job_deps[$name]=$deps
  job_stage[$name]=$job_stage_number
  job_state[$name]=queued
}

_job_ready() {  # name -> 0 when every dependency is done (or not part of this run)
  local dep
  for dep in ${job_deps[$1]}; do
    [ "${job_state[$dep]:-done}" = done ] || return 1
  done
}

_stop_jobs() {  # each job runs in its own process group (set -m): stop it with everything it started
  local pid
  for pid in "${!job_of_pid[@]}"; do kill -- "-$pid" 2> /dev/null || true; done
}

run_jobs() {
  local name pid status running=0 queued
  mkdir -p "$log_dir"
  trap _stop_jobs EXIT
  set -m
  while :; do
    queued=0
    for name in "${job_order[@]}"; do
      [ "${job_state[$name]}" = queued ] || continue
      queued=1
      [ "$running" -lt "$jobs" ] && _job_ready "$name" || continue
      say "start $name"
      ( eval "${job_command[$name]}" ) > "$log_dir/$name.log" 2>&1 &
      job_of_pid[$!]=$name
      job_state[$name]=running
      job_started[$name]=$(date +%s)
      running=$((running + 1))
    done
    if [ "$running" -eq 0 ]; then
      [ "$queued" -eq 0 ] || die "jobs wait for each other: $(for n in "${job_order[@]}"; do
        [ "${job_state[$n]}" = queued ] && printf '%s ' "$n"; done)"
      break
    fi
    status=0
    wait -n -p pid || status=$?
    name=${job_of_pid[$pid]}
    unset "job_of_pid[$pid]"
    running=$((running - 1))
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "${job_stage[$name]}" "${job_started[$name]}" "$(date +%s)" "$status" \
      >> "$log_dir/jobs.tsv"
    if [ "$status" -ne 0 ]; then
      job_state[$name]=failed
      echo "---- $log_dir/$name.log (last 40 lines)" >&2
      tail -n 40 "$log_dir/$name.log" >&2
      die "job $name failed (exit $status); rerun the same command to continue"
    fi
    job_state[$name]=done
    say "done $name ($(( $(date +%s) - job_started[$name] )) s): $(tail -n 1 "$log_dir/$name.log")"
  done
  set +m
  trap - EXIT
  job_order=()
}

stage_times() {  # stage names as "N=name" words -> table of wall span and summed job time per stage
  [ -f "$log_dir/jobs.tsv" ] || return 0
  awk -F'\t' -v names="$*" -v since="$script_start" '
    BEGIN { n = split(names, w, " "); for (i = 1; i <= n; i++) { split(w[i], kv, "="); label[kv[1]] = kv[2] } }
    $3 >= since && $5 == 0 {
      s = $2; if (!(s in first) || $3 < first[s]) first[s] = $3; if ($4 > last[s]) last[s] = $4
      busy[s] += $4 - $3; count[s]++
    }
    END {
      printf "%-6s %-28s %5s %12s %14s\n", "stage", "", "jobs", "wall span s", "job time s"
      for (s = 0; s <= 20; s++) if (s in count)
        printf "%-6s %-28s %5d %12d %14d\n", s, label[s], count[s], last[s] - first[s], busy[s]
    }' "$log_dir/jobs.tsv"
}

require_configs() {  # config file... -> one line and exit unless each exists (the scripts run from the repo root)
  local config
  for config in "$@"; do
    [ -f "$config" ] || die "$config: no such config file (paths are relative to the repository root, $PWD)"
  done
}

# The settings an experiment's models depend on, one per line in FILE: written by the first run,
# and any later run with other settings stops here instead of mixing two protocols in one --exp.
check_settings() {  # file, setting...
  local file=$1 now
  shift
  now=$(printf '%s\n' "$@")
  if [ ! -f "$file" ]; then
    mkdir -p "$(dirname "$file")"
    echo "$now" > "$file"
  elif [ "$(cat "$file")" != "$now" ]; then
    die "$file: this experiment was made with other settings ($(diff <(echo "$now") "$file" | grep '^>' |
      tr '\n' ' ')); use another --exp, or delete the file to continue anyway"
  fi
}

# Frame accuracy of one model (asr-kd evaluate) unless the JSON exists; prints its frame_acc line.
evaluate_once() {  # out JSON, model, subset, [--utts FILE]
  local out=$1 model=$2 subset=$3
  shift 3
  [ -f "$out" ] || asr-kd evaluate --model "$model" --exp "$exp" --subset "$subset" "$@" --threads 1 \
    --device "$device" --out "$out" > /dev/null
  echo "$out: $(grep -m1 '"frame_acc"' "$out" | tr -d ' ,')"
}

# Train one model unless its model.pt exists (then reuse it); --resume continues a killed run.
train_model() {  # out_dir, then `asr-kd train` / `asr-kd distill train` arguments
  local out=$1
  shift
  if [ -f "$out/model.pt" ]; then echo "reusing $out/model.pt"; return 0; fi
  local words=() options=("$@")
  if [ -f "$out/checkpoint.pt" ]; then  # --resume among the options: argparse takes no option after an override
    while [ ${#options[@]} -gt 0 ] && [[ ${options[0]} != -* ]]; do words+=("${options[0]}"); options=("${options[@]:1}"); done
    options=(--resume "${options[@]}")
  fi
  "${words[@]}" "${options[@]}" out_dir="$out" train.progress=false
}

# An ensemble JSON of <its directory>/member<i>/model.pt for the member ids given: the member paths
# relative to the JSON, as `asr-kd train-ensemble` writes them; the paper's mean of probabilities.
write_ensemble_json() {  # file, member id...
  local file=$1 i paths=""
  shift
  for i in "$@"; do paths+="${paths:+, }\"member$i/model.pt\""; done
  printf '{"format": "asr_kd.ensemble/1", "members": [%s], "temperature": 1.0, "combine": "mean_prob"}\n' \
    "$paths" > "$file.tmp" && mv "$file.tmp" "$file"
}

# Teacher store kinds: the `asr-kd distill dump-teacher` and `distill train` options of each.
#   dense       every senone's probability in fp16 (exact; 2 bytes x senones per frame)
#   topk        the k most probable senones, renormalised to sum to 1 (k = $2)
#   topk-tail   the top k, the tail mass spread uniformly over the other senones
# Any other kind is passed on as `dump-teacher --store-kind KIND` (the stores of the distillation
# package that keep every T faithful).
store_dump_args() {  # kind, k
  case "$1" in
    dense) echo "--top-k dense" ;;
    topk|topk-tail) echo "--top-k $2" ;;
    *) echo "--store-kind $1" ;;
  esac
}
store_train_args() {  # kind
  case "$1" in
    topk-tail) echo "--topk-policy tail" ;;
    *) echo "" ;;
  esac
}

# E1 evaluation of one system, the one place the recipe scripts evaluate and decode, into DIR:
#   frame_acc.json             dev frame accuracy (all frames, silence, non-silence)
#   logpost/, decode/          dev log-posteriors; lattice search + 100-best (decode/nbest.jsonl.gz)
#   valid_logpost/, valid_decode/  the same for the held-out validation split (the tuning set)
#   decode/hyp.wer.json        WER at the search's own weights (LMWT 1 / search scale: 10 at run.sh's 0.1;
#                              WIP 0, prior scale 1); with several --search-scales, decode/ links to the
#                              chosen scale's decode_as<scale>/ (decode_and_score)
#   decode/nbest.tuned.wer.json      LMWT 4..17 x WIP 0..2 x prior scale 0.7..1 chosen on the validation split (the
#                              reported WER: each system gets its own weights, as Kaldi's score.sh)
#   decode/nbest.best_on_dev.wer.json  the same chosen on dev itself (labelled "best on dev")
# Uses the caller's exp, train, dev, beam, max_active, search_scales and device (default cpu). A rerun skips every
# step whose output is newer than its inputs, so a killed run continues; a model retrained at the
# same path gets its posterior shards redone (`asr-kd posteriors` records the model's digest), and
# with them the frame accuracy, the searches and the scorings.
evaluate_system() {  # dir, model files (or an ensemble JSON)...
  system_posteriors "$@"
  decode_and_score "$1" "" --tree-dir "$exp/tree"
}

# evaluate_system's first half: DIR/frame_acc.json, DIR/logpost/ and DIR/valid_logpost/ (what
# decode_and_score searches), for a caller that decodes in a later stage of its own.
system_posteriors() {  # dir, model files (or an ensemble JSON)...
  local dir=$1 split=$exp/splits/$train
  shift
  local on=(--exp "$exp" --threads 1 --device "${device:-cpu}")
  mkdir -p "$dir"
  asr-kd posteriors --model "$@" "${on[@]}" --subset "$dev" --out "$dir/logpost"
  asr-kd posteriors --model "$@" "${on[@]}" --subset "$train" --utts "$split/valid.txt" --out "$dir/valid_logpost"
  newer_than "$dir/frame_acc.json" "$dir/logpost" || asr-kd evaluate --model "$@" "${on[@]}" --subset "$dev" \
    --out "$dir/frame_acc.json" > /dev/null
}

# 0 when FILE exists and is newer than every INPUT (a store directory's mtime changes when a shard
# is written into it).
newer_than() {  # file, input...
  local input
  [ -e "$1" ] || return 1
  for input in "${@:2}"; do [ "$1" -nt "$input" ] || return 1; done
}

# The same decoding with the system's own senone priors instead of the alignment's counts: the
# mean posterior of its validation-split log-posteriors (Kaldi's nnet-adjust-priors), written to
# DIR/own_priors.npy, decoded into DIR/decode_own_priors/ and DIR/valid_decode_own_priors/.
# Needs evaluate_system's DIR/logpost and DIR/valid_logpost.
evaluate_own_priors() {  # dir
  newer_than "$1/own_priors.npy" "$1/valid_logpost" || asr-kd priors --scores "$1/valid_logpost" --out "$1/own_priors.npy"
  decode_and_score "$1" _own_priors --log-priors "$1/own_priors.npy"
}

# Lattice search + 100-best of DIR/logpost and DIR/valid_logpost into DIR/decode<suffix>/ and
# DIR/valid_decode<suffix>/, scored three ways (untuned, tuned on the validation split, best on dev).
# With several $search_scales, the validation split is searched at each (DIR/valid_decode<suffix>_as<scale>/)
# and scored at its own best weights there; dev is searched once, at the scale of the lowest validation
# WER (the first listed on a tie), into DIR/decode<suffix>_as<scale>/; DIR/decode<suffix> and
# DIR/valid_decode<suffix> link to the chosen scale's and DIR/search_scale<suffix>.tsv holds the
# validation WER of each scale. The search's acoustic scale only prunes: the weights applied to the
# N-best lists are tuned afterwards, but a flat model's paths differ by little acoustic cost at 0.1 and
# the LM-heavy search prunes what its tuned LMWT would prefer (recipe README: E5).
# A search is redone when its posteriors, or a file among the prior options, are newer than its N-best.
decode_and_score() {  # dir, suffix, the decoder's prior options...
  local dir=$1 suffix=$2 scales scale
  shift 2
  read -ra scales <<< "$search_scales"
  [ ${#scales[@]} -gt 0 ] || die "--search-scales is empty"
  # Kaldi's score.sh grid (LMWT 7..17, WIP 0 0.5 1) widened: the students' flatter posteriors chose
  # LMWT 7 and WIP 1, its edges, on the mini data
  local grid=(--lm-weights $(seq 4 17) --word-ins-penalties 0 0.5 1 1.5 2 --prior-scales 0.7 0.85 1.0)
  if [ ${#scales[@]} -eq 1 ]; then
    search_once "$dir/decode$suffix" "$dir/logpost" "${scales[0]}" "$@"
    search_once "$dir/valid_decode$suffix" "$dir/valid_logpost" "${scales[0]}" "$@"
  else
    local best="" best_wer="" wer part valid table=$dir/search_scale$suffix.tsv
    for part in decode valid_decode; do
      [ -L "$dir/$part$suffix" ] || [ ! -e "$dir/$part$suffix" ] ||
        die "$dir/$part$suffix is a search at one scale (an earlier --search-scales): rename it to $part${suffix}_as<its scale> (decode.json: config.acoustic_scale) or remove it"
    done
    printf 'search acoustic scale\tvalidation WER at its best weights\n' > "$table.tmp"
    for scale in "${scales[@]}"; do
      valid=$dir/valid_decode${suffix}_as$scale
      search_once "$valid" "$dir/valid_logpost" "$scale" "$@"
      [ "$valid/nbest.best_on_valid.wer.json" -nt "$valid/nbest.jsonl.gz" ] ||
        asr-kd score --ref "$exp/manifests/$train.tsv" --utts "$exp/splits/$train/valid.txt" \
          --nbest "$valid/nbest.jsonl.gz" "${grid[@]}" --best-on-dev --out "$valid/nbest.best_on_valid" > /dev/null
      # the first "wer" is the summary's (the sweep's follow); sed quits there (no pipe: pipefail)
      wer=$(sed -n '/^ *"wer":/{s/^ *"wer": *\([0-9.eE+-]*\).*/\1/p;q}' "$valid/nbest.best_on_valid.wer.json")
      [ -n "$wer" ] || die "$valid/nbest.best_on_valid.wer.json: no \"wer\""
      printf '%s\t%s\n' "$scale" "$wer" >> "$table.tmp"
      if [ -z "$best" ] || awk -v a="$wer" -v b="$best_wer" 'BEGIN { exit !(a < b) }'; then best=$scale best_wer=$wer; fi
    done
    mv "$table.tmp" "$table"
    echo "$dir: search acoustic scale $best (validation WER $best_wer; $table)"
    search_once "$dir/decode${suffix}_as$best" "$dir/logpost" "$best" "$@"
    ln -sfn "decode${suffix}_as$best" "$dir/decode$suffix"
    ln -sfn "valid_decode${suffix}_as$best" "$dir/valid_decode$suffix"
  fi
  local decoded=$dir/decode$suffix valid_nbest=$dir/valid_decode$suffix/nbest.jsonl.gz ref=$exp/manifests/$dev.tsv
  local nbest=$decoded/nbest.jsonl.gz
  # a rerun skips the scorings whose results are newer than the lists they score (1-3 min each)
  [ "$decoded/nbest.best_on_dev.wer.json" -nt "$nbest" ] ||
    asr-kd score --ref "$ref" --nbest "$nbest" "${grid[@]}" --best-on-dev
  [ "$decoded/hyp.wer.json" -nt "$decoded/hyp.txt" ] || asr-kd score --ref "$ref" --hyp "$decoded/hyp.txt"
  if [ "$decoded/nbest.tuned.wer.json" -nt "$nbest" ] && [ "$decoded/nbest.tuned.wer.json" -nt "$valid_nbest" ]; then
    echo "$decoded/nbest.tuned.wer.json: $(grep -m1 '"wer"' "$decoded/nbest.tuned.wer.json" | tr -d ' ,') (scored before)"
  else
    asr-kd score --ref "$ref" --nbest "$nbest" "${grid[@]}" --tune "$exp/manifests/$train.tsv" "$valid_nbest"
  fi
}

# One lattice search + 100-best at one acoustic scale, unless OUT's N-best is newer than the
# posteriors and every file among the prior options.
search_once() {  # out dir, posteriors, acoustic scale, the decoder's prior options...
  local out=$1 scores=$2 scale=$3 option prior_files=()
  shift 3
  for option in "$@"; do [ ! -f "$option" ] || prior_files+=("$option"); done
  newer_than "$out/nbest.jsonl.gz" "$scores" "${prior_files[@]}" ||
    asr-kd decode --graph-dir "$exp/graph" --kind log-posteriors --scores "$scores" "$@" --acoustic-scale "$scale" \
      --beam "$beam" --max-active "$max_active" --lattice-beam 6 --nbest 100 --out "$out"
}

# The E1 tables of `asr-kd report table`, filled one system (row) at a time by e1_rows:
#   e1_table      dev frame accuracy, non-silence frame accuracy, WER at the weights tuned on the
#                 validation split with those weights, epochs trained / kept
#   e1_wer_table  WER at the search's weights, tuned on the validation split, best on dev
e1_table=() e1_wer_table=()
e1_metrics=(--metric "frame_acc:100=dev frame accuracy (%)"
            --metric "nonsilence.frame_acc:100=dev non-silence frame accuracy (%)"
            --metric "summary.wer:100=dev WER, weights tuned on validation (%)"
            --metric "scoring.setting.lm_weight=LMWT" --metric "scoring.setting.word_ins_penalty=WIP"
            --metric "scoring.setting.prior_scale=prior scale"
            --metric "epochs_run=epochs trained" --metric "kept_epoch=epoch kept")
e1_wer_metrics=(--metric "summary.wer:100=dev WER (%)" --metric "scoring.setting.lm_weight=LMWT"
                --metric "scoring.setting.word_ins_penalty=WIP" --metric "scoring.setting.prior_scale=prior scale")
e1_rows() {  # row label, eval dir (glob: one per seed), training dir glob or "" -> appends to both tables
  local label=$1 eval_dirs=$2 train_dirs=$3 scales search_lmwt="1 / search scale"
  read -ra scales <<< "${search_scales:-0.1}"
  [ ${#scales[@]} -ne 1 ] || search_lmwt=$(awk -v s="${scales[0]}" 'BEGIN { printf "%g", 1 / s }')
  e1_table+=(--row "$label=$eval_dirs/frame_acc.json" --row "$label=$eval_dirs/decode/nbest.tuned.wer.json")
  [ -z "$train_dirs" ] || e1_table+=(--row "$label=$train_dirs/summary.json")
  e1_wer_table+=(--row "$label: search's weights (LMWT $search_lmwt, WIP 0)=$eval_dirs/decode/hyp.wer.json"
                 --row "$label: tuned on validation=$eval_dirs/decode/nbest.tuned.wer.json"
                 --row "$label: best on dev=$eval_dirs/decode/nbest.best_on_dev.wer.json")
}
