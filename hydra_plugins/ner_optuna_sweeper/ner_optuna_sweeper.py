"""The Hydra ``Sweeper`` class: a thin adapter from Hydra's plugin interface to the sweep loop."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.ner_optuna_sweeper.config import NerOptunaSweeperConf  # noqa: F401  (registers the config)

log = logging.getLogger(__name__)


class NerOptunaSweeper(Sweeper):
    """Optuna sweeper with pruning, resumable studies, heartbeats and shared storage."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> Any:
        from ner_experiments.errors import NerExperimentError
        from ner_experiments.sweeping.sweep_loop import SweepLoop, SweepSettings

        assert self.config is not None
        raw = {k: _plain(v) for k, v in self.settings.items() if k != "_target_"}
        if not raw.get("study_name"):
            raw["study_name"] = str(self.config.hydra.job.name)
        if not raw.get("storage_dir"):
            output_dir = OmegaConf.select(self.config, "paths.output_dir", default="outputs")
            raw["storage_dir"] = f"{output_dir}/optuna"
        try:
            loop = SweepLoop(
                SweepSettings(**raw), self.launcher, self.config, validate_batch=self._validate_batch
            )
            loop.prepare(arguments)
            return loop.run()
        except NerExperimentError as e:
            # Hydra would print a stack trace; the user needs one line and a non-zero exit.
            log.error("%s", e)
            print(f"error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)

    def _validate_batch(self, batch: Sequence[Sequence[str]]) -> None:
        self.validate_batch_is_legal(batch)


def _plain(value: Any) -> Any:
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value
