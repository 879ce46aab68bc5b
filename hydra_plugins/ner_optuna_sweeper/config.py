"""The ``hydra.sweeper`` settings of the ``ner_optuna`` sweeper: their one declaration (docs/sweeps.md).

OmegaConf reads these annotations at runtime: keep ``typing`` forms and no ``from __future__ import annotations``
(Hydra's plugin scan loads this module in a way that breaks dataclasses with postponed annotations).
"""
# ruff: noqa: UP006, UP035, UP045

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class SamplerConf:
    name: str = "tpe"  # tpe | random | grid | cmaes
    seed: Optional[int] = 42
    # Constructor options of each sampler; only the chosen one's are used, so switching `name` on the
    # command line needs no clean-up of another sampler's options. The same holds for pruners.
    tpe: Dict[str, Any] = field(default_factory=dict)
    random: Dict[str, Any] = field(default_factory=dict)
    grid: Dict[str, Any] = field(default_factory=dict)
    cmaes: Dict[str, Any] = field(default_factory=dict)


@dataclass
class PrunerConf:
    name: str = "median"  # median | hyperband | successive_halving | none
    median: Dict[str, Any] = field(default_factory=dict)
    hyperband: Dict[str, Any] = field(default_factory=dict)
    successive_halving: Dict[str, Any] = field(default_factory=dict)
    # Judge a trial only against trials whose trainer.num_train_epochs is the same or longer (median,
    # successive_halving): a shorter schedule has decayed its learning rate further at the same epoch.
    same_or_longer_schedule: bool = True


@dataclass
class ConfirmConf:
    """After the search: re-run the best configurations with more seeds and rank them by mean."""

    top_k: int = 0  # distinct configurations to confirm (the best COMPLETE search trials); 0 = off
    seeds: int = 2  # further seeds per configuration (seed+1 .. seed+seeds); the search trial is one more


@dataclass
class NerOptunaSweeperConf:
    _target_: str = "hydra_plugins.ner_optuna_sweeper.ner_optuna_sweeper.NerOptunaSweeper"
    study_name: Optional[str] = None  # null = the job name
    direction: str = "maximize"  # maximize | minimize (the task function's return value)
    # SQLAlchemy URL; null = $NER_OPTUNA_STORAGE (keeps a password out of every file), else the sqlite
    # file <storage_dir>/<study_name>.db
    storage: Optional[str] = None
    storage_dir: Optional[str] = None  # null = <paths.output_dir>/optuna
    n_trials: int = 20  # COMPLETE or PRUNED trials the study should end with
    n_jobs: int = 1  # trials launched at a time
    sampler: SamplerConf = field(default_factory=SamplerConf)
    pruner: PrunerConf = field(default_factory=PrunerConf)
    params: Dict[str, Any] = field(default_factory=dict)  # search space and fixed overrides
    confirm: ConfirmConf = field(default_factory=ConfirmConf)
    heartbeat_interval: Optional[int] = 10  # seconds; null turns dead-trial detection off
    grace_period: Optional[int] = 60  # a RUNNING trial without a heartbeat for this long is dead
    max_retry: Optional[int] = 3  # times a dead trial is queued again
    max_failures: int = 3  # stop the sweep after this many trials raised in one run
    poll_interval: float = 5.0  # seconds between checks while other workers finish the last trials
    assign_gpus: bool = True  # joblib launcher: one GPU per parallel trial (CUDA_VISIBLE_DEVICES)
    plots: bool = True  # PNG plots in the sweep directory
    wandb_summary: bool = True  # a summary run on W&B when logger.backend=wandb


ConfigStore.instance().store(
    group="hydra/sweeper", name="ner_optuna", node=NerOptunaSweeperConf, provider="ner_optuna_sweeper"
)
