"""recipes/mini_librispeech/local/e1_results.sh (run.sh stage 7): the validation and significance
tables are written by the stage, not by hand."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
E1_RESULTS = REPO / "recipes" / "mini_librispeech" / "local" / "e1_results.sh"


def test_stage_7_writes_the_validation_table_and_the_paired_bootstrap_per_temperature(tmp_path, run_logged):
    exp, out = tmp_path / "exp", tmp_path / "results"
    for T in (1, 2):
        (exp / "e1" / f"teacher_T{T}").mkdir(parents=True)
    result, calls = run_logged(E1_RESULTS, "--exp", str(exp), "--out", str(out), "--temperatures", "1 2")
    assert result.returncode == 0, result.stderr
    e1 = exp / "e1"
    valid = next(c for c in calls if c.startswith("report table") and c.endswith("--name e1_valid"))
    for row in (f"baseline={e1}/ensemble/member*/summary.json", f"student T1={e1}/student_T1/seed*/summary.json",
                f"student T2={e1}/student_T2/seed*/summary.json", "valid_frame_acc:100=validation frame accuracy"):
        assert row in valid, row
    significance = next(c for c in calls if c.startswith("report significance"))
    assert significance.endswith(f"--out {out}/e1_significance.md")
    members = f"members={e1}/eval/baseline_member*/decode/nbest.tuned.wer.json"
    ensemble = f"ensemble={e1}/eval/ensemble/decode/nbest.tuned.wer.json"
    students = f"students T2={e1}/eval/student_T2_seed*/decode/nbest.tuned.wer.json"
    assert significance.count("--compare") == 5  # ensemble vs members, and each T's students vs both
    for pair in (f"{members} {ensemble}", f"{members} {students}", f"{ensemble} {students}"):
        assert f"--compare {pair}" in significance, pair
