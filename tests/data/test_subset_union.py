"""Named unions of subset folders: ``asr-kd prepare --subsets NAME=PART+PART`` (LibriSpeech 960 h)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from asr_kd.cli import main
from asr_kd.data import parse_subset_spec, read_manifest, scan_subset, scan_union
from asr_kd.data.librispeech import parse_subset_specs
from asr_kd.utils.errors import AsrKdError

TRAIN, DEV = "train-clean-5", "dev-clean-2"


def test_union_holds_every_part_sorted(tiny_root: Path) -> None:
    utts, report = scan_union(tiny_root, "both", [TRAIN, DEV], progress=False)
    ids = [u.utt_id for u in utts]
    assert len(utts) == 30 == report.num_utterances and report.subset == "both"
    assert ids == sorted(ids)
    expected = {u.utt_id for part in (TRAIN, DEV) for u in scan_subset(tiny_root, part, progress=False)[0]}
    assert set(ids) == expected


def test_prepare_writes_one_manifest_for_a_union(tiny_root: Path, tmp_path: Path) -> None:
    assert main(["prepare", "--root", str(tiny_root), "--subsets", f"both={TRAIN}+{DEV}", DEV,
                 "--exp", str(tmp_path)]) == 0
    manifests = sorted(p.name for p in (tmp_path / "manifests").glob("*.tsv"))
    assert manifests == ["both.tsv", f"{DEV}.tsv"]
    assert len(read_manifest(tmp_path / "manifests" / "both.tsv")) == 30
    summary = json.loads((tmp_path / "manifests" / "summary.json").read_text())
    assert summary["both"]["utterances"] == 30 and summary["both"]["parts"] == [TRAIN, DEV]
    assert summary[DEV]["parts"] == [DEV]


@pytest.mark.parametrize("spec, parsed", [
    ("dev-clean", ("dev-clean", ["dev-clean"])),
    ("train-960=train-clean-100+train-clean-360+train-other-500",
     ("train-960", ["train-clean-100", "train-clean-360", "train-other-500"])),
    ("dev=dev-clean-2", ("dev", ["dev-clean-2"])),
])
def test_parse_subset_spec(spec: str, parsed: tuple[str, list[str]]) -> None:
    assert parse_subset_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["=a+b", "a=", "a=b+", "a=+b", "a/b=c", "a=b/c", "a=b=c"])
def test_malformed_spec_is_an_error(spec: str) -> None:
    with pytest.raises(AsrKdError, match="expected SUBSET or NAME=PART"):
        parse_subset_spec(spec)


def test_part_listed_twice_is_an_error() -> None:
    with pytest.raises(AsrKdError, match=f"listed more than once: {TRAIN}"):
        parse_subset_spec(f"x={TRAIN}+{DEV}+{TRAIN}")


def test_name_given_twice_is_an_error() -> None:
    with pytest.raises(AsrKdError, match="given more than once: x"):
        parse_subset_specs([f"x={TRAIN}", DEV, f"x={DEV}"])


def test_unknown_part_is_named(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["prepare", "--root", str(tiny_root), "--subsets", f"both={TRAIN}+train-clean-360",
                 "--exp", str(tmp_path)]) != 0
    assert "train-clean-360: subset directory not found" in capsys.readouterr().err
    assert not (tmp_path / "manifests" / "both.tsv").exists()


def test_utterance_in_two_parts_is_named(tiny_root: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_root / DEV, tmp_path / DEV)
    shutil.copytree(tiny_root / DEV, tmp_path / "dev-copy")
    first = scan_subset(tmp_path, DEV, progress=False)[0][0].utt_id
    message = f"10 utterance id\\(s\\) in more than one part: {first} \\({DEV}, dev-copy\\)"
    with pytest.raises(AsrKdError, match=message):
        scan_union(tmp_path, "dup", [DEV, "dev-copy"], skip_bad=True, progress=False)
