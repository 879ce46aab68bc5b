"""Optuna hyperparameter sweeps run as Hydra multiruns (``python train.py -m sweep=lr_epochs``; docs/sweeps.md).

The Hydra plugin is ``hydra_plugins/ner_optuna_sweeper``; :mod:`.sweep_loop` does its work, opening the
study with :mod:`.study`; training reports to its trial through :mod:`.trial_reporting`.
"""
