import doctest
import importlib

import pytest
import torch

from asr_kd.distillation.accounting import size_table, top_k_mass
from asr_kd.distillation.teacher_store import TeacherStore, TeacherStoreConfig, dump_teacher


@pytest.mark.parametrize("module", ["soft_targets", "loss", "accounting"])
def test_docstring_examples(module):
    # by name: the package re-exports a function called soft_targets
    result = doctest.testmod(importlib.import_module(f"asr_kd.distillation.{module}"))
    assert result.attempted > 0 and result.failed == 0


def test_top_k_mass_grows_with_k_and_falls_with_temperature():
    torch.manual_seed(0)
    logits = torch.randn(50, 300) * 4
    masses = {t: top_k_mass(torch.log_softmax(logits / t, -1), [1, 5, 50, 300]) for t in (1.0, 5.0)}
    for m in masses.values():
        assert m[1] < m[5] < m[50] < m[300] == pytest.approx(1.0, abs=1e-5)
    assert masses[5.0][5] < masses[1.0][5]


def test_size_table_rows():
    rows = size_table(2000, [1, 10, 50], num_frames=1_000_000)
    assert [r["top_k"] for r in rows] == [None, 1, 10, 50]
    assert [r["store_mb"] for r in rows] == [4000.0, 4.0, 40.0, 200.0]
    assert rows[2]["fraction_of_dense"] == 0.01


def test_store_mean_kept_mass_matches_top_k_mass(tmp_path, features, teacher):
    dump_teacher(teacher, features, tmp_path / "s", TeacherStoreConfig(2.0, 24, top_k=3), utts_per_shard=2,
                 progress=False)
    from asr_kd.models import utterance_log_posteriors

    log_probs = torch.cat([lp for _, lp in utterance_log_posteriors(teacher, features, temperature=2.0)])
    assert TeacherStore(tmp_path / "s").mean_kept_mass() == pytest.approx(top_k_mass(log_probs, [3])[3], abs=1e-3)
