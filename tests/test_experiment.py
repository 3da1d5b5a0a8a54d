"""The experiment layout: the paths of :class:`asr_kd.experiment.Experiment` are where the stages write."""

from __future__ import annotations

from pathlib import Path

from asr_kd.experiment import Experiment

TRAIN, DEV = "train-clean-5", "dev-clean-2"  # the tiny data's subset folders


def test_layout_is_the_documented_one():
    exp = Experiment("e")
    assert isinstance(exp.root, Path) and Experiment(Path("e")) == exp
    paths = {
        exp.manifest("sub"): "e/manifests/sub.tsv", exp.prepare_summary: "e/manifests/summary.json",
        exp.lexicon: "e/lang/lexicon.txt", exp.oov_words: "e/lang/oov_words.tsv",
        exp.feats_dir("sub"): "e/feats/sub", exp.tree_json: "e/tree/tree.json",
        exp.aligner_model: "e/tree/final_model.npz", exp.senone_counts: "e/tree/senone_counts.npy",
        exp.ali_dir("sub"): "e/ali/sub", exp.targets_dir("sub"): "e/ali/sub/senones",
        exp.targets_dir("sub", "phones"): "e/ali/sub/phones", exp.phones_ctm("sub"): "e/ali/sub/phones.ctm",
        exp.split_dir("sub"): "e/splits/sub", exp.lm_dir: "e/lm", exp.graph_dir("x"): "e/graph_x",
    }
    assert {str(k): v for k, v in paths.items()} == {v: v for v in paths.values()}


def test_prepare_and_features_write_where_the_layout_says(tiny_exp):
    exp = Experiment(tiny_exp)
    for path in (exp.manifest(TRAIN), exp.manifest(DEV), exp.prepare_summary, exp.lexicon, exp.oov_words):
        assert path.is_file(), path
    for subset in (TRAIN, DEV):
        assert (exp.feats_dir(subset) / "meta.json").is_file() and (exp.feats_dir(subset) / "cmvn.npz").is_file()
