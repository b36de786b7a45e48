"""Benchmarks of the binding beside the native C client: python -m spread.bench."""
