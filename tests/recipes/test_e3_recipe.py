"""recipes/mini_librispeech/local/e3_specialists.sh: what each --specialist-valid trains the specialists on."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
E3 = REPO / "recipes" / "mini_librispeech" / "local" / "e3_specialists.sh"


@pytest.fixture
def specialist_calls(tmp_path, run_logged):
    """Stages 1-2 (unless the arguments say other stages; a later --stop-stage wins) on an experiment with
    E1's member 0 -> the asr-kd calls of a run that must succeed."""
    exp = tmp_path / "exp"
    (exp / "e1" / "ensemble" / "member0").mkdir(parents=True)
    (exp / "e1" / "ensemble" / "member0" / "model.pt").touch()
    (exp / "splits" / "train-clean-5").mkdir(parents=True)
    (exp / "splits" / "train-clean-5" / "train.txt").write_text("a-1-0001\n")

    def run(*args: str) -> list[str]:
        result, calls = run_logged(E3, "--exp", str(exp), "--num-clusters", "2", "--stop-stage", "2",
                                   "--out", str(tmp_path / "results"), *args)
        assert result.returncode == 0, result.stderr
        return calls

    return run


def test_specialists_validate_on_the_experiments_split_by_default(tmp_path, specialist_calls):
    calls = specialist_calls()
    trains = [c for c in calls if c.startswith("specialists train")]
    assert len(trains) == 2 and not any(c.startswith("valid-split") for c in calls)
    assert not any("data.train_utts" in c or "data.valid_utts" in c for c in trains)


def test_speaker_disjoint_validation_is_a_nested_split_the_specialists_train_outside(tmp_path, specialist_calls):
    calls = specialist_calls("--specialist-valid", "speakers", "--name", "e3_spk")
    split = tmp_path / "exp" / "e3_spk" / "valid_speakers"
    first_train = next(i for i, c in enumerate(calls) if c.startswith("specialists train"))
    splits = [i for i, c in enumerate(calls) if c.startswith("valid-split")]
    assert len(splits) == 1 and splits[0] < first_train
    assert (f"--utts {tmp_path}/exp/splits/train-clean-5/train.txt --stratify held-out-speakers --fraction 0.15 "
            f"--out {split}") in calls[splits[0]]
    trains = [c for c in calls if c.startswith("specialists train")]
    assert len(trains) == 2 and all(f"data.train_utts={split}/train.txt data.valid_utts={split}/valid.txt" in c
                                    for c in trains)
    assert "specialist_valid=speakers 0.15" in (tmp_path / "exp" / "e3_spk" / "settings.txt").read_text()


def test_an_unknown_validation_kind_is_one_clear_line(tmp_path, run_logged):
    result, _ = run_logged(E3, "--exp", str(tmp_path), "--specialist-valid", "dev")
    assert result.returncode != 0 and "unknown --specialist-valid dev (split or speakers)" in result.stderr


def test_students_of_the_combination_have_a_control_taught_by_the_generalist_alone(tmp_path, specialist_calls):
    calls = specialist_calls("--stage", "5", "--stop-stage", "5", "--seeds", "0 1")
    e3 = tmp_path / "exp" / "e3"
    generalist = tmp_path / "exp" / "e1" / "ensemble" / "member0" / "model.pt"
    dumps = [c for c in calls if c.startswith(("specialists dump", "distill dump-teacher"))]
    assert len(dumps) == 2 and f"--out {e3}/teacher_T2" in dumps[0]
    assert f"--teacher {generalist} " in dumps[1] and f"--out {e3}/generalist_teacher_T2" in dumps[1]
    assert all(f"--utts {tmp_path}/exp/splits/train-clean-5/train.txt" in c for c in dumps)  # never validation
    students = [c for c in calls if c.startswith("distill train")]
    assert len(students) == 4
    kinds = ((f"{e3}/teacher_T2", f"{e3}/students"), (f"{e3}/generalist_teacher_T2", f"{e3}/generalist_students"))
    for store, out in kinds:
        mine = [c for c in students if f"--store {store} " in c]
        assert [c.split("out_dir=")[1].split()[0] for c in mine] == [f"{out}/seed0", f"{out}/seed1"]
        assert all("--alpha 0.666667" in c and "--temperature 2" in c for c in mine)


def test_every_system_is_decoded_with_weights_tuned_on_the_validation_split(tmp_path, specialist_calls):
    calls = specialist_calls("--stage", "3", "--stop-stage", "6", "--seeds", "0")
    e3, split = tmp_path / "exp" / "e3", tmp_path / "exp" / "splits" / "train-clean-5"
    combined = [c for c in calls if c.startswith("specialists evaluate")]
    assert len(combined) == 2 and "--subset dev-clean-2 " in combined[0]
    assert f"--subset train-clean-5 --utts {split}/valid.txt --posteriors-out {e3}/eval/specialists/valid_logpost" \
        in combined[1]
    systems = ("generalist", "specialists", "student_seed0", "generalist_student_seed0")
    for system in systems:
        searched = [c for c in calls if c.startswith("decode ") and f"--scores {e3}/eval/{system}/" in c]
        assert {c.split("--scores ")[1].split()[0] for c in searched} == \
            {f"{e3}/eval/{system}/logpost", f"{e3}/eval/{system}/valid_logpost"}, system
        tuned = [c for c in calls if c.startswith("score ") and f"--nbest {e3}/eval/{system}/decode/" in c
                 and "--tune" in c]
        assert len(tuned) == 1 and f"{e3}/eval/{system}/valid_decode/nbest.jsonl.gz" in tuned[0], system
    # the validation split is never a store's or a student's training data, only what the weights are tuned on
    assert not any(c.startswith(("specialists dump", "distill")) and "valid.txt" in c for c in calls)
