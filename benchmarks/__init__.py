"""Benchmarks: speed and learning-quality scripts whose figures the README quotes."""

if __name__ != "trm_rl.benchmarks":
    raise ImportError("import trm_rl.benchmarks, not benchmarks")
