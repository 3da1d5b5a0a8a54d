"""Shared helpers: user-facing errors, atomic file writes and the sharded array store."""

from asr_kd.utils.errors import AsrKdError

__all__ = ["AsrKdError"]
