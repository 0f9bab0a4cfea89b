"""Benchmarks: each times a Taurus command side by side with the tutorial's shell recipe."""
