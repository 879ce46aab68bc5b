"""Training: :func:`run_training` (set-up → fit → evaluate → save), what ``train.py`` runs."""

from ner_experiments.tracking import import_trainer_integrations_quietly

import_trainer_integrations_quietly()  # before transformers' Trainer is imported by run.py

from ner_experiments.train.run import run_training  # noqa: E402

__all__ = ["run_training"]
