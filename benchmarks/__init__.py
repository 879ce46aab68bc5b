"""Speed benchmark of ``train.py trainer=fast`` against the tutorial's recipe (see benchmarks/README.md).

A package so its scripts import one another by name: run them from the repository root with
``python -m benchmarks.run_benchmark``.
"""
