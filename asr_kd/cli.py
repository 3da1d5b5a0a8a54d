"""``asr-kd``: one sub-command per pipeline stage.

Each stage package has a ``cli.py`` with ``register(subparsers)`` that adds its sub-command(s)
and sets ``func`` to a handler taking the parsed ``argparse.Namespace``. Heavy imports (torch)
happen inside handlers so that ``asr-kd --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from asr_kd import __version__
from asr_kd.utils.errors import AsrKdError
from asr_kd.utils.logging import setup_logging

# Order = pipeline order, as shown by ``asr-kd --help``.
STAGE_CLIS = (
    "asr_kd.data.cli",
    "asr_kd.features.cli",
    "asr_kd.alignment.cli",
    "asr_kd.training.cli",
    "asr_kd.distillation.cli",
    "asr_kd.distillation.specialists.cli",
    "asr_kd.models.cli",
    "asr_kd.lm.cli",
    "asr_kd.decoding.cli",
    "asr_kd.scoring.cli",
    "asr_kd.export.cli",
    "asr_kd.reports.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-kd",
        description="Knowledge distillation of hybrid DNN-HMM acoustic models on LibriSpeech.",
    )
    parser.add_argument("--version", action="version", version=f"asr_kd {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in STAGE_CLIS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        result = args.func(args)
    except AsrKdError as err:
        _close_progress_bars()
        print(f"asr-kd {args.command}: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print(f"asr-kd {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def one_line(message: str) -> str:
    """``message`` with its line breaks (from a library's multi-line text) folded into one line."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def _close_progress_bars() -> None:
    """Close tqdm bars left open by the failed command, so that its error line starts a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
