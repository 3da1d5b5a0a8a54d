"""Fidelity metrics of stored soft targets against the teacher's exact ones."""

import math

import pytest
import torch

from asr_kd.distillation.fidelity import (
    StoreUnderTest,
    effective_log_targets,
    format_kl,
    frame_divergences,
    measure_stores,
)
from asr_kd.distillation.loss import soft_cross_entropy
from asr_kd.distillation.soft_targets import TopKTargets, top_k_targets
from asr_kd.distillation.teacher_store import TeacherStore, TeacherStoreConfig, dump_teacher_stores

NUM_SENONES = 24


def test_divergences_of_identical_and_truncated_targets():
    torch.manual_seed(0)
    log_p = torch.log_softmax(torch.randn(50, 30) * 3, -1)
    same = frame_divergences(log_p, log_p)
    assert float(same["kl_dense_store"].abs().max()) < 1e-6 and torch.allclose(same["kept_mass"], torch.ones(50))
    top = top_k_targets(log_p.exp(), 5)
    renorm = frame_divergences(log_p, effective_log_targets(top, 1.0, "renormalise", 30), top.ids)
    mass = top.probs.sum(-1)
    assert torch.isinf(renorm["kl_dense_store"]).all()  # zero where the teacher has mass
    assert torch.allclose(renorm["kl_store_dense"], -mass.log(), atol=1e-5)
    assert torch.allclose(renorm["kept_mass"], mass, atol=1e-5) and torch.allclose(renorm["top_k_mass"], mass)
    tail = frame_divergences(log_p, effective_log_targets(top, 1.0, "tail", 30))
    assert torch.isfinite(tail["kl_dense_store"]).all() and (tail["kept_mass"] >= mass - 1e-6).all()


def test_effective_targets_are_what_the_loss_trains_towards():
    torch.manual_seed(1)
    student = torch.randn(40, 30)
    top = top_k_targets(torch.softmax(torch.randn(40, 30) * 2, -1), 6)
    for policy in ("renormalise", "tail"):
        q = effective_log_targets(top, 2.0, policy, 30).exp()
        via_dense = -(q * torch.log_softmax(student / 2.0, -1)).sum(-1).mean()
        assert soft_cross_entropy(student, top, 2.0, policy) == pytest.approx(float(via_dense), rel=1e-5)
    with pytest.raises(ValueError, match="num_senones"):
        effective_log_targets(TopKTargets(top.ids, top.probs), 2.0)


def test_fp16_underflow_is_not_an_infinite_divergence():
    log_p = torch.log_softmax(torch.tensor([[0.0, -5.0, -30.0]]), -1)  # p_3 ~ 1e-13: not storable in fp16
    stored = log_p.exp().half().float()
    assert stored[0, 2] == 0
    kl = frame_divergences(log_p, effective_log_targets(stored, 1.0))["kl_dense_store"]
    assert torch.isfinite(kl).all() and float(kl) < 1e-6
    assert format_kl(math.inf) == "∞" and format_kl(-1e-9) == "0.0000" and format_kl(2e-5) == "2.0e-05"


def test_measure_stores_ranks_dense_lowrank_and_top_k(tmp_path, features, teacher):
    configs = {tmp_path / "dense": TeacherStoreConfig(2.0, NUM_SENONES, top_k=None),
               tmp_path / "k4": TeacherStoreConfig(2.0, NUM_SENONES, top_k=4),
               tmp_path / "lr": TeacherStoreConfig(1.0, NUM_SENONES, top_k=4, rank=12, temperatures=(2.0, 5.0),
                                                   fit_frames=13)}
    dump_teacher_stores(teacher, features, configs, progress=False)
    stores = {root.name: TeacherStore(root) for root in configs}
    under_test = [StoreUnderTest("dense", stores["dense"]), StoreUnderTest("k4", stores["k4"]),
                  StoreUnderTest("k4 tail", stores["k4"], "tail"), StoreUnderTest("lr", stores["lr"])]
    utts = sorted(set(features.utt_ids()) - set(stores["lr"].fit_utts))
    results, floor = measure_stores(teacher, features, utts, under_test, [1.0, 2.0, 5.0], progress=False)
    assert set(results["dense"]) == set(results["k4"]) == {2.0} and set(results["lr"]) == {1.0, 2.0, 5.0}
    assert results["dense"][2.0]["kl_dense_store"] < 1e-5 and results["dense"][2.0]["kept_mass"] > 0.999
    assert math.isinf(results["k4"][2.0]["kl_dense_store"])
    assert results["k4"][2.0]["kept_mass"] == pytest.approx(results["k4"][2.0]["top_k_mass"], abs=1e-5)
    assert results["lr"][2.0]["kl_dense_store"] < results["k4 tail"][2.0]["kl_dense_store"]
    assert results["lr"][2.0]["kept_mass"] > results["k4 tail"][2.0]["kept_mass"]
    assert results["lr"][2.0]["top_k_mass"] == pytest.approx(results["k4"][2.0]["top_k_mass"], abs=0.05)
    assert all(abs(v) < 1e-6 for v in floor.values())  # one model: re-tempering is exact
