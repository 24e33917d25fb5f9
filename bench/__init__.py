"""Benchmarks of the runtime on the real local stack (`make bench`); figures in BENCHMARKS.md."""
