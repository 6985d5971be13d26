"""Benchmarks: each prints its figure and its ratio against a reference run in the same process."""
