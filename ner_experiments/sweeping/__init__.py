"""Optuna hyperparameter sweeps run as Hydra multiruns (``python train.py -m sweep=lr_epochs``).

- :mod:`~ner_experiments.sweeping.search_space`: the ``params`` syntax of hydra-optuna-sweeper.
- :mod:`~ner_experiments.sweeping.samplers`: samplers and pruners by name.
- :mod:`~ner_experiments.sweeping.storage`: sqlite/PostgreSQL storages, resuming a study.
- :mod:`~ner_experiments.sweeping.sweep_loop`: ask, launch through Hydra, tell.
- :mod:`~ner_experiments.sweeping.trial_reporting`: the training side (report, prune, heartbeat).
- :mod:`~ner_experiments.sweeping.results`: trials.csv, best.json and plots.

The Hydra plugin itself is ``hydra_plugins/ner_optuna_sweeper`` (``hydra/sweeper: ner_optuna``).
"""
