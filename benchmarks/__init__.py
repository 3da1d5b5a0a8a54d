"""Benchmarks of every pipeline stage (``python -m benchmarks.run``); see benchmarks/README.md."""
