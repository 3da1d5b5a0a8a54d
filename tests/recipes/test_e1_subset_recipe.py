"""recipes/mini_librispeech/local/e1_subset_students.sh: the ensemble of some members, its store, its students."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "recipes" / "mini_librispeech" / "local" / "e1_subset_students.sh"


@pytest.fixture
def subset_calls(tmp_path, run_logged):
    """Stage 5 on run.sh's members -> (the completed process, the asr-kd calls)."""
    (tmp_path / "exp" / "e1" / "ensemble").mkdir(parents=True)
    return lambda *args: run_logged(SCRIPT, "--exp", str(tmp_path / "exp"), "--member-ids", "0 2", "--stop-stage",
                                    "5", "--out", str(tmp_path / "results"), *args)


def test_without_seeds_only_the_ensemble_and_its_store_are_made(tmp_path, subset_calls):
    result, calls = subset_calls("--seeds", "")
    assert result.returncode == 0, result.stderr
    ensemble = (tmp_path / "exp" / "e1" / "ensemble" / "ensemble_m01.json").read_text()
    assert '"members": ["member0/model.pt", "member2/model.pt"]' in ensemble
    assert len(calls) == 1 and calls[0].startswith("distill dump-teacher")
    assert f"--out {tmp_path}/exp/e1/m01/teacher_T2" in calls[0]
    assert not list((tmp_path / "results").glob("*"))  # no table without students


def test_each_seed_trains_a_student_of_that_store_and_the_table_is_made(tmp_path, subset_calls):
    result, calls = subset_calls("--seeds", "0 1")
    students = [c for c in calls if c.startswith("distill train")]
    assert len(students) == 2 and all(f"--store {tmp_path}/exp/e1/m01/teacher_T2 " in c for c in students)
    assert any(c.startswith("report table") for c in calls)
