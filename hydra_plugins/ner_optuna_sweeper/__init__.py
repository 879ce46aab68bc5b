"""Hydra sweeper plugin ``ner_optuna``: Optuna (5.x) search with pruning, resumable studies and shared storage.

Select it with ``defaults: - override /hydra/sweeper: ner_optuna`` (the ``sweep=...`` presets do).
The work is done in :mod:`ner_experiments.sweeping`.
"""
