"""The sweep itself: ask Optuna for trials, launch them through Hydra's launcher, tell the results.

One process running this loop is a *worker*; several workers (on one machine or many) can share a
study through its storage. Each runs trials until the study holds ``n_trials`` COMPLETE or PRUNED
trials, so re-running the same command resumes a study instead of starting it again.
"""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import Trial, TrialState

from hydra_plugins.ner_optuna_sweeper.config import NerOptunaSweeperConf
from ner_experiments.sweeping.results import log_sweep_summary, write_results
from ner_experiments.sweeping.search_space import (
    SweepConfigError,
    format_param,
    one_line,
    short_name,
    trial_overrides,
)
from ner_experiments.sweeping.study import STORAGE_ENV, Heartbeats, SweepStudy

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def visible_gpus() -> list[str]:
    """GPU ids this process may hand out: ``CUDA_VISIBLE_DEVICES`` when set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() not in ("", "-1")]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def _quote(value: str) -> str:
    """Quote a string for a Hydra override unless it is a plain identifier-like word."""
    if re.fullmatch(r"[A-Za-z_./:+-][A-Za-z0-9_./:+-]*", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SweepLoop:
    """One worker of a study (see the module docstring); :meth:`run` returns the best-trial summary."""

    def __init__(self, settings: NerOptunaSweeperConf, sweep: SweepStudy, launcher: Any, config: Any) -> None:
        self.s, self.sweep, self.study = settings, sweep, sweep.study
        self.launcher, self.config = launcher, config
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        use_gpus = settings.assign_gpus and "joblib" in type(launcher).__module__.lower()
        gpus = visible_gpus() if use_gpus else []
        self.gpus = gpus if len(gpus) >= 2 else []
        self.heartbeats = Heartbeats(sweep.storage, settings.heartbeat_interval)
        os.environ[STORAGE_ENV] = sweep.storage_url  # inherited by every launcher's trial processes
        self.job_idx = 0
        self.failures: list[str] = []
        self._waiting_for = 0

    def run(self) -> dict[str, Any]:
        """Run trials until the study is complete; write and print the results; return the best-trial summary."""
        if self.gpus:
            log.info("giving each parallel trial one GPU of %s (CUDA_VISIBLE_DEVICES)", ",".join(self.gpus))
        try:
            while self._run_next_batch():
                pass
        finally:
            self.heartbeats.stop()
        return self.report()

    def _run_next_batch(self) -> bool:
        """Launch the next batch of trials and tell their results; False when this worker is done."""
        if self.s.heartbeat_interval:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
        trials = self.study.get_trials(deepcopy=False)
        finished = sum(t.state in FINISHED for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if finished >= self.sweep.n_trials:
            return False
        if len(self.failures) >= self.s.max_failures:
            log.error("stopping: %d trials failed in this run", len(self.failures))
            return False
        free = self.sweep.n_trials - finished - running
        if free <= 0 and not self.s.heartbeat_interval:
            log.info("%d trials are RUNNING in other workers and heartbeats are off: not waiting", running)
            return False
        if free <= 0 and running != self._waiting_for:
            log.info("waiting for %d trials running in other workers", running)
            self._waiting_for = running
        batch = self._ask_batch(min(self.s.n_jobs, free))
        if batch:
            self._launch(batch)
        else:  # the other workers hold the remaining trials (a dead one is failed and queued again)
            time.sleep(self.s.poll_interval)
        return True

    def _ask_batch(self, size: int) -> list[Trial]:
        trials: list[Trial] = []
        for _ in range(size):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize()"
                trial = self.study.ask()
            # Workers sharing a study may ask at the same moment; trial numbers order them, so exactly
            # one keeps the last free slot and the others put their trial back in the queue, unsampled.
            ahead = [t for t in self.study.get_trials(deepcopy=False) if t.number < trial.number]
            if sum(t.state in (*FINISHED, TrialState.RUNNING) for t in ahead) >= self.sweep.n_trials:
                self.sweep.storage.set_trial_state_values(trial._trial_id, state=TrialState.WAITING)
                break
            self.heartbeats.add(trial._trial_id)
            for name, dist in self.sweep.space.distributions.items():
                trial._suggest(name, dist)
            trials.append(trial)
        return trials

    def job_overrides(self, trial: Trial, gpu: str | None) -> list[str]:
        """The overrides of one trial's job: fixed and sampled values first, then the sweep's plumbing."""
        name = str(self.s.study_name)
        overrides = trial_overrides(self.sweep.space, trial.params) + [
            # The URL (with its password) reaches the trial through the environment, never its config.
            f"optuna.storage=${{oc.env:{STORAGE_ENV}}}",
            f"optuna.study_name={_quote(name)}",
            f"optuna.trial_number={trial.number}",
            f"optuna.heartbeat_interval={self.s.heartbeat_interval or 'null'}",
            # Pinned as resolved here: a time-stamped ${now:...} would be evaluated again (differently)
            # in a launcher's worker process, scattering trials over several folders.
            f"hydra.sweep.dir={_quote(str(self.sweep_dir))}",
        ]
        if OmegaConf.select(self.config, "logger") is not None:
            run_name = f"trial-{trial.number}_" + "_".join(
                f"{short_name(k)}={f'{v:.3g}' if isinstance(v, float) else format_param(v)}"
                for k, v in trial.params.items()
            )
            tags = ",".join(_quote(t) for t in ("sweep", name, f"trial-{trial.number}"))
            overrides += [
                f"logger.group={_quote(name)}",
                f"logger.run_name={_quote(run_name)}",
                f"logger.tags=[{tags}]",
            ]
        if gpu is not None:
            overrides.append(f"++hydra.job.env_set.CUDA_VISIBLE_DEVICES={gpu}")
        return overrides

    def _launch(self, trials: list[Trial]) -> None:
        gpus: list[str | None] = [*self.gpus] or [None]
        batch = [self.job_overrides(t, gpus[i % len(gpus)]) for i, t in enumerate(trials)]
        for t, overrides in zip(trials, batch, strict=True):
            plumbing = ("optuna.", "logger.", "hydra.", "++hydra.")
            log.info("trial %d: %s", t.number, " ".join(o for o in overrides if not o.startswith(plumbing)))
        try:
            returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
            self.job_idx += len(batch)
        except Exception as e:  # the launcher itself failed (e.g. a joblib worker was killed)
            returns = [e] * len(trials)
        for trial, ret in zip(trials, returns, strict=True):
            if getattr(ret, "hydra_cfg", None) is not None:  # the trial's run dir, with its model
                self._set_user_attr(trial, "output_dir", str(ret.hydra_cfg.hydra.runtime.output_dir))
            self._tell(trial, ret)
            self.heartbeats.remove(trial._trial_id)

    def _tell(self, trial: Trial, ret: Any) -> None:
        # What the task returned or raised, or the launcher's own error.
        value = getattr(ret, "_return_value", ret)
        if isinstance(value, optuna.TrialPruned):
            self._study_tell(trial, state=TrialState.PRUNED)
            log.info("trial %d PRUNED (%s)", trial.number, value)
            return
        if isinstance(value, BaseException):
            self._fail(trial, f"{type(value).__name__}: {one_line(value)}")
            return
        try:
            objective = float(value)
        except (TypeError, ValueError):
            objective = math.nan
        if math.isnan(objective):
            self._fail(trial, f"the task returned {value!r}, not a number")
        else:
            self._study_tell(trial, objective)
            log.info("trial %d COMPLETE: %s", trial.number, objective)

    def _study_tell(self, trial: Trial, value: float | None = None, state: TrialState | None = None) -> None:
        try:
            self.study.tell(trial, value, state, skip_if_finished=True)
        except RuntimeError as e:
            # The grid sampler calls study.stop() when the grid is exhausted, which Optuna only
            # allows inside optimize(); the trial's state is stored before that.
            if "Study.stop" not in str(e):
                raise

    def _set_user_attr(self, trial: Trial, key: str, value: str) -> None:
        try:
            self.sweep.storage.set_trial_user_attr(trial._trial_id, key, value)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker finished it (a missed heartbeat): its record stands

    def _fail(self, trial: Trial, error: str) -> None:
        self._set_user_attr(trial, "error", error[:2000])
        self._study_tell(trial, state=TrialState.FAIL)
        self.failures.append(error)
        log.warning("trial %d FAILED: %s", trial.number, error)

    def report(self) -> dict[str, Any]:
        """Print the table of trials and the best trial; write them (and plots) to the sweep directory."""
        summary = write_results(self.study, self.sweep_dir, self.s.plots)
        if self.s.wandb_summary and OmegaConf.select(self.config, "logger.backend") == "wandb":
            log_sweep_summary(self.study, self.config.logger, self.sweep_dir, summary)
        if len(self.failures) >= self.s.max_failures:
            raise SweepConfigError(
                f"the sweep stopped after {len(self.failures)} failed trials (hydra.sweeper.max_failures="
                f"{self.s.max_failures}); last error: {self.failures[-1]}. The trial logs are in {self.sweep_dir}"
            )
        return summary
