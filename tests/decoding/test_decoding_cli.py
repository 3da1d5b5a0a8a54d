"""``asr-kd graph`` / ``decode`` / ``score`` end to end on a toy lexicon, LM and the real SenoneTree class."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from decoding_fixtures import TOY_PRONS, crafted_loglik, utterance_senones

from asr_kd.alignment import SenoneTree
from asr_kd.cli import main
from asr_kd.decoding.nbest import read_nbest
from asr_kd.utils.array_store import ArrayStoreWriter

SENTENCES = {"utt-a": "THE CAT SAT ON THE MAT", "utt-b": "TWO DOGS"}


@pytest.fixture
def exp(tmp_path, toy_lexicon_file, toy_arpa):
    exp = tmp_path / "exp"
    SenoneTree.monophone().save(exp / "tree" / "tree.json")
    (exp / "lang").mkdir(parents=True)
    shutil.copy(toy_lexicon_file, exp / "lang" / "lexicon.txt")
    shutil.copy(toy_arpa, exp / "toy.arpa")
    (exp / "ref.txt").write_text("".join(f"{u} {t}\n" for u, t in SENTENCES.items()))
    return exp


def write_scores(root, tree: SenoneTree, extra_columns: int = 0, log_prior: float = 0.0) -> None:
    """Crafted log-likelihoods of SENTENCES (+ a constant log-prior, to be removed again)."""
    items = []
    for k, (utt_id, text) in enumerate(SENTENCES.items()):
        phones = ["SIL", *(p for w in text.split() for p in TOY_PRONS[w][0]), "SIL"]
        loglik = crafted_loglik(tree.num_senones + extra_columns, utterance_senones(tree, phones), seed=k)
        items.append((utt_id, loglik + log_prior))
    ArrayStoreWriter(root, np.float32, (tree.num_senones + extra_columns,)).write_shard(0, items)


def test_graph_decode_score(exp, capsys) -> None:
    assert main(["graph", "--exp", str(exp), "--arpa", str(exp / "toy.arpa")]) == 0
    graph_dir = exp / "graph_toy"
    assert (graph_dir / "HCLG.fst").exists()
    assert main(["graph", "--exp", str(exp), "--arpa", str(exp / "toy.arpa")]) == 0
    assert "up to date" in capsys.readouterr().out  # same inputs: the cached graph is reused
    arpa = exp / "toy.arpa"
    arpa.write_text(arpa.read_text().replace("-0.6 TWO DOGS", "-0.7 TWO DOGS"))
    assert main(["graph", "--exp", str(exp), "--arpa", str(arpa)]) == 0
    assert "built in" in capsys.readouterr().out  # another LM: rebuilt

    tree = SenoneTree.load(exp / "tree" / "tree.json")
    write_scores(exp / "post", tree, log_prior=-3.0)
    np.save(exp / "log_priors.npy", np.full(tree.num_senones, -3.0))
    out = exp / "decode"
    assert main(["decode", "--graph-dir", str(graph_dir), "--scores", str(exp / "post"),
                 "--log-priors", str(exp / "log_priors.npy"), "--out", str(out)]) == 0
    hyps = dict(line.split(" ", 1) for line in (out / "hyp.txt").read_text().splitlines())
    assert hyps == SENTENCES
    assert json.loads((out / "decode.json").read_text())["failed"] == 0

    assert main(["score", "--ref", str(exp / "ref.txt"), "--hyp", str(out / "hyp.txt")]) == 0
    report = json.loads((out / "hyp.wer.json").read_text())
    assert report["summary"]["wer"] == 0.0 and report["summary"]["ref_words"] == 8
    assert (out / "hyp.per_utt.txt").read_text().startswith("utt-a ref  THE CAT")


def test_nbest_decode_tune_and_rescore(exp, capsys) -> None:
    """decode --nbest -> score untuned / --best-on-dev / --tune -> rescore with another LM -> score."""
    assert main(["graph", "--exp", str(exp), "--arpa", str(exp / "toy.arpa")]) == 0
    graph_dir = exp / "graph_toy"
    tree = SenoneTree.load(exp / "tree" / "tree.json")
    write_scores(exp / "loglik", tree)
    out = exp / "nbest_dev"
    assert main(["decode", "--graph-dir", str(graph_dir), "--scores", str(exp / "loglik"), "--kind",
                 "log-likelihoods", "--nbest", "10", "--out", str(out)]) == 0
    assert (out / "hyp.txt").read_text().splitlines()[0] == "utt-a THE CAT SAT ON THE MAT"
    nbest = out / "nbest.jsonl.gz"
    assert len(read_nbest(nbest).utterances["utt-a"]) > 1

    assert main(["score", "--ref", str(exp / "ref.txt"), "--nbest", str(nbest)]) == 0
    report = json.loads((out / "nbest.untuned.wer.json").read_text())
    assert report["summary"]["wer"] == 0.0
    assert report["scoring"]["mode"] == "untuned" and report["scoring"]["setting"]["lm_weight"] == 10.0

    assert main(["score", "--ref", str(exp / "ref.txt"), "--nbest", str(nbest), "--best-on-dev",
                 "--lm-weights", "5", "10", "--word-ins-penalties", "0", "1"]) == 0
    report = json.loads((out / "nbest.best_on_dev.wer.json").read_text())
    assert report["scoring"]["mode"].startswith("best on dev")
    assert len(report["scoring"]["sweep"]) == 4
    assert "best on dev" in capsys.readouterr().out

    # tuning on the same utterances is refused: the tuning set must be another set
    code = main(["score", "--ref", str(exp / "ref.txt"), "--nbest", str(nbest), "--tune", str(exp / "ref.txt"),
                 str(nbest)])
    assert code == 2 and "share 2 utterances" in capsys.readouterr().err

    # tuned: the tuning set is utt-b (the only one with an N-best list there), the scored set utt-a
    (exp / "b.utts").write_text("utt-b\n")
    (exp / "a.utts").write_text("utt-a\n")
    assert main(["decode", "--graph-dir", str(graph_dir), "--scores", str(exp / "loglik"), "--kind",
                 "log-likelihoods", "--nbest", "10", "--utts", str(exp / "b.utts"), "--out", str(exp / "tune")]) == 0
    assert main(["score", "--ref", str(exp / "ref.txt"), "--nbest", str(nbest), "--utts", str(exp / "a.utts"),
                 "--tune", str(exp / "ref.txt"), str(exp / "tune" / "nbest.jsonl.gz"), "--out", str(exp / "a")]) == 0
    report = json.loads((exp / "a.wer.json").read_text())
    assert report["scoring"]["mode"] == "tuned on a tuning set" and "(1 utterances)" in report["scoring"]["chosen_on"]
    assert report["summary"]["ref_words"] == 6 and report["summary"]["wer"] == 0.0

    # rescoring with an LM that prefers TO over TWO flips the homophone of utt-b
    new_arpa = exp / "to_dogs.arpa"
    new_arpa.write_text((exp / "toy.arpa").read_text().replace("-0.6 TWO DOGS", "-0.6 TO DOGS"))
    rescored = exp / "rescored.jsonl.gz"
    assert main(["rescore", "--nbest", str(nbest), "--graph-dir", str(graph_dir), "--old-arpa",
                 str(exp / "toy.arpa"), "--new-arpa", str(new_arpa), "--out", str(rescored)]) == 0
    lists = read_nbest(rescored)
    assert lists.utterances["utt-b"][0].words == ("TO", "DOGS")
    assert lists.header["rescored"] == [{"old": "toy.arpa", "new": "to_dogs.arpa"}]
    code = main(["rescore", "--nbest", str(nbest), "--graph-dir", str(graph_dir), "--old-arpa", str(new_arpa),
                 "--new-arpa", str(new_arpa), "--out", str(exp / "bad.jsonl.gz")])
    assert code == 2 and "not the LM" in capsys.readouterr().err


def test_column_count_mismatch_is_a_clear_error(exp, capsys) -> None:
    assert main(["graph", "--exp", str(exp), "--arpa", str(exp / "toy.arpa")]) == 0
    write_scores(exp / "wide", SenoneTree.load(exp / "tree" / "tree.json"), extra_columns=5)
    code = main(["decode", "--graph-dir", str(exp / "graph_toy"), "--scores", str(exp / "wide"),
                 "--kind", "log-likelihoods", "--out", str(exp / "bad")])
    assert code == 2
    err = capsys.readouterr().err
    assert "rows have shape (128,)" in err and "123 senones" in err


def test_posteriors_without_priors_are_refused(exp, capsys) -> None:
    assert main(["graph", "--exp", str(exp), "--arpa", str(exp / "toy.arpa")]) == 0
    write_scores(exp / "post", SenoneTree.load(exp / "tree" / "tree.json"))
    code = main(["decode", "--graph-dir", str(exp / "graph_toy"), "--scores", str(exp / "post"),
                 "--out", str(exp / "bad")])
    assert code == 2 and "needs senone priors" in capsys.readouterr().err


def test_parallel_decode_gives_the_same_outputs(exp) -> None:
    """--jobs 2 spreads utterances over forked workers; hypotheses, N-best lists and their order do not change."""
    assert main(["graph", "--exp", str(exp), "--arpa", str(exp / "toy.arpa")]) == 0
    tree = SenoneTree.load(exp / "tree" / "tree.json")
    write_scores(exp / "loglik", tree)
    outputs = {}
    for jobs in (1, 2):
        for nbest in (0, 10):
            out = exp / f"dec_{jobs}_{nbest}"
            assert main(["decode", "--graph-dir", str(exp / "graph_toy"), "--scores", str(exp / "loglik"), "--kind",
                         "log-likelihoods", "--nbest", str(nbest), "--jobs", str(jobs), "--out", str(out)]) == 0
            outputs[jobs, nbest] = (out / "hyp.txt").read_text()
            if nbest:
                lists = read_nbest(out / "nbest.jsonl.gz")
                outputs[jobs, "lists"] = (list(lists.utterances), lists.utterances)
            assert json.loads((out / "decode.json").read_text())["jobs"] == jobs
    for key in (0, 10, "lists"):
        assert outputs[1, key] == outputs[2, key]
    assert (exp / "graph_toy" / "search_graph" / "meta.json").exists()  # the lattice search's cached arrays
