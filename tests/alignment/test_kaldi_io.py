from pathlib import Path

import kaldiio
import numpy as np
import pytest

from asr_kd.alignment.kaldi_io import export_pdf_alignments, import_pdf_alignments, read_pdf_alignments
from asr_kd.alignment.outputs import read_skipped
from asr_kd.cli import main
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.errors import AsrKdError

DEV = "dev-clean-2"


def test_export_import_round_trip(aligned_exp: Path, tmp_path: Path) -> None:
    store = ArrayStore(aligned_exp / "ali" / DEV / "senones")
    ark = tmp_path / "pdf.ark"
    assert export_pdf_alignments(aligned_exp / "ali" / DEV / "senones", ark) == len(store)
    for path in (ark, ark.with_suffix(".scp")):
        loaded = read_pdf_alignments(path)
        assert sorted(loaded) == sorted(store.keys())
        for utt, ali in loaded.items():
            np.testing.assert_array_equal(ali, store[utt])
    num_pdfs = int(np.load(aligned_exp / "tree" / "senone_counts.npy").shape[0])
    kept, skipped, counts = import_pdf_alignments(ark.with_suffix(".scp"), num_pdfs, aligned_exp / "feats" / DEV,
                                                  tmp_path / "ali")
    assert kept == len(store) and skipped == {} and counts.sum() == store.total_rows()
    again = ArrayStore(tmp_path / "ali" / "senones")
    assert again.meta["num_senones"] == num_pdfs
    for utt in store:
        np.testing.assert_array_equal(again[utt], store[utt])


def test_import_cli_skips_mismatched_utterances(aligned_exp: Path, tmp_path: Path, linked_exp) -> None:
    exp = linked_exp(aligned_exp, tmp_path / "exp", ("feats",))
    store = ArrayStore(aligned_exp / "ali" / DEV / "senones")
    ids = sorted(store.keys())
    alis = {u: np.asarray(store[u], dtype=np.int32) for u in ids[1:]}
    alis[ids[1]] = alis[ids[1]][:-2]  # two frames short: other frame settings
    alis["not-an-utterance"] = np.zeros(5, dtype=np.int32)
    kaldiio.save_ark(str(tmp_path / "in.ark"), alis)
    assert main(["align", "--exp", str(exp), "--subset", DEV, "--import-kaldi", str(tmp_path / "in.ark"),
                 "--num-pdfs", "500", "--set-priors"]) == 0
    skipped = read_skipped(exp / "ali" / DEV / "skipped.tsv")
    assert set(skipped) == {ids[0], ids[1], "not-an-utterance"}
    assert "feature frames" in skipped[ids[1]]
    assert len(ArrayStore(exp / "ali" / DEV / "senones")) == len(ids) - 2
    assert np.load(exp / "tree" / "senone_counts.npy").shape == (500,)


def test_import_errors(aligned_exp: Path, tmp_path: Path) -> None:
    kaldiio.save_ark(str(tmp_path / "big.ark"), {"u": np.array([0, 7], dtype=np.int32)})
    with pytest.raises(AsrKdError, match="outside 0..4"):
        import_pdf_alignments(tmp_path / "big.ark", 5, aligned_exp / "feats" / DEV, tmp_path / "ali")
    (tmp_path / "junk.ark").write_bytes(b"u \0Bgarbage")
    with pytest.raises(AsrKdError, match="junk.ark"):
        read_pdf_alignments(tmp_path / "junk.ark")
    with pytest.raises(AsrKdError, match="missing"):
        read_pdf_alignments(tmp_path / "none.ark")
    kaldiio.save_ark(str(tmp_path / "float.ark"), {"u": np.zeros((3, 2), dtype=np.float32)})
    with pytest.raises(AsrKdError, match="int vector"):
        read_pdf_alignments(tmp_path / "float.ark")
    assert main(["align", "--exp", str(tmp_path), "--subset", DEV, "--import-kaldi", str(tmp_path / "big.ark")]) == 2
