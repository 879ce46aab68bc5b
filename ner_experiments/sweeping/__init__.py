"""Optuna hyperparameter sweeps run as Hydra multiruns (``python train.py -m sweep=lr_epochs``).

- :mod:`~ner_experiments.sweeping.search_space`: the ``params`` syntax of hydra-optuna-sweeper.
- :mod:`~ner_experiments.sweeping.samplers`: samplers and pruners by short name, options checked.
- :mod:`~ner_experiments.sweeping.storage`: sqlite/PostgreSQL storages, resuming a study.
- :mod:`~ner_experiments.sweeping.study_setup`: every setting checked, then the study opened.
- :mod:`~ner_experiments.sweeping.sweep_loop`: ask, launch through Hydra, tell.
- :mod:`~ner_experiments.sweeping.trial_jobs`: the overrides (and GPU) each launched trial gets.
- :mod:`~ner_experiments.sweeping.heartbeat`: heartbeats that tell a live trial from a dead one.
- :mod:`~ner_experiments.sweeping.trial_reporting`: the training side (report, prune, heartbeat).
- :mod:`~ner_experiments.sweeping.results`: trials.csv, best.json and plots.
- :mod:`~ner_experiments.sweeping.wandb_summary`: the sweep's summary run on W&B.

The Hydra plugin itself is ``hydra_plugins/ner_optuna_sweeper`` (``hydra/sweeper: ner_optuna``); its
``config.py`` declares the sweeper's settings once, and the loop takes that dataclass as is.
"""
