"""Hydra sweeper plugin ``ner_optuna`` (``hydra/sweeper=ner_optuna``); the work is in :mod:`ner_experiments.sweeping`."""
