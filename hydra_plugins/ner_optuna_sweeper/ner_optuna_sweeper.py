"""The Hydra ``Sweeper`` class: a thin adapter from Hydra's plugin interface to the sweep loop."""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.ner_optuna_sweeper.config import NerOptunaSweeperConf

log = logging.getLogger(__name__)


class NerOptunaSweeper(Sweeper):
    """Optuna sweeper with pruning, resumable studies, heartbeats and shared storage."""

    def __init__(self, **settings: Any) -> None:
        # Hydra hands over the resolved ``hydra.sweeper`` node; typed back into its one declaration.
        merged = OmegaConf.merge(OmegaConf.structured(NerOptunaSweeperConf), settings)
        self.settings: NerOptunaSweeperConf = OmegaConf.to_object(merged)  # type: ignore[assignment]

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> Any:
        from ner_experiments.errors import NerExperimentError
        from ner_experiments.sweeping.study import open_sweep_study
        from ner_experiments.sweeping.sweep_loop import SweepLoop

        output_dir = OmegaConf.select(self.config, "paths.output_dir", default="outputs")
        settings = dataclasses.replace(
            self.settings,
            study_name=self.settings.study_name or str(self.config.hydra.job.name),
            storage_dir=self.settings.storage_dir or f"{output_dir}/optuna",
        )
        try:
            sweep = open_sweep_study(settings, arguments, self.validate_batch_is_legal)
            return SweepLoop(settings, sweep, self.launcher, self.config).run()
        except NerExperimentError as e:
            # Hydra would print a stack trace; the user needs one line and a non-zero exit.
            log.error("%s", e)
            print(f"error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
