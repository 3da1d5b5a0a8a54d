"""recipes/mini_librispeech/local/common.sh: option parsing, the job pool, the settings guard."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMON = REPO / "recipes" / "mini_librispeech" / "local" / "common.sh"


def bash(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``script`` (after sourcing common.sh) as a file, so that --help can read its header."""
    path = tmp_path / "script.sh"
    path.write_text(f"#!/usr/bin/env bash\n# A test script.\n# Second line.\nset -euo pipefail\n. {COMMON}\n{script}\n")
    return subprocess.run(["bash", str(path), *args], capture_output=True, text=True, cwd=tmp_path, timeout=60)


POOL = """
stage=0; stop_stage=100; jobs=2; log_dir=$PWD/log
parse_options "$@"
step() { echo "start $1" >> order.txt; sleep "$2"; echo "end $1" >> order.txt; }
"""


def test_parse_options_sets_declared_variables_only(tmp_path):
    script = 'foo_bar=1; other="a b"\nparse_options "$@"\necho "$foo_bar|$other"'
    assert bash(script, tmp_path, "--foo-bar", "x y", "--other=z").stdout == "x y|z\n"
    bad = bash(script, tmp_path, "--nope", "1")
    assert bad.returncode != 0 and "unknown option --nope" in bad.stderr
    assert "needs a value" in bash(script, tmp_path, "--foo-bar").stderr
    assert "unexpected argument 'stray'" in bash(script, tmp_path, "stray").stderr
    assert bash(script, tmp_path, "--PATH", "/x").returncode != 0  # only lower-case recipe variables
    assert bash(script, tmp_path, "--help").stdout == "A test script.\nSecond line.\n"


def test_jobs_run_in_dependency_order_at_most_jobs_at_a_time(tmp_path):
    script = POOL + """
job a 4 "" step a 0.4
job b 4 "" step b 0.1
job c 5 "b" step c 0.1
job d 5 "a c" step d 0
job skipped 9 "" step skipped 0
run_jobs
"""
    result = bash(script, tmp_path, "--stop-stage", "5")
    assert result.returncode == 0, result.stderr
    order = (tmp_path / "order.txt").read_text().split("\n")
    # a and b start together; c waits for b (not for a); d waits for both; stage 9 is not run
    assert sorted(order[:2]) == ["start a", "start b"] and order.index("start c") > order.index("end b")
    assert order.index("start d") > max(order.index("end a"), order.index("end c"))
    assert "skipped" not in "".join(order)
    rows = [line.split("\t") for line in (tmp_path / "log" / "jobs.tsv").read_text().splitlines()]
    assert sorted(r[0] for r in rows) == ["a", "b", "c", "d"] and all(r[4] == "0" for r in rows)
    # never more than 2 jobs at once: count overlapping [start, end) intervals at every start
    running, peak = 0, 0
    for event in order:
        running += 1 if event.startswith("start") else -1 if event.startswith("end") else 0
        peak = max(peak, running)
    assert peak == 2


def test_jobs_of_stages_not_run_count_as_done(tmp_path):
    script = POOL + 'job train 4 "" step train 0\njob decode 6 "train" step decode 0\nrun_jobs'
    assert bash(script, tmp_path, "--stage", "6").returncode == 0
    assert (tmp_path / "order.txt").read_text().split() == ["start", "decode", "end", "decode"]


def test_a_failing_job_stops_the_others_and_the_script(tmp_path):
    script = POOL + """
job long 4 "" eval 'sleep 30 & echo $! > sleep.pid; wait; touch finished'
job bad 4 "" eval 'until [ -f sleep.pid ]; do sleep 0.05; done; echo oops; exit 3'
job after 4 "bad" touch after
run_jobs
echo unreachable
"""
    result = bash(script, tmp_path)
    assert result.returncode != 0 and "job bad failed (exit 3)" in result.stderr and "oops" in result.stderr
    assert "unreachable" not in result.stdout
    assert not (tmp_path / "after").exists() and not (tmp_path / "finished").exists()
    sleeper = (tmp_path / "sleep.pid").read_text().strip()
    state = subprocess.run(["ps", "-o", "stat=", "-p", sleeper], capture_output=True, text=True).stdout.strip()
    assert state[:1] in ("", "Z")  # the long job's process group was stopped (gone, or a zombie not yet reaped)


def test_dependency_cycles_are_reported(tmp_path):
    script = POOL + 'job a 4 "b" true\njob b 4 "a" true\nrun_jobs'
    result = bash(script, tmp_path)
    assert result.returncode != 0 and "jobs wait for each other: a b" in result.stderr


def test_check_settings_refuses_to_mix_protocols(tmp_path):
    script = 'x=1; parse_options "$@"; check_settings settings.txt "alpha=$x" "store=dense"; echo ok'
    assert bash(script, tmp_path).stdout == "ok\n"
    assert bash(script, tmp_path).stdout == "ok\n"  # same settings: continue
    result = bash(script, tmp_path, "--x", "2")
    assert result.returncode != 0 and "made with other settings (> alpha=1 )" in result.stderr


def test_train_model_resumes_with_resume_among_the_options(tmp_path):
    # argparse rejects an option after a key=value override, so --resume must come before them
    script = """
show() { printf '%s|' "$@"; echo; }
train_model run show asr-kd distill train --config c.yaml --alpha 0.5 data.exp=e train.seed=1
mkdir run && touch run/checkpoint.pt
train_model run show asr-kd distill train --config c.yaml --alpha 0.5 data.exp=e train.seed=1
touch run/model.pt
train_model run show asr-kd train --config c.yaml
"""
    lines = bash(script, tmp_path).stdout.splitlines()
    assert lines == [
        "asr-kd|distill|train|--config|c.yaml|--alpha|0.5|data.exp=e|train.seed=1|out_dir=run|train.progress=false|",
        "asr-kd|distill|train|--resume|--config|c.yaml|--alpha|0.5|data.exp=e|train.seed=1|out_dir=run|"
        "train.progress=false|",
        "reusing run/model.pt",
    ]


# asr-kd stands in as a function that logs its arguments and makes the outputs the next step needs
# (after a pause longer than the file system's timestamp tick: the recipe compares mtimes)
FAKE_ASR_KD = """
exp=EXP train=train-clean-5 dev=dev-clean-2 beam=10 max_active=2000 search_scales=0.1
asr-kd() {
  printf '%s ' "$@" >> calls.txt; echo >> calls.txt
  sleep 0.02
  local prev="" a
  for a in "$@"; do
    [ "$prev" = --out ] && [ "$1" = decode ] && mkdir -p "$a" && touch "$a/nbest.jsonl.gz" "$a/hyp.txt"
    [ "$prev" = --out ] && { [ "$1" = evaluate ] || [ "$1" = priors ]; } && touch "$a"
    [ "$prev" = --out ] && [ "$1" = posteriors ] && mkdir -p "$a"  # a rerun writes no shard: mtime kept
    # validation WER 0.25 at search scale 0.2, 0.30 at any other
    [ "$prev" = --out ] && [ "$1" = score ] && { [[ $a == *_as0.2/* ]] && w=0.25 || w=0.30; } &&
      printf '{\n  "summary": {\n    "wer": %s,\n' "$w" > "$a.wer.json"
    prev=$a
  done
}
"""


def test_evaluate_system_tunes_on_the_validation_split_and_only_scores_dev(tmp_path):
    script = FAKE_ASR_KD + """
evaluate_system sys m.pt
evaluate_system sys m.pt
"""
    assert bash(script, tmp_path).returncode == 0
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    first, again = calls[:8], calls[8:]
    assert [c.split()[0] for c in first] == ["posteriors", "posteriors", "evaluate", "decode", "decode", "score",
                                             "score", "score"]
    assert "--subset dev-clean-2" in first[2]
    assert "--subset train-clean-5 --utts EXP/splits/train-clean-5/valid.txt --out sys/valid_logpost" in first[1]
    decodes = [c for c in first if c.startswith("decode")]
    assert "--scores sys/logpost" in decodes[0] and "--scores sys/valid_logpost" in decodes[1]
    assert all("--nbest 100" in c and "--beam 10 --max-active 2000" in c for c in decodes)
    tuned = [c for c in first if "--tune" in c]
    assert tuned == [c for c in tuned if "--ref EXP/manifests/dev-clean-2.tsv --nbest sys/decode/nbest.jsonl.gz" in c]
    assert len(tuned) == 1 and "--tune EXP/manifests/train-clean-5.tsv sys/valid_decode/nbest.jsonl.gz" in tuned[0]
    assert any("--best-on-dev" in c for c in first) and any("--hyp sys/decode/hyp.txt" in c for c in first)
    # a rerun redoes neither the frame accuracy nor the searches (posteriors skip their own finished shards)
    assert [c.split()[0] for c in again] == ["posteriors", "posteriors", "score", "score", "score"]


def test_evaluate_system_chooses_the_search_scale_on_the_validation_split(tmp_path):
    script = FAKE_ASR_KD + """
search_scales="0.1 0.2"
evaluate_system sys m.pt
: > calls.txt
evaluate_system sys m.pt
"""
    first = bash(script.replace(": > calls.txt", "cp calls.txt first.txt; : > calls.txt"), tmp_path)
    assert first.returncode == 0, first.stderr
    calls = (tmp_path / "first.txt").read_text().splitlines()
    decodes = [c for c in calls if c.startswith("decode")]
    # the validation split at both scales, dev once, at the scale of the lower validation WER
    assert len(decodes) == 3
    assert "--scores sys/valid_logpost" in decodes[0] and "--acoustic-scale 0.1" in decodes[0]
    assert "--out sys/valid_decode_as0.1" in decodes[0] and "--out sys/valid_decode_as0.2" in decodes[1]
    assert "--scores sys/logpost" in decodes[2] and "--acoustic-scale 0.2 " in decodes[2]
    assert "--out sys/decode_as0.2" in decodes[2]
    on_valid = [c for c in calls if "--utts EXP/splits/train-clean-5/valid.txt --nbest" in c]
    assert len(on_valid) == 2 and all("--ref EXP/manifests/train-clean-5.tsv" in c for c in on_valid)
    assert (tmp_path / "sys" / "decode").resolve() == (tmp_path / "sys" / "decode_as0.2").resolve()
    assert (tmp_path / "sys" / "valid_decode").resolve() == (tmp_path / "sys" / "valid_decode_as0.2").resolve()
    tuned = [c for c in calls if "--tune" in c]
    assert len(tuned) == 1 and "--nbest sys/decode/nbest.jsonl.gz" in tuned[0]
    assert "sys/valid_decode/nbest.jsonl.gz" in tuned[0]
    assert (tmp_path / "sys" / "search_scale.tsv").read_text().splitlines()[1:] == ["0.1\t0.30", "0.2\t0.25"]
    assert "sys: search acoustic scale 0.2 (validation WER 0.25" in first.stdout
    again = (tmp_path / "calls.txt").read_text().splitlines()
    assert not [c for c in again if c.startswith("decode")]  # a rerun searches nothing again


def test_several_search_scales_refuse_a_single_scale_decode(tmp_path):
    script = FAKE_ASR_KD + """
evaluate_system sys m.pt
search_scales="0.1 0.2"
evaluate_system sys m.pt
"""
    result = bash(script, tmp_path)
    assert result.returncode != 0
    assert "sys/decode is a search at one scale (an earlier --search-scales): rename it to decode_as<its scale>" \
        in result.stderr


def test_evaluate_system_redoes_what_a_retrained_models_posteriors_feed(tmp_path):
    # `asr-kd posteriors` redoes the dev shards of a model retrained at the same path (the store's
    # mtime moves): the frame accuracy, the dev search and its scorings follow, the validation search not
    script = FAKE_ASR_KD + """
evaluate_system sys m.pt
sleep 0.02; touch sys/logpost; : > calls.txt
evaluate_system sys m.pt
"""
    assert bash(script, tmp_path).returncode == 0
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["posteriors", "posteriors", "evaluate", "decode", "score", "score",
                                             "score"]
    assert "--scores sys/logpost" in calls[3]


def test_evaluate_own_priors_decodes_with_the_validation_mean_posterior(tmp_path):
    script = FAKE_ASR_KD + """
mkdir sys
evaluate_own_priors sys
"""
    assert bash(script, tmp_path).returncode == 0
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["priors", "decode", "decode", "score", "score", "score"]
    assert "--scores sys/valid_logpost --out sys/own_priors.npy" in calls[0]  # never dev
    assert all("--log-priors sys/own_priors.npy" in c and "--tree-dir" not in c for c in calls[1:3])
    assert "--scores sys/logpost" in calls[1] and "--out sys/decode_own_priors" in calls[1]
    assert "--scores sys/valid_logpost" in calls[2] and "--out sys/valid_decode_own_priors" in calls[2]
    tuned = [c for c in calls if "--tune" in c]
    assert len(tuned) == 1 and "--nbest sys/decode_own_priors/nbest.jsonl.gz" in tuned[0]
    assert "sys/valid_decode_own_priors/nbest.jsonl.gz" in tuned[0]


def test_evaluate_own_priors_redoes_priors_and_searches_after_new_validation_posteriors(tmp_path):
    script = FAKE_ASR_KD + """
mkdir -p sys/valid_logpost sys/logpost
evaluate_own_priors sys
: > calls.txt; evaluate_own_priors sys; cp calls.txt again.txt
sleep 0.02; touch sys/valid_logpost; : > calls.txt
evaluate_own_priors sys
"""
    assert bash(script, tmp_path).returncode == 0
    again = (tmp_path / "again.txt").read_text().splitlines()
    assert [c.split()[0] for c in again] == ["score", "score", "score"]  # nothing newer: only the scorings
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["priors", "decode", "decode", "score", "score", "score"]
