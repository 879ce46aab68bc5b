"""Training: :func:`run_training` (set-up → fit → evaluate → save), what ``train.py`` runs."""

from ner_experiments.train.run import run_training

__all__ = ["run_training"]
