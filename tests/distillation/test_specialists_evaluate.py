"""``SpecialistTable``: each specialist's choices on the frames where it is active, counted by hand."""

from __future__ import annotations

import math

import pytest
import torch

from asr_kd.distillation.specialists.evaluate import SpecialistTable, specialists_markdown


def _log(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).log()


def test_counts_inside_and_outside_the_cluster() -> None:
    # 4 senones; specialist 0 covers senones {1, 2} (+ dustbin), active on frames 0-2 of 4
    generalist = _log([[0.1, 0.5, 0.3, 0.1],    # truth 2: generalist picks 1 in the cluster (wrong)
                       [0.1, 0.3, 0.5, 0.1],    # truth 2: generalist picks 2 (right)
                       [0.4, 0.45, 0.05, 0.1],  # truth 0 (outside)
                       [0.7, 0.1, 0.1, 0.1]])   # not active
    specialist = _log([[0.2, 0.7, 0.1],         # picks senone 2 (right)
                       [0.1, 0.2, 0.7],         # picks the dustbin; among the cluster: senone 2 (right)
                       [0.3, 0.1, 0.6],         # dustbin, truth outside: a right rejection
                       [0.1, 0.1, 0.8]])
    active = torch.tensor([[True], [True], [True], [False]])
    table = SpecialistTable([[1, 2]], num_senones=4)
    table.update(torch.tensor([2, 2, 0, 0]), generalist, active, {0: specialist})
    row = table.to_dict()["per_specialist"][0]
    assert (row["active"], row["inside"], row["outside"]) == (3, 2, 1)
    assert row["generalist_inside_acc"] == 0.5 and row["specialist_inside_acc"] == 1.0
    assert row["specialist_dustbin_rate_inside"] == 0.5 and row["specialist_dustbin_rate_outside"] == 1.0
    assert row["mean_specialist_dustbin_prob_inside"] == pytest.approx((0.1 + 0.7) / 2)
    assert row["mean_generalist_outside_mass_inside"] == pytest.approx(0.2)
    assert table.to_dict()["all"]["active"] == 3 and row["cluster_size"] == 2
    assert "| 0 | 2 | 3 | 2 | 50.00 | 100.00 | 50.00 | 0.400 | 0.200 | 100.00 |" in specialists_markdown(
        {"specialists_own": table.to_dict()})


def test_a_specialist_never_active_has_no_rates() -> None:
    table = SpecialistTable([[0], [1]], num_senones=3)
    generalist = _log([[0.6, 0.3, 0.1]])
    table.update(torch.tensor([0]), generalist, torch.tensor([[True, False]]),
                 {0: _log([[0.9, 0.1]]), 1: _log([[0.5, 0.5]])})
    rows = table.to_dict()["per_specialist"]
    assert rows[1]["active"] == 0 and rows[1]["specialist_inside_acc"] is None
    assert rows[0]["specialist_inside_acc"] == 1.0 and not math.isnan(rows[0]["mean_specialist_dustbin_prob_inside"])
