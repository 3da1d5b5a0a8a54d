"""recipes/mini_librispeech/local/e4_compression.sh: how each --teachings trains the small students."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
E4 = REPO / "recipes" / "mini_librispeech" / "local" / "e4_compression.sh"


@pytest.fixture
def e4_calls(tmp_path, run_logged):
    """Stage 1 (unless the arguments say other stages) on an experiment with E1's ensemble and
    (``store``) its teacher store -> (the completed process, the asr-kd calls)."""
    exp = tmp_path / "exp"

    def run(*args: str, store: bool = True) -> tuple[subprocess.CompletedProcess, list[str]]:
        if store:
            (exp / "e1" / "teacher_T2").mkdir(parents=True, exist_ok=True)
        (exp / "e1" / "ensemble").mkdir(parents=True, exist_ok=True)
        (exp / "e1" / "ensemble" / "ensemble.json").write_text('{"members": []}\n')
        return run_logged(E4, "--exp", str(exp), "--hidden-dims", "64", "--seeds", "0", "--stop-stage", "1",
                          "--out", str(tmp_path / "results"), *args)

    return run


def test_the_default_student_learns_from_the_e1_store(tmp_path, e4_calls):
    result, calls = e4_calls()
    assert result.returncode == 0, result.stderr
    students = [c for c in calls if c.startswith("distill train")]
    assert len(students) == 1 and f"--store {tmp_path}/exp/e1/teacher_T2 " in students[0]
    assert f"out_dir={tmp_path}/exp/e4/h64/student_T2/seed0" in students[0]
    assert len([c for c in calls if c.startswith("train ")]) == 1  # the hard-label net of the same size


def test_consistent_teaching_runs_the_ensemble_on_the_augmented_batches_of_a_cosine_schedule(tmp_path, e4_calls):
    result, calls = e4_calls("--teachings", "store consistent", "--consistent-epochs", "7")
    assert result.returncode == 0, result.stderr
    students = [c for c in calls if c.startswith("distill train")]
    assert len(students) == 2
    consistent = next(c for c in students if "--online-teacher" in c)
    assert f"--online-teacher {tmp_path}/exp/e1/ensemble/ensemble.json " in consistent
    for word in ("optim.schedule=cosine", "train.epochs=7", "train.keep=last", "augment.freq_masks=2",
                 "--alpha 0.666667", "model.overrides.hidden_dim=64",
                 f"out_dir={tmp_path}/exp/e4/h64/consistent_T2/seed0"):
        assert word in consistent, word
    settings = (tmp_path / "exp" / "e4" / "consistent" / "settings.txt").read_text()
    assert "epochs=7 cosine" in settings
    # another schedule in the same experiment is refused, not mixed into the same rows
    again, _ = e4_calls("--teachings", "consistent", "--consistent-epochs", "9")
    assert again.returncode != 0 and "consistent/settings.txt: this experiment was made with other" in again.stderr


def test_consistent_teaching_alone_needs_no_store_but_the_default_does(tmp_path, e4_calls):
    result, calls = e4_calls("--teachings", "consistent", store=False)
    assert result.returncode == 0, result.stderr
    assert [c for c in calls if c.startswith("distill train")][0].count("--online-teacher") == 1
    result, _ = e4_calls(store=False)
    assert result.returncode != 0 and "teacher_T2 is missing: run run.sh stage 5" in result.stderr


def test_an_unknown_teaching_is_one_clear_line(tmp_path, e4_calls):
    result, calls = e4_calls("--teachings", "online")
    assert result.returncode != 0 and "unknown --teachings online (store or consistent)" in result.stderr
    assert calls == []


def test_without_wer_nothing_is_decoded_and_the_table_has_frame_accuracy_only(tmp_path, e4_calls):
    (tmp_path / "results").mkdir()
    for table in ("e4_compression.md", "e4_compression_recovery.md"):  # what the logging asr-kd does not write
        (tmp_path / "results" / table).write_text("")
    exp = tmp_path / "exp"
    for member in (0, 1):  # run.sh stage 4 only: no stage-6 evaluation of the members or the ensemble
        (exp / "e1" / "ensemble" / f"member{member}").mkdir(parents=True)
        (exp / "e1" / "ensemble" / f"member{member}" / "model.pt").write_text("")
    (exp / "e1" / "eval" / "baseline_member1").mkdir(parents=True)
    (exp / "e1" / "eval" / "baseline_member1" / "frame_acc.json").write_text("{}\n")  # evaluated already
    os.utime(exp / "e1" / "ensemble" / "member1" / "model.pt", (1, 1))  # ... after its model was written
    result, calls = e4_calls("--teachings", "consistent", "--wer", "false", "--stop-stage", "3",
                             store=False)
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls if c.startswith(("decode", "score"))]
    evaluated = [c for c in calls if c.startswith("evaluate ")]
    assert len(evaluated) == 4 and all("--subset dev-clean-2" in c for c in evaluated)  # hard, consistent, refs
    assert any(f"--model {exp}/e1/ensemble/member0/model.pt " in c
               and f"--out {exp}/e1/eval/baseline_member0/frame_acc.json" in c for c in evaluated)
    assert any(f"--model {exp}/e1/ensemble/ensemble.json " in c
               and f"--out {exp}/e1/eval/ensemble/frame_acc.json" in c for c in evaluated)
    table = next(c for c in calls if c.startswith("report table"))
    assert f"hard, hidden 64={tmp_path}/exp/e4/eval/h64_hard_seed*/frame_acc.json" in table
    assert f"baseline={tmp_path}/exp/e1/eval/baseline_member*/frame_acc.json" in table
    assert "/decode" not in table
    assert "summary.wer" not in table and "scoring.setting" not in table and "cpu_rtf" not in table
    assert "--metric frame_acc:100=dev frame accuracy (%)" in table
    assert "student T2=" not in table  # no E1 students in this experiment: the row is left out, not an error
    plots = [c for c in calls if c.startswith("report tradeoff")]
    assert len(plots) == 1 and "frame_acc_vs_size.png" in plots[0]


def test_wer_takes_true_or_false(tmp_path, e4_calls):
    result, calls = e4_calls("--wer", "no")
    assert result.returncode != 0 and "--wer no: true or false" in result.stderr and calls == []


def test_the_full_size_students_are_a_reference_row_when_they_exist(tmp_path, e4_calls):
    (tmp_path / "results").mkdir()
    for table in ("e4_compression.md", "e4_compression_recovery.md"):
        (tmp_path / "results" / table).write_text("")
    (tmp_path / "exp" / "e1" / "eval" / "student_T2_seed0").mkdir(parents=True)
    (tmp_path / "exp" / "e1" / "eval" / "student_T2_seed0" / "frame_acc.json").write_text("{}\n")
    result, calls = e4_calls("--stage", "3", "--stop-stage", "3", "--wer", "false")
    assert result.returncode == 0, result.stderr
    table = next(c for c in calls if c.startswith("report table"))
    assert f"student T2={tmp_path}/exp/e1/eval/student_T2_seed*/frame_acc.json" in table
    recovery = next(c for c in calls if c.startswith("report recovery"))
    assert "--rows student T2 hard, hidden 64 student T2, hidden 64 --out" in recovery


def test_with_wer_the_table_has_the_wer_scoring_and_search_cost_columns(tmp_path, e4_calls):
    (tmp_path / "results").mkdir()
    for table in ("e4_compression.md", "e4_compression_recovery.md"):
        (tmp_path / "results" / table).write_text("")
    result, calls = e4_calls("--stage", "3", "--stop-stage", "3")
    assert result.returncode == 0, result.stderr
    table = next(c for c in calls if c.startswith("report table"))
    for metric in ("summary.wer:100=", "scoring.setting.lm_weight=", "cpu_rtf=", "valid_frame_acc:100="):
        assert f"--metric {metric}" in table, metric
    assert f"hard, hidden 64={tmp_path}/exp/e4/eval/h64_hard_seed*/decode/nbest.tuned.wer.json" in table
    assert len([c for c in calls if c.startswith("report tradeoff")]) == 2  # frame accuracy and WER vs size


def test_a_reference_evaluation_older_than_its_model_is_redone_not_reused(tmp_path, e4_calls):
    (tmp_path / "results").mkdir()
    for table in ("e4_compression.md", "e4_compression_recovery.md"):
        (tmp_path / "results" / table).write_text("")
    member = tmp_path / "exp" / "e1" / "ensemble" / "member0"
    member.mkdir(parents=True)
    (member / "model.pt").write_text("")
    stale = tmp_path / "exp" / "e1" / "eval" / "baseline_member0" / "frame_acc.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}\n")
    os.utime(stale, (1, 1))  # written before the model it describes was retrained
    result, calls = e4_calls("--teachings", "consistent", "--wer", "false", "--stage", "2",
                             "--stop-stage", "2", store=False)
    assert result.returncode == 0, result.stderr
    assert any(f"--model {member}/model.pt " in c and "--subset dev-clean-2" in c
               for c in calls if c.startswith("posteriors "))  # system_posteriors of the member, again
