"""recipes/mini_librispeech: run.sh's options and settings guard (fast), and the whole recipe plus the
E1 study on the tiny data with the protocol's invariants checked (slow)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asr_kd.distillation.teacher_store import TeacherStore
from asr_kd.models import load

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "recipes" / "mini_librispeech"
TINY = ["--model-conf", "recipes/mini_librispeech/conf/dnn_tiny.yaml", "--num-senones", "150",
        "--tree-args", "--mono-iters 2 --tri-iters 1 --min-leaf-frames 20", "--recovery", "false",
        "--lm", "train"]


def run_script(script: Path, *args: str) -> subprocess.CompletedProcess:
    """Run a recipe script with this environment's ``asr-kd`` first on PATH, importing this checkout."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(["bash", str(script), *args], cwd=REPO, env=env, capture_output=True, text=True)


def test_help_and_unknown_options():
    result = run_script(MINI / "run.sh", "--help")
    assert result.returncode == 0 and "validation set held out of the TRAINING data" in result.stdout
    assert "Stages (--stage N --stop-stage M)" in result.stdout
    result = run_script(MINI / "run.sh", "--temperature", "2")
    assert result.returncode != 0 and "unknown option --temperature" in result.stderr
    result = run_script(MINI / "run.sh", "--model-conf", "conf/dnn_quick.yaml", "--exp", "/nonexistent/exp")
    assert result.returncode != 0
    assert "conf/dnn_quick.yaml: no such config file (paths are relative to the repository root" in result.stderr


def test_an_experiment_refuses_other_settings(tmp_path):
    nothing = ["--exp", str(tmp_path), "--stage", "99", "--stop-stage", "99"]
    assert run_script(MINI / "run.sh", *nothing).returncode == 0
    assert "alpha=0.666667" in (tmp_path / "settings.txt").read_text()
    result = run_script(MINI / "run.sh", *nothing, "--alpha", "1")
    assert result.returncode != 0 and "made with other settings" in result.stderr


def test_e2_consistent_teaching_keeps_its_own_settings(tmp_path):
    nothing = ["--exp", str(tmp_path), "--stage", "99", "--stop-stage", "99"]
    assert run_script(MINI / "run.sh", *nothing).returncode == 0
    settings = (tmp_path / "e2" / "consistent" / "settings.txt").read_text()
    assert "epochs=100 cosine" in settings and "augment.freq_masks=2" in settings
    result = run_script(MINI / "run.sh", *nothing, "--e2-augment", "augment.freq_masks=1")
    assert result.returncode != 0 and "e2/consistent/settings.txt: this experiment was made with other" in result.stderr
    # an experiment made without the system (or before it existed) does not gain that file
    other = tmp_path / "without"
    assert run_script(MINI / "run.sh", "--exp", str(other), "--stage", "99", "--stop-stage", "99",
                      "--e2-consistent-epochs", "0").returncode == 0
    assert (other / "settings.txt").exists() and not (other / "e2" / "consistent").exists()


def test_students_are_wider_only_beside_the_default_member_config(tmp_path):
    def students(*args: str) -> tuple[str, str]:
        """-> (student config, student overrides) recorded in the experiment's settings.txt."""
        exp = tmp_path / str(len(list(tmp_path.iterdir())))
        nothing = ["--exp", str(exp), "--stage", "99", "--stop-stage", "99"]
        assert run_script(MINI / "run.sh", *nothing, *args).returncode == 0
        line = next(x for x in (exp / "settings.txt").read_text().splitlines() if x.startswith("student_conf="))
        config, _digest, *overrides = line.split("=", 1)[1].split()
        return config, " ".join(overrides)

    conf = "recipes/mini_librispeech/conf"
    # 3 x 512 students of the 3 x 256 members
    assert students() == (f"{conf}/dnn_mini_256.yaml", "model.overrides.hidden_dim=512")
    assert students("--model-conf", f"{conf}/dnn_tiny.yaml") == (f"{conf}/dnn_tiny.yaml", "")
    assert students("--student-conf", f"{conf}/dnn_mini.yaml") == (f"{conf}/dnn_mini.yaml", "")
    assert students("--student-overrides", "model.overrides.hidden_dim=384") == (
        f"{conf}/dnn_mini_256.yaml", "model.overrides.hidden_dim=384")


def test_the_demo_shows_committed_results_that_exist():
    script = (REPO / "recipes" / "tiny" / "run.sh").read_text()
    shown = re.findall(r'"\$mini/([^"]+)"', script)
    assert shown, "recipes/tiny/run.sh shows no committed result"
    for name in shown:
        assert (MINI / "results" / name).is_file(), name


def models_under(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("model.pt") if (p.parent / "train_utts.txt").exists())


@pytest.mark.slow
def test_recipe_and_study_on_the_tiny_data_keep_validation_out_of_everything(tiny_root, tmp_path):
    exp = tmp_path / "exp"
    result = run_script(MINI / "run.sh", "--root", str(tiny_root), "--exp", str(exp), "--results", str(exp / "results"),
                        *TINY, "--members", "2", "--seeds", "0 1", "--e2-consistent-epochs", "3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    split = exp / "splits" / "train-clean-5"
    valid = set((split / "valid.txt").read_text().split())
    train = set((split / "train.txt").read_text().split())
    assert valid and train and not valid & train
    digest = json.loads((split / "split.json").read_text())["valid_sha256"]

    # every model of run.sh (members, students, E2's four systems) validated on that split only
    models = models_under(exp / "e1") + models_under(exp / "e2")
    assert len(models) == 2 + 2 + 4 * 2
    for run in models:
        assert not valid & set((run / "train_utts.txt").read_text().split()), run
        _, meta = load(run / "model.pt")
        assert meta["training"]["validation"]["list_sha256"] == digest, run
        assert meta["training"]["validation"]["held_out_of_training"] is True
    # the teacher stores hold training utterances only; the LM left the validation transcripts out
    assert set(TeacherStore(exp / "e1" / "teacher_T2").keys()) == train
    for seed in (0, 1):
        e2_utts = set((exp / "e2" / "hard" / f"seed{seed}" / "train_utts.txt").read_text().split())
        assert set(TeacherStore(exp / "e2" / f"teacher_seed{seed}").keys()) == e2_utts
    assert f"({len(valid)} in {split / 'valid.txt'} left out)" in (exp / "log" / "lm.log").read_text()
    for seed in (0, 1):  # consistent teaching: E2's utterances, augmented inputs, the 100% model as online teacher
        consistent = exp / "e2" / "consistent" / f"seed{seed}"
        hard_utts = (exp / "e2" / "hard" / f"seed{seed}" / "train_utts.txt").read_text()
        assert (consistent / "train_utts.txt").read_text() == hard_utts
        _, meta = load(consistent / "model.pt")
        assert meta["training"]["augment"]["freq_masks"] == 2
        assert json.loads((consistent / "summary.json").read_text())["epochs_run"] == 3
        online = json.loads((consistent / "distillation.json").read_text())["online_teacher"]
        assert online == [str(exp / "e1" / "ensemble" / "member0" / "model.pt")]
    assert "3% soft targets, consistent teaching" in (exp / "results" / "e2_dev.md").read_text()
    for name in ("e1.md", "e2_dev.md", "e2_train.md", "e2_epochs.md", "e1_learning_curves.png"):
        assert (exp / "results" / name).exists(), name
    assert not (exp / "results" / "e1_recovery.md").exists()  # --recovery false
    assert "epochs trained" in (exp / "results" / "e1.md").read_text()
    assert "validation frame accuracy (%)" in (exp / "results" / "e1_valid.md").read_text()
    assert "students T2 vs members" in (exp / "results" / "e1_significance.md").read_text()
    stages = result.stdout[result.stdout.index("stage "):]
    assert "E1-store+students" in stages and "E2" in stages  # the wall time per stage

    # decoding with each system's own mean-posterior priors (local/e1_priors.sh)
    priors = run_script(MINI / "local" / "e1_priors.sh", "--exp", str(exp), "--out", str(exp / "results"))
    assert priors.returncode == 0, priors.stdout[-3000:] + priors.stderr[-3000:]
    assert "student T2, own priors" in (exp / "results" / "e1_priors.md").read_text()
    assert (exp / "e1" / "eval" / "student_T2_seed1" / "decode_own_priors" / "nbest.tuned.wer.json").exists()

    # a rerun finds everything done
    again = run_script(MINI / "run.sh", "--root", str(tiny_root), "--exp", str(exp), "--results",
                       str(exp / "results"), *TINY, "--members", "2", "--seeds", "0 1", "--e2-consistent-epochs", "3",
                       "--stage", "4")
    assert again.returncode == 0 and "reusing" in (exp / "log" / "member0.log").read_text()

    # the study's protocol and alpha parts (4-epoch ensembles of its own, the dev-quarter ablation)
    study = run_script(MINI / "local" / "e1_study.sh", "--exp", str(exp), "--out", str(exp / "results"),
                       "--model-conf", "recipes/mini_librispeech/conf/dnn_tiny.yaml", "--members", "2",
                       "--seeds", "0", "--parts", "protocol alpha", "--recovery", "false")
    assert study.returncode == 0, study.stdout[-3000:] + study.stderr[-3000:]
    table = (exp / "results" / "e1_study.md").read_text()
    for row in ("members (4ep_devq)", "ensemble (conv)", "old recipe", "+ converged students", "alpha 1, dense"):
        assert row in table, row
    devq = exp / "study" / "ens_4ep_devq" / "member0" / "model.pt"
    _, meta = load(devq)
    assert meta["training"]["validation"]["subset"] == "dev-clean-2"  # the ablation validates on dev, visibly
    assert meta["training"]["train_utterances"] == len(valid | train)

    # E4 compression on the same experiment: half-width hard and distilled nets, the table and plots
    e4 = run_script(MINI / "local" / "e4_compression.sh", "--exp", str(exp), "--out", str(exp / "results"),
                    "--model-conf", "recipes/mini_librispeech/conf/dnn_tiny.yaml", "--hidden-dims", "16",
                    "--seeds", "0", "--recovery", "false", "--teachings", "store consistent",
                    "--consistent-epochs", "2")
    assert e4.returncode == 0, e4.stdout[-3000:] + e4.stderr[-3000:]
    for kind in ("hard", "student_T2", "consistent_T2"):
        _, meta = load(exp / "e4" / "h16" / kind / "seed0" / "model.pt")
        assert meta["config"]["hidden_dim"] == 16 and meta["training"]["validation"]["list_sha256"] == digest, kind
    table = json.loads((exp / "results" / "e4_compression.json").read_text())["rows"]
    assert table["hard, hidden 16"]["parameters (M)"]["mean"] < table["baseline"]["parameters (M)"]["mean"]
    assert "decoding CPU RTF" in table["student T2, hidden 16"]
    assert table["student T2, consistent, hidden 16"]["epochs trained"]["mean"] == 2
    assert (exp / "results" / "e4_compression_frame_acc_vs_size.png").exists()

    # E3 specialists on the same experiment: every system decoded with weights tuned on the validation split
    e3 = run_script(MINI / "local" / "e3_specialists.sh", "--exp", str(exp), "--out", str(exp / "results" / "e3"),
                    "--model-conf", "recipes/mini_librispeech/conf/dnn_tiny.yaml", "--num-clusters", "4",
                    "--cluster-size", "12", "--specialist-lr", "0.003", "--seeds", "0", "--recovery", "false")
    assert e3.returncode == 0, e3.stdout[-3000:] + e3.stderr[-3000:]
    table = json.loads((exp / "results" / "e3" / "e3_specialists.json").read_text())["rows"]
    for row in ("generalist", "generalist + 4 specialists", "student of generalist + specialists T2",
                "student of the generalist alone T2"):
        assert "dev WER, weights tuned on validation (%)" in table[row], row
    assert "epochs trained" in table["student of the generalist alone T2"]
    valid_acc = json.loads((exp / "e3" / "eval" / "specialists" / "valid_frame_acc.json").read_text())
    assert valid_acc["subset"] == "train-clean-5" and valid_acc["overall"]["frames"] > 0
    assert set(TeacherStore(exp / "e3" / "teacher_T2").keys()) == train  # never the validation split
    assert (exp / "results" / "e3" / "e3_students_significance.md").exists()

    # E5 cross-architecture on the same experiment: a tiny conformer ensemble teaches a DNN student,
    # and (stages 5-7) the DNN ensemble's store teaches a tiny conformer
    e5 = run_script(MINI / "local" / "e5_cross_arch.sh", "--exp", str(exp), "--out", str(exp / "results"),
                    "--teacher-overrides", "model.preset=tiny train.epochs=1 train.max_frames=4000",
                    "--student-conf", "recipes/mini_librispeech/conf/dnn_tiny.yaml", "--student-overrides", "",
                    "--seeds", "0", "--recovery", "false", "--stop-stage", "7")
    assert e5.returncode == 0, e5.stdout[-3000:] + e5.stderr[-3000:]
    ensemble = json.loads((exp / "e5" / "ensemble" / "ensemble.json").read_text())
    assert ensemble["members"] == ["member0/model.pt", "member1/model.pt"]
    for member in ("member0", "member1"):
        _, meta = load(exp / "e5" / "ensemble" / member / "model.pt")
        assert meta["arch"] == "conformer" and meta["training"]["validation"]["list_sha256"] == digest, member
    assert set(TeacherStore(exp / "e5" / "teacher_T2").keys()) == train
    _, meta = load(exp / "e5" / "student_T2" / "seed0" / "model.pt")
    assert meta["arch"] == "dnn" and meta["training"]["validation"]["list_sha256"] == digest
    table = json.loads((exp / "results" / "e5_cross_arch.json").read_text())["rows"]
    for row in ("DNN members", "DNN ensemble", "student T2 of the DNN ensemble", "conformer members",
                "conformer ensemble", "student T2 of the conformer ensemble"):
        assert "dev frame accuracy (%)" in table[row], row
    # each E5 system's search scale chosen on the validation split among the script's default 0.1 and 0.2
    chosen = table["student T2 of the conformer ensemble"]["search acoustic scale"]["mean"]
    assert chosen in (0.1, 0.2) and table["DNN members"]["search acoustic scale"]["mean"] == 0.1
    scales = (exp / "e5" / "eval" / "student_T2_seed0" / "search_scale.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in scales[1:]] == ["0.1", "0.2"]
    assert (exp / "results" / "e5_cross_arch_significance.md").exists()
    assert (exp / "results" / "e5_cross_arch_learning_curves.png").exists()
    _, meta = load(exp / "e5" / "reverse_T2" / "seed0" / "model.pt")
    assert meta["arch"] == "conformer" and meta["training"]["validation"]["list_sha256"] == digest
    reverse = json.loads((exp / "results" / "e5_cross_arch_reverse.json").read_text())["rows"]
    for row in ("DNN members", "DNN ensemble", "conformer members", "conformer student T2 of the DNN ensemble"):
        assert "dev WER, weights tuned on validation (%)" in reverse[row], row
    assert (exp / "results" / "e5_cross_arch_reverse_significance.md").exists()

    # E2 teaching study on the same experiment: patient and augmented 3% models from E2's own configs
    e2t = run_script(MINI / "local" / "e2_teaching.sh", "--exp", str(exp), "--out", str(exp / "results"),
                     "--epochs", "2", "--seeds", "0", "--recovery", "false")
    assert e2t.returncode == 0, e2t.stdout[-3000:] + e2t.stderr[-3000:]
    e2_utts = (exp / "e2" / "hard" / "seed0" / "train_utts.txt").read_text()
    for system in ("soft_patient", "hard_aug", "soft_aug_store", "soft_aug_online"):
        run = exp / "e2_teaching" / system / "seed0"
        assert (run / "train_utts.txt").read_text() == e2_utts, system  # the same 3% as E2's models
        _, meta = load(run / "model.pt")
        assert meta["training"]["validation"]["list_sha256"] == digest, system
        assert ("augment" in meta["training"]) == ("aug" in system), system
        assert (run / "dev_acc.json").exists() and (run / "train_acc.json").exists(), system
    table = json.loads((exp / "results" / "e2_teaching_dev.json").read_text())["rows"]
    assert "dev frame accuracy (%)" in table["3% soft + augment, online, patient"]
    assert (exp / "results" / "e2_teaching_learning_curves.png").exists()


def test_e5_needs_the_experiments_split_and_keeps_its_settings(tmp_path):
    script = MINI / "local" / "e5_cross_arch.sh"
    result = run_script(script, "--exp", str(tmp_path))
    assert result.returncode != 0 and "train.txt is missing: run run.sh stages 0-7 first" in result.stderr
    (tmp_path / "splits" / "train-clean-5").mkdir(parents=True)
    (tmp_path / "splits" / "train-clean-5" / "train.txt").write_text("u1\n")
    nothing = ["--exp", str(tmp_path), "--stage", "99", "--stop-stage", "99"]
    assert run_script(script, *nothing).returncode == 0
    assert "model.overrides.hidden_dim=512" in (tmp_path / "e5" / "settings.txt").read_text()
    result = run_script(script, *nothing, "--members", "0 1 2")
    assert result.returncode != 0 and "made with other settings" in result.stderr


def test_e2_teaching_needs_run_sh_e2_and_keeps_its_settings(tmp_path):
    script = MINI / "local" / "e2_teaching.sh"
    result = run_script(script, "--exp", str(tmp_path))
    assert result.returncode != 0 and "e2/hard/seed0/config.yaml is missing: run run.sh stage 8 first" in result.stderr
    for model in ("hard", "soft"):
        for seed in (0, 1, 2):
            (tmp_path / "e2" / model / f"seed{seed}").mkdir(parents=True)
            (tmp_path / "e2" / model / f"seed{seed}" / "config.yaml").write_text("{}\n")
    nothing = ["--exp", str(tmp_path), "--stage", "99", "--stop-stage", "99"]
    assert run_script(script, *nothing).returncode == 0
    assert "augment.freq_masks=2" in (tmp_path / "e2_teaching" / "settings.txt").read_text()
    result = run_script(script, *nothing, "--epochs", "50")
    assert result.returncode != 0 and "made with other settings" in result.stderr


def test_e2_sweep_needs_the_members_and_stops_on_other_settings(tmp_path):
    result = run_script(MINI / "local" / "e2_sweep.sh", "--exp", str(tmp_path))
    assert result.returncode != 0 and "needs run.sh stages 0-4" in result.stderr
    (tmp_path / "splits").mkdir()
    (tmp_path / "e1" / "ensemble" / "member0").mkdir(parents=True)
    nothing = ["--exp", str(tmp_path), "--stage", "99", "--stop-stage", "99", "--members", "2"]
    assert run_script(MINI / "run.sh", *nothing).returncode == 0  # EXP made with 2 members
    result = run_script(MINI / "local" / "e2_sweep.sh", "--exp", str(tmp_path), "--temperatures", "5")
    assert result.returncode != 0 and "differs from" in result.stderr and "outside E2" in result.stderr
    derived = tmp_path / "e2_sweep" / "T5"
    assert (derived / "splits").is_symlink() and not (derived / "e2" / "soft").exists()
    assert "T=5" in (derived / "settings.txt").read_text()
    # with EXP's settings the sweep links EXP's own E2 models (all of them at EXP's temperature)
    (tmp_path / "e2" / "hard").mkdir(parents=True)
    result = run_script(MINI / "local" / "e2_sweep.sh", "--exp", str(tmp_path), "--temperatures", "2",
                        "--run-args", "--members 2 --jobs 1")
    assert result.returncode != 0 and "job e2_hard_seed0 failed" in result.stderr  # there is no data to train on
    shared = tmp_path / "e2_sweep" / "T2" / "e2" / "hard"
    assert shared.is_symlink() and shared.resolve() == (tmp_path / "e2" / "hard").resolve()
