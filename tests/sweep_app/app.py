"""A stand-in for train.py in sweep tests: same config keys, simulated training, no model.

Each "epoch" is ``steps_per_epoch`` steps; after it the app evaluates and reports the objective to
the trial exactly as training does (:class:`TrialReporter`, which the HF callback wraps).
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ner_experiments.sweeping.trial_reporting import TrialReporter


def simulated_objective(cfg: DictConfig, epoch: int) -> float:
    """The objective after ``epoch`` epochs: rises with epochs; ``sim.mode`` decides the shape."""
    lr = float(cfg.trainer.learning_rate)
    trial = cfg.optuna.trial_number
    if cfg.sim.mode == "first_best":  # trial 0 is best at every step: a median pruner must prune the others
        base = 1.0 if trial == 0 else 0.1
    else:  # best near lr=1e-3
        base = 1.0 / (1.0 + abs(math.log10(lr) + 3.0))
    noise = float(cfg.sim.seed_noise) * random.Random(int(cfg.seed)).uniform(-1.0, 1.0)
    return base * epoch / (epoch + 1.0) + noise


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    trial = cfg.optuna.trial_number
    out = Path(cfg.paths.output_dir)
    if cfg.sim.hang_trial is not None and trial == cfg.sim.hang_trial:
        (out / f"hanging_{trial}").write_text("hanging")
        time.sleep(3600)
    if cfg.sim.fail_trial is not None and trial == cfg.sim.fail_trial:
        raise RuntimeError(f"simulated failure in trial {trial}")
    reporter = None
    if cfg.optuna.storage:
        reporter = TrialReporter(
            cfg.optuna.storage, cfg.optuna.study_name, trial, cfg.optuna.heartbeat_interval
        )
    epochs = int(cfg.trainer.num_train_epochs)
    step = 0
    value = 0.0
    for epoch in range(1, epochs + 1):
        time.sleep(float(cfg.sim.epoch_seconds))
        step += int(cfg.sim.steps_per_epoch)
        value = simulated_objective(cfg, epoch)
        # Reported at hundredths of an epoch, as training reports (steps_trained: the app's own steps).
        if reporter is not None and reporter.report(value, 100 * epoch, step):
            break
    if reporter is not None:
        reporter.finish(step)
        reporter.raise_if_stopped()
    with open(out / "trained.log", "a") as f:
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "-")
        f.write(
            f"{trial} {step} gpu={gpu} pid={os.getpid()} {cfg.logger.run_name} {list(cfg.logger.tags)} seed={cfg.seed} job={cfg.logger.job_type}\n"
        )
    return value


if __name__ == "__main__":
    main()
