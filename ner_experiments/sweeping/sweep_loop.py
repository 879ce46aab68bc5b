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
from ner_experiments.sweeping.confirmation import (
    CONFIRM_OF,
    CONFIRM_SEED,
    NOT_RUN,
    ConfirmRun,
    plan_confirmation,
    runs_of,
    search_trials,
)
from ner_experiments.sweeping.results import log_sweep_summary, write_results
from ner_experiments.sweeping.search_space import (
    SearchSpace,
    SweepConfigError,
    format_param,
    one_line,
    short_name,
    trial_overrides,
)
from ner_experiments.sweeping.study import STORAGE_ENV, Heartbeats, SweepStudy, fail_lost_trials

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


def base_seed(space: SearchSpace, config: Any, needed: bool) -> int:
    """The seed of the search trials (``seed`` fixed on the command line, else the config's)."""
    seed = space.fixed.get("seed", OmegaConf.select(config, "seed"))
    try:
        return int(seed)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        if needed:
            raise SweepConfigError(
                f"hydra.sweeper.confirm needs an integer seed in the config to start its further seeds from, got {seed!r}"
            ) from None
        return 0


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
        self.base_seed = base_seed(sweep.space, config, settings.confirm.top_k > 0)
        self.confirm_seeds = [self.base_seed + i for i in range(1, settings.confirm.seeds + 1)]
        self.objective = str(OmegaConf.select(config, "objective", default=None) or "objective")
        with warnings.catch_warnings():  # plots and optuna-dashboard name their axis after it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names([self.objective])

    def run(self) -> dict[str, Any]:
        """Run trials until the study is complete; write and print the results; return the best-trial summary."""
        if self.gpus:
            log.info("giving each parallel trial one GPU of %s (CUDA_VISIBLE_DEVICES)", ",".join(self.gpus))
        try:
            while self._run_next_batch():
                pass
            if self.s.confirm.top_k and self._search_done():
                self._confirm()
        finally:
            self.heartbeats.stop()
        return self.report()

    def _run_next_batch(self) -> bool:
        """Launch the next batch of trials and tell their results; False when this worker is done."""
        if self.s.heartbeat_interval:
            fail_lost_trials(self.study)
        trials = search_trials(self.study.get_trials(deepcopy=False))  # confirmation runs do not count
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
            ahead = [
                t for t in search_trials(self.study.get_trials(deepcopy=False)) if t.number < trial.number
            ]
            if sum(t.state in (*FINISHED, TrialState.RUNNING) for t in ahead) >= self.sweep.n_trials:
                self.sweep.storage.set_trial_state_values(trial._trial_id, state=TrialState.WAITING)
                break
            self.heartbeats.add(trial._trial_id)
            for name, dist in self.sweep.space.distributions.items():
                trial._suggest(name, dist)
            trials.append(trial)
        return trials

    def job_overrides(self, trial: Trial, gpu: str | None, confirm: ConfirmRun | None = None) -> list[str]:
        """The overrides of one trial's job: fixed and sampled values first, then the sweep's plumbing.

        A confirmation run (``confirm``) gets its seed after them. Its run dir is named by its trial
        number (``trial-<n>``; ``trial-<n>-confirm-<of>-seed<s>``), so a resumed sweep never renumbers.
        """
        name = str(self.s.study_name)
        space, label = self.sweep.space, f"trial-{trial.number}"
        if confirm is not None:
            space = SearchSpace(space.distributions, {k: v for k, v in space.fixed.items() if k != "seed"})
            label = f"confirm-{confirm.of.number}-seed{confirm.seed}"
        subdir = f"trial-{trial.number}" + (f"-{label}" if confirm is not None else "")
        overrides = (
            trial_overrides(space, trial.params)
            + ([f"seed={confirm.seed}"] if confirm is not None else [])
            + [
                # The URL (with its password) reaches the trial through the environment, never its config.
                f"optuna.storage=${{oc.env:{STORAGE_ENV}}}",
                f"optuna.study_name={_quote(name)}",
                f"optuna.trial_number={trial.number}",
                f"optuna.heartbeat_interval={self.s.heartbeat_interval or 'null'}",
                # Pinned as resolved here: a time-stamped ${now:...} would be evaluated again (differently)
                # in a launcher's worker process, scattering trials over several folders.
                f"hydra.sweep.dir={_quote(str(self.sweep_dir))}",
                f"hydra.sweep.subdir={subdir}",
            ]
        )
        if OmegaConf.select(self.config, "logger") is not None:
            run_name = f"{label}_" + "_".join(
                f"{short_name(k)}={f'{v:.3g}' if isinstance(v, float) else format_param(v)}"
                for k, v in trial.params.items()
            )
            tags = ["sweep", name, f"trial-{trial.number}"]
            if confirm is not None:  # tagged with the configuration it confirms
                tags += ["confirm", f"config-trial-{confirm.of.number}", f"seed-{confirm.seed}"]
            overrides += [
                f"logger.group={_quote(name)}",
                f"logger.run_name={_quote(run_name)}",
                f"logger.tags=[{','.join(_quote(t) for t in tags)}]",
                f"logger.job_type={'confirm' if confirm is not None else 'trial'}",
            ]
        if gpu is not None:
            overrides.append(f"++hydra.job.env_set.CUDA_VISIBLE_DEVICES={gpu}")
        return overrides

    def _launch(self, trials: list[Trial], confirms: list[ConfirmRun] | None = None) -> None:
        gpus: list[str | None] = [*self.gpus] or [None]
        runs: list[ConfirmRun | None] = [*confirms] if confirms else [None] * len(trials)
        batch = [self.job_overrides(t, gpus[i % len(gpus)], runs[i]) for i, t in enumerate(trials)]
        for t, overrides, run in zip(trials, batch, runs, strict=True):
            plumbing = ("optuna.", "logger.", "hydra.", "++hydra.")
            what = f" (confirms trial {run.of.number} with seed {run.seed})" if run else ""
            log.info(
                "trial %d%s: %s", t.number, what, " ".join(o for o in overrides if not o.startswith(plumbing))
            )
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

    def _search_done(self) -> bool:
        """The search reached n_trials and no search trial runs anywhere (its ranking is final)."""
        while True:
            trials = search_trials(self.study.get_trials(deepcopy=False))
            if sum(t.state in FINISHED for t in trials) < self.sweep.n_trials:
                return False  # stopped early (failures): nothing settled to confirm
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if not running:
                return True
            if not self.s.heartbeat_interval:
                log.info(
                    "%d search trials RUNNING in other workers and heartbeats are off: not confirming",
                    running,
                )
                return False
            time.sleep(self.s.poll_interval)
            fail_lost_trials(self.study)

    def _confirm(self) -> None:
        """The confirmation stage (see confirmation.py): run what the study still needs, then return.

        Like the search, it is resumable and shared: each run is a trial of the study, so a rerun of
        the sweep launches only the runs without a COMPLETE trial, and several workers split them.
        """
        c, maximize = self.s.confirm, self.study.direction == optuna.study.StudyDirection.MAXIMIZE
        announced = waiting = False
        while len(self.failures) < self.s.max_failures:
            if self.s.heartbeat_interval:
                fail_lost_trials(self.study)
            trials = self.study.get_trials(deepcopy=False)
            plan = plan_confirmation(trials, maximize, c.top_k, self.confirm_seeds, self.s.max_retry)
            if not plan.configurations:
                log.info("confirmation skipped: no search trial is COMPLETE (all pruned or failed)")
                return
            if not announced:
                log.info(
                    "confirmation: the best %d configurations (trials %s) with seeds %s: %d runs to go",
                    len(plan.configurations),
                    ", ".join(str(t.number) for t in plan.configurations),
                    ", ".join(map(str, self.confirm_seeds)),
                    len(plan.todo) + len(plan.running),
                )
                announced = True
            if plan.todo:
                self._launch_confirmations(plan.todo[: self.s.n_jobs])
            elif plan.running and self.s.heartbeat_interval:
                if not waiting:
                    log.info("waiting for %d confirmation runs in other workers", len(plan.running))
                    waiting = True
                time.sleep(self.s.poll_interval)
            else:
                for run in plan.given_up:
                    log.warning(
                        "confirmation of trial %d with seed %d given up (it failed)", run.of.number, run.seed
                    )
                return

    def _launch_confirmations(self, runs: list[ConfirmRun]) -> None:
        """Create a RUNNING trial per run (its configuration's parameters, marked as a confirmation) and launch them."""
        trials, launched = [], []
        for run in runs:
            template = optuna.trial.create_trial(
                state=TrialState.RUNNING,
                params=run.of.params,
                distributions=run.of.distributions,
                user_attrs={CONFIRM_OF: run.of.number, CONFIRM_SEED: run.seed},
            )
            trial_id = self.sweep.storage.create_new_trial(self.study._study_id, template_trial=template)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trial = Trial(self.study, trial_id)
            # Two workers may create the same run at once: the lower trial number runs it.
            taken = [
                t
                for t in runs_of(self.study.get_trials(deepcopy=False), run.of.number, run.seed)
                if t.number < trial.number and t.state in (TrialState.RUNNING, TrialState.COMPLETE)
            ]
            if taken:
                self._set_user_attr(
                    trial, "error", f"{NOT_RUN}: trial {taken[0].number} of another worker runs it"
                )
                self._study_tell(trial, state=TrialState.FAIL)
                continue
            self.heartbeats.add(trial_id)
            trials.append(trial)
            launched.append(run)
        if trials:
            self._launch(trials, launched)

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
        summary = write_results(
            self.study,
            self.sweep_dir,
            self.s.plots,
            objective=self.objective,
            confirm_top_k=self.s.confirm.top_k,
            confirm_seeds=self.confirm_seeds,
            base_seed=self.base_seed,
        )
        if self.s.wandb_summary and OmegaConf.select(self.config, "logger.backend") == "wandb":
            log_sweep_summary(self.study, self.config.logger, self.sweep_dir, summary)
        if len(self.failures) >= self.s.max_failures:
            raise SweepConfigError(
                f"the sweep stopped after {len(self.failures)} failed trials (hydra.sweeper.max_failures="
                f"{self.s.max_failures}); last error: {self.failures[-1]}. The trial logs are in {self.sweep_dir}"
            )
        return summary
