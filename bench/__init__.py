"""Benchmarks for memgpt_lab; ``make bench`` (``python -m bench``) runs them all."""
