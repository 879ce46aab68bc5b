"""The sweep itself: ask Optuna for trials, launch them through Hydra's launcher, tell the results.

Used by the ``ner_optuna`` Hydra sweeper (``hydra_plugins/ner_optuna_sweeper``). One process running
this loop is a *worker*; several workers (on one machine or many) can share a study through its
storage. Each worker runs trials until the study holds ``n_trials`` COMPLETE or PRUNED trials, so
re-running the same command resumes a study instead of starting it again.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import Trial, TrialState

from hydra_plugins.ner_optuna_sweeper.config import NerOptunaSweeperConf
from ner_experiments.sweeping.heartbeat import Heartbeats
from ner_experiments.sweeping.results import FINISHED, summary_text, write_results
from ner_experiments.sweeping.search_space import SweepConfigError, one_line
from ner_experiments.sweeping.study_setup import SweepStudy, open_sweep_study
from ner_experiments.sweeping.trial_jobs import gpus_to_assign, job_overrides, select

log = logging.getLogger(__name__)


def run_sweep(
    settings: NerOptunaSweeperConf,
    launcher: Any,
    config: Any,
    arguments: Sequence[str],
    validate_batch: Callable[[list[list[str]]], Any] | None = None,
) -> dict[str, Any]:
    """Open (or resume) the study, run its missing trials, write and print the results; return the summary."""
    sweep = open_sweep_study(settings, arguments, validate_batch)
    return SweepLoop(settings, sweep, launcher, config).run()


class SweepLoop:
    """Runs one worker of a study: see the module docstring."""

    def __init__(self, settings: NerOptunaSweeperConf, sweep: SweepStudy, launcher: Any, config: Any) -> None:
        self.s = settings
        self.sweep = sweep
        self.study, self.storage = sweep.study, sweep.storage
        self.launcher = launcher
        self.config = config
        self.gpus = gpus_to_assign(settings, launcher)
        self.heartbeats = Heartbeats(self.storage, settings.heartbeat_interval)
        self.job_idx = 0
        self.failures: list[str] = []
        self._waited_for: set[int] = set()

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
        self._fail_stale()
        trials = self.study.get_trials(deepcopy=False)
        finished = sum(1 for t in trials if t.state in FINISHED)
        running = sum(1 for t in trials if t.state == TrialState.RUNNING)
        if finished >= self.sweep.n_trials:
            return False
        if len(self.failures) >= self.s.max_failures:
            log.error(
                "stopping: %d trials failed in this run (hydra.sweeper.max_failures=%d); last error: %s",
                len(self.failures),
                self.s.max_failures,
                self.failures[-1],
            )
            return False
        free = self.sweep.n_trials - finished - running
        if free <= 0:
            return self._wait_for_other_workers(running)
        batch = self._ask_batch(min(self.s.n_jobs, free))
        if not batch:
            time.sleep(self.s.poll_interval)
            return True
        self._launch(batch)
        return True

    def _wait_for_other_workers(self, running: int) -> bool:
        if not self.s.heartbeat_interval:
            log.info(
                "%d trials are RUNNING in other workers and heartbeats are off: not waiting for them", running
            )
            return False
        if running not in self._waited_for:
            log.info("waiting for %d trials running in other workers", running)
            self._waited_for.add(running)
        time.sleep(self.s.poll_interval)
        return True

    def _fail_stale(self) -> None:
        if self.s.heartbeat_interval:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)

    def _is_surplus(self, trial: Trial) -> bool:
        """True when the first ``n_trials`` non-failed trials of the study are numbered below this one.

        Workers sharing a study may ask at the same moment; trial numbers order them, so exactly one
        of them keeps the last free slot.
        """
        taken = sum(
            1
            for t in self.study.get_trials(deepcopy=False)
            if t.number < trial.number
            and t.state in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
        )
        return taken >= self.sweep.n_trials

    def _ask_batch(self, size: int) -> list[Trial]:
        trials: list[Trial] = []
        for _ in range(size):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize()"
                trial = self.study.ask()
            if self._is_surplus(trial):
                # Another worker took the last slot: put the trial back in the queue, unsampled.
                self.storage.set_trial_state_values(trial._trial_id, state=TrialState.WAITING)
                break
            self.heartbeats.add(trial._trial_id)
            for name, dist in self.sweep.space.distributions.items():
                trial._suggest(name, dist)
            trials.append(trial)
        return trials

    def _launch(self, trials: list[Trial]) -> None:
        batch = []
        for i, t in enumerate(trials):
            gpu = self.gpus[i % len(self.gpus)] if self.gpus else None
            batch.append(job_overrides(t, self.sweep.space, self.s, self.sweep.storage_url, self.config, gpu))
        for t, overrides in zip(trials, batch, strict=True):
            plumbing = ("optuna.", "logger.", "hydra.", "++hydra.")
            log.info("trial %d: %s", t.number, " ".join(o for o in overrides if not o.startswith(plumbing)))
        try:
            returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
        except Exception as e:  # the launcher itself failed (e.g. a joblib worker was killed)
            for t in trials:
                self._fail(t, f"launcher error: {type(e).__name__}: {one_line(e)}")
                self.heartbeats.remove(t._trial_id)
            return
        self.job_idx += len(batch)
        for trial, ret in zip(trials, returns, strict=True):
            output_dir = select(getattr(ret, "hydra_cfg", None), "hydra.runtime.output_dir")
            if output_dir:
                self._set_user_attr(trial, "output_dir", str(output_dir))
            self._tell(trial, ret)
            self.heartbeats.remove(trial._trial_id)

    def _tell(self, trial: Trial, ret: Any) -> None:
        status = getattr(getattr(ret, "status", None), "name", "FAILED")
        value: Any = getattr(ret, "_return_value", None)
        if status == "COMPLETED":
            try:
                objective = float(value)
            except (TypeError, ValueError):
                self._fail(trial, f"the task returned {value!r}, not a number")
                return
            if math.isnan(objective):
                self._fail(trial, "the task returned NaN")
                return
            self._study_tell(trial, objective, skip_if_finished=True)
            log.info("trial %d COMPLETE: %s", trial.number, objective)
        elif isinstance(value, optuna.TrialPruned) or type(value).__name__ == "TrialPruned":
            self._study_tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            log.info("trial %d PRUNED (%s)", trial.number, value)
        else:
            self._fail(trial, f"{type(value).__name__}: {one_line(value)}")

    def _study_tell(self, trial: Trial, *args: Any, **kwargs: Any) -> None:
        try:
            self.study.tell(trial, *args, **kwargs)
        except RuntimeError as e:
            # The grid sampler calls study.stop() when the grid is exhausted, which Optuna only
            # allows inside optimize(); the trial's state is stored before that.
            if "Study.stop" not in str(e):
                raise

    def _set_user_attr(self, trial: Trial, key: str, value: Any) -> None:
        try:
            self.storage.set_trial_user_attr(trial._trial_id, key, value)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker finished it (a missed heartbeat): its record stands

    def _fail(self, trial: Trial, error: str) -> None:
        self._set_user_attr(trial, "error", error[:2000])
        self._study_tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        self.failures.append(error)
        log.warning("trial %d FAILED: %s", trial.number, error)

    def report(self) -> dict[str, Any]:
        """Print the table of trials and the best trial; write them (and plots) to the sweep directory."""
        sweep_dir = Path(str(select(self.config, "hydra.sweep.dir") or "."))
        summary = write_results(self.study, sweep_dir, plots=self.s.plots)
        print(
            f"\nStudy {self.s.study_name!r}:\n{summary_text(self.study)}\n"
            f"Results: {sweep_dir}/trials.csv, best.json"
        )
        if self.s.wandb_summary and str(select(self.config, "logger.backend")) == "wandb":
            from ner_experiments.sweeping.wandb_summary import log_sweep_summary

            log_sweep_summary(self.study, self.config, sweep_dir, summary)
        if self.failures and len(self.failures) >= self.s.max_failures:
            raise SweepConfigError(
                f"the sweep stopped after {len(self.failures)} failed trials (hydra.sweeper.max_failures="
                f"{self.s.max_failures}); last error: {self.failures[-1]}. The trial logs are in {sweep_dir}"
            )
        return summary
