"""The Hydra entry point behind ``train.py`` and the ``ner-train`` console script."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ner_experiments.config import register_configs, validate_config
from ner_experiments.errors import NerExperimentError
from ner_experiments.run_dirs import register_resolvers

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"

register_configs()
register_resolvers()
# Quieter start-up: these libraries warn about things a user cannot act on here.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("WANDB_SILENT", "true")

log = logging.getLogger("ner_experiments")


def run_task(cfg: DictConfig) -> float:
    """Hydra task function: train as configured and return the objective for a sweeper.

    A user error (bad config value, bad data, unreachable model) becomes one line on stderr and exit
    code 2, unless running under a multirun, where it is raised so the sweeper records the failure.
    """
    try:
        validate_config(cfg)  # fail fast: a bad value is reported before the slow torch/transformers imports
        from ner_experiments.training import run_training

        return run_training(cfg)
    except NerExperimentError as err:
        log.error("%s", err)
        if _in_multirun():
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def make_main(config_dir: Path = CONFIG_DIR):
    if not (config_dir / "train.yaml").is_file():
        raise SystemExit(f"error: no configs at {config_dir}: install the project with `pip install -e .` from its checkout")
    return hydra.main(config_path=str(config_dir), config_name="train", version_base="1.3")(run_task)


def train_main() -> None:
    """Console script ``ner-train``: the same as ``python train.py``."""
    make_main()()
