"""End-to-end on the tiny data: ``asr-kd tree`` + ``asr-kd align`` outputs follow contracts A and B."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from asr_kd.alignment import SenoneTree, load_senone_log_priors
from asr_kd.alignment.aligner import align_corpus
from asr_kd.alignment.outputs import read_ctm, read_skipped
from asr_kd.alignment.train import load_aligner, load_corpus
from asr_kd.cli import main
from asr_kd.data import read_manifest, write_manifest
from asr_kd.data.lexicon import PHONES
from asr_kd.experiment import Experiment
from asr_kd.utils.array_store import ArrayStore

TRAIN, DEV = "train-clean-5", "dev-clean-2"


@pytest.mark.parametrize("subset", [TRAIN, DEV])
def test_outputs_cover_every_frame(aligned_exp: Path, subset: str) -> None:
    tree = SenoneTree.load(aligned_exp / "tree" / "tree.json")
    feats = ArrayStore(aligned_exp / "feats" / subset)
    senones = ArrayStore(aligned_exp / "ali" / subset / "senones")
    phones = ArrayStore(aligned_exp / "ali" / subset / "phones")
    assert read_skipped(aligned_exp / "ali" / subset / "skipped.tsv") == {}
    assert sorted(senones.keys()) == sorted(phones.keys()) == sorted(feats.keys())
    phone_of_senone = np.array([PHONES.index(tree.senone_info(s)["phone"]) for s in range(tree.num_senones)])
    for utt in feats:
        s, p = np.asarray(senones[utt]), np.asarray(phones[utt])
        assert s.dtype == p.dtype == np.int32
        assert len(s) == len(p) == feats.num_rows(utt)
        assert ((s >= 0) & (s < tree.num_senones)).all()
        np.testing.assert_array_equal(phone_of_senone[s], p)


def test_tree_outputs(aligned_exp: Path) -> None:
    tree = SenoneTree.load(aligned_exp / "tree" / "tree.json")
    assert 3 * len(PHONES) < tree.num_senones <= 150
    counts = np.load(aligned_exp / "tree" / "senone_counts.npy")
    assert counts.dtype == np.int64 and counts.shape == (tree.num_senones,)
    assert counts.sum() == ArrayStore(aligned_exp / "feats" / TRAIN).total_rows()
    assert np.isclose(np.exp(load_senone_log_priors(aligned_exp / "tree")).sum(), 1.0)
    summary = json.loads((aligned_exp / "tree" / "summary.json").read_text())
    assert summary["num_senones"] == tree.num_senones and summary["skipped"] == 0


def test_alignments_are_monotone_and_respect_topology(aligned_exp: Path) -> None:
    model = load_aligner(aligned_exp)
    data = load_corpus(aligned_exp, DEV)
    run = align_corpus(model, data.feats, data.transcripts, jobs=1, progress=False)
    words_ctm = read_ctm(aligned_exp / "ali" / DEV / "words.ctm")
    for utt_id, ali in run.alignments.items():
        segs = ali.phone_segments
        assert segs[0][1] == 0 and segs[-1][2] == len(data.feats[utt_id])
        assert all(a[2] == b[1] for a, b in zip(segs, segs[1:]))
        for _, start, end in segs:
            states = ali.hmm_state[start:end]
            assert end - start >= 3 and states[0] == 0 and states[-1] == 2 and (np.diff(states) >= 0).all()
        assert [w for w, _, _ in ali.words] == data.transcripts[utt_id].split()
        assert [w for w, _, _ in words_ctm[utt_id]] == data.transcripts[utt_id].split()


def test_alignment_is_deterministic_and_independent_of_jobs(aligned_exp: Path) -> None:
    model = load_aligner(aligned_exp)
    data = load_corpus(aligned_exp, DEV)
    one = align_corpus(model, data.feats, data.transcripts, jobs=1, progress=False)
    two = align_corpus(model, data.feats, data.transcripts, jobs=2, progress=False)
    stored = ArrayStore(aligned_exp / "ali" / DEV / "senones")
    assert one.alignments.keys() == two.alignments.keys()
    for utt in one.alignments:
        np.testing.assert_array_equal(one.alignments[utt].senones, two.alignments[utt].senones)
        np.testing.assert_array_equal(one.alignments[utt].senones, stored[utt])


def test_tree_rerun_reuses_stages_and_is_deterministic(aligned_exp: Path, tmp_path: Path, linked_exp,
                                                       tiny_tree_args: list[str]) -> None:
    exp = linked_exp(aligned_exp, tmp_path / "exp")
    (exp / "tree" / "work").mkdir(parents=True)
    for name in ("mono_tree.json", "mono_ali.npz"):
        shutil.copy(aligned_exp / "tree" / "work" / name, exp / "tree" / "work" / name)
    assert main(["tree", "--exp", str(exp), "--subset", TRAIN, *tiny_tree_args]) == 0
    assert (exp / "tree" / "tree.json").read_text() == (aligned_exp / "tree" / "tree.json").read_text()
    a, b = ArrayStore(exp / "ali" / TRAIN / "senones"), ArrayStore(aligned_exp / "ali" / TRAIN / "senones")
    for utt in a:
        np.testing.assert_array_equal(a[utt], b[utt])


def test_bad_utterances_are_skipped_with_reasons(aligned_exp: Path, tmp_path: Path, linked_exp) -> None:
    exp = linked_exp(aligned_exp, tmp_path / "exp", ("lang", "feats", "tree"))
    utts = read_manifest(Experiment(aligned_exp).manifest(DEV))
    long_text = " ".join([utts[0].transcript] * 30)
    bad = [replace(utts[0], transcript=long_text), replace(utts[1], transcript=""),
           replace(utts[2], transcript=utts[2].transcript + " QXZWV"), *utts[3:]]
    write_manifest(Experiment(exp).manifest(DEV), bad)
    assert main(["align", "--exp", str(exp), "--subset", DEV, "--jobs", "1"]) == 0
    skipped = read_skipped(exp / "ali" / DEV / "skipped.tsv")
    assert set(skipped) == {utts[0].utt_id, utts[1].utt_id}
    assert "frames" in skipped[utts[0].utt_id] and "empty transcript" in skipped[utts[1].utt_id]
    words = read_ctm(exp / "ali" / DEV / "words.ctm")[utts[2].utt_id]
    assert words[-1][0] == "QXZWV"  # OOV word aligned to spoken noise
    phones = read_ctm(exp / "ali" / DEV / "phones.ctm")[utts[2].utt_id]
    assert "SPN" in [p for p, _, _ in phones]
    assert utts[0].utt_id not in ArrayStore(exp / "ali" / DEV / "senones")


def test_align_report_cli(aligned_exp: Path, tmp_path: Path, capsys: pytest.CaptureFixture, linked_exp) -> None:
    exp = linked_exp(aligned_exp, tmp_path / "exp", ("manifests", "lang", "feats", "tree"))
    ours = read_ctm(aligned_exp / "ali" / DEV / "words.ctm")
    utt, segs = next(iter(ours.items()))
    ref = tmp_path / "ref.tsv"
    ref.write_text("utt_id\tword\tstart_s\tend_s\tsource_subset\n" + "".join(
        f"{utt}\t{w.lower()}\t{s + 0.03:.2f}\t{e:.2f}\tdev-clean\n" for w, s, e in segs))
    assert main(["align", "--exp", str(exp), "--subset", DEV, "--jobs", "1", "--report", "--reference",
                 str(ref)]) == 0
    report = json.loads((exp / "ali" / DEV / "report.json").read_text())
    wb = report["word_boundaries"]
    assert wb["matched_words"] == wb["reference_words"] == len(segs)
    assert wb["within_50ms"] == 1.0 and wb["within_20ms"] == pytest.approx(0.5)
    assert 0 < report["silence_fraction"]["SIL"] < 1
    assert "within 50 ms 100.0%" in capsys.readouterr().out


def test_align_refuses_features_of_another_configuration(aligned_exp: Path, tmp_path: Path, linked_exp,
                                                          capsys: pytest.CaptureFixture) -> None:
    exp = linked_exp(aligned_exp, tmp_path / "exp", ("manifests", "lang", "feats"))
    shutil.copytree(aligned_exp / "tree", exp / "tree")
    with np.load(exp / "tree" / "final_model.npz") as z:
        arrays = dict(z)
    arrays["feature_config"] = np.array(json.dumps({"num_mel_bins": 80}))
    np.savez(exp / "tree" / "final_model.npz", **arrays)
    assert main(["align", "--exp", str(exp), "--subset", DEV, "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert "num_mel_bins=40, but the aligner" in err and "final_model.npz) was trained on num_mel_bins=80" in err
