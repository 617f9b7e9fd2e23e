"""Benchmarks (``make bench``): speed is measured here, never in a timed test."""
