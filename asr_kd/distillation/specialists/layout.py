"""The specialists directory: what ``asr-kd specialists cluster | train`` leave on disk::

    <dir>/
      clusters.json              the senone clusters and their generalist (asr-kd specialists cluster)
      m000/train/                the trainer's out_dir of specialist 0 (config.yaml, checkpoint.pt,
                                 log.csv, model.pt = before the dustbin correction, summary.json)
      m000/specialist.pt         the specialist (dustbin bias raised by log r; metadata "task" holds its
                                 cluster, sample counts and correction): its presence marks it finished
      ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CLUSTERS_FILE, SPECIALIST_FILE, TRAIN_DIR = "clusters.json", "specialist.pt", "train"


@dataclass(frozen=True)
class SpecialistsDir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def clusters(self) -> Path:
        return self.root / CLUSTERS_FILE

    def member_dir(self, index: int) -> Path:
        return self.root / f"m{index:03d}"

    def train_dir(self, index: int) -> Path:
        return self.member_dir(index) / TRAIN_DIR

    def specialist(self, index: int) -> Path:
        return self.member_dir(index) / SPECIALIST_FILE
