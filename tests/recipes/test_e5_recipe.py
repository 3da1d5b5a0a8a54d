"""recipes/mini_librispeech/local/e5_cross_arch.sh: the reverse direction (stages 5-7), a conformer
student of run.sh's DNN ensemble with stage 1's conformer members as its hard-label control."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
E5 = REPO / "recipes" / "mini_librispeech" / "local" / "e5_cross_arch.sh"


def _experiment(tmp_path: Path, dnn_store: bool = True) -> Path:
    exp = tmp_path / "exp"
    (exp / "splits" / "train-clean-5").mkdir(parents=True)
    (exp / "splits" / "train-clean-5" / "train.txt").write_text("u1\n")
    if dnn_store:
        (exp / "e1" / "teacher_T2").mkdir(parents=True)
    return exp


def test_the_reverse_student_is_a_conformer_taught_by_the_dnn_ensembles_store(tmp_path, run_logged):
    exp = _experiment(tmp_path)
    result, calls = run_logged(E5, "--exp", str(exp), "--members", "0", "--reverse-seeds", "3", "--stage", "5",
                               "--stop-stage", "5", "--teacher-overrides", "model.preset=tiny")
    assert result.returncode == 0, result.stderr
    assert len(calls) == 1 and calls[0].startswith("distill train")
    for word in ("--config recipes/mini_librispeech/conf/conformer_mini.yaml", f"--store {exp}/e1/teacher_T2 ",
                 "--alpha 0.666667", "train.seed=3", "model.preset=tiny", f"out_dir={exp}/e5/reverse_T2/seed3"):
        assert word in calls[0], word


def test_the_reverse_stages_need_the_dnn_store_and_are_not_in_the_default_run(tmp_path, run_logged):
    exp = _experiment(tmp_path, dnn_store=False)
    result, calls = run_logged(E5, "--exp", str(exp), "--stage", "5", "--stop-stage", "6")
    assert result.returncode != 0 and calls == []
    assert f"{exp}/e1/teacher_T2 is missing: run run.sh stages 0-5 first" in result.stderr
    # the default stages 1-4 train no reverse student (stop at stage 2: the fake asr-kd writes nothing)
    (exp / "e5" / "ensemble").mkdir(parents=True)
    result, calls = run_logged(E5, "--exp", str(exp), "--members", "0", "--seeds", "0", "--stop-stage", "2")
    assert result.returncode == 0, result.stderr
    assert calls and not [c for c in calls if "/reverse_T" in c]


def test_the_reverse_table_compares_with_the_hard_label_conformers(tmp_path, run_logged):
    exp = _experiment(tmp_path)
    out = tmp_path / "results"
    result, calls = run_logged(E5, "--exp", str(exp), "--members", "0", "--stage", "7", "--out", str(out))
    assert result.returncode != 0 and "--stage 7 is after --stop-stage 4: nothing to run" in result.stderr
    result, calls = run_logged(E5, "--exp", str(exp), "--members", "0", "--stage", "7", "--stop-stage", "7",
                               "--out", str(out))
    assert result.returncode == 0, result.stderr
    table = next(c for c in calls if c.startswith("report table") and "--name e5_cross_arch_reverse " in c + " ")
    for row in ("DNN members=", "DNN ensemble=", f"conformer members={exp}/e5/eval/conformer*/frame_acc.json",
                f"conformer student T2 of the DNN ensemble={exp}/e5/eval/reverse_T2_seed*/frame_acc.json"):
        assert row in table, row
    recovery = next(c for c in calls if c.startswith("report recovery"))
    assert "--low conformer members --high DNN ensemble" in recovery
    assert any(c.startswith("report significance") and "e5_cross_arch_reverse_significance.md" in c for c in calls)
