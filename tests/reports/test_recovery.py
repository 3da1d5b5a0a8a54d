import json

import pytest

from asr_kd.cli import main
from asr_kd.reports.recovery import recovered_fraction, recovery_from_table
from asr_kd.utils.errors import AsrKdError


def test_paper_numbers() -> None:
    # Hinton et al. 2015: baseline 58.9, ensemble 61.1, distilled 60.8 -> "more than 80%".
    assert recovered_fraction(58.9, 61.1, 60.8) == pytest.approx(0.8636, abs=1e-4)
    # E2: 3% hard 44.5 dev, 100% baseline 58.9, 3% soft 57.0.
    assert recovered_fraction(44.5, 58.9, 57.0) == pytest.approx(0.868, abs=1e-3)
    with pytest.raises(AsrKdError, match="no gain"):
        recovered_fraction(1.0, 1.0, 2.0)


def test_recovery_cli_from_table(tmp_path) -> None:
    metric = "frame accuracy (%)"
    table = {"rows": {
        "baseline": {metric: {"values": [50.0, 52.0]}},
        "ensemble": {metric: {"values": [55.0]}},
        "student": {metric: {"values": [53.0, 54.0, 52.0]}},
    }}
    path = tmp_path / "e1.json"
    path.write_text(json.dumps(table))
    result = recovery_from_table(table, metric, "baseline", "ensemble", ["student"])
    assert result["student"]["fraction"] == pytest.approx((53 - 51) / (55 - 51))
    out = tmp_path / "recovery.md"
    assert main(["report", "recovery", "--table", str(path), "--metric", metric, "--low", "baseline",
                 "--high", "ensemble", "--rows", "student", "--out", str(out)]) == 0
    assert "student: recovers 50%" in out.read_text()
