"""Benchmarks, run from the repository root as modules: ``python -m bench.infer`` (they share helpers with tests)."""
