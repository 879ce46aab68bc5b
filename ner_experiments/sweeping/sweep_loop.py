"""The sweep itself: ask Optuna for trials, launch them through Hydra's launcher, tell the results.

Used by the ``ner_optuna`` Hydra sweeper (``hydra_plugins/ner_optuna_sweeper``). One process running
this loop is a *worker*; several workers (on one machine or many) can share a study through its
storage. Each worker runs trials until the study holds ``n_trials`` COMPLETE or PRUNED trials, so
re-running the same command resumes a study instead of starting it again.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import Trial, TrialState

from ner_experiments.sweeping.results import FINISHED, best_trial, format_table, write_results
from ner_experiments.sweeping.samplers import build_pruner, build_sampler, grid_size
from ner_experiments.sweeping.search_space import (
    SearchSpace,
    SweepConfigError,
    format_param,
    parse_search_space,
    short_name,
    trial_overrides,
)
from ner_experiments.sweeping.storage import (
    default_storage_url,
    load_or_create_study,
    open_storage,
    redact_url,
)

log = logging.getLogger(__name__)

DIRECTIONS = ("maximize", "minimize")


@dataclass
class SweepSettings:
    """The sweeper's settings (``hydra.sweeper.*``), checked."""

    study_name: str
    direction: str = "maximize"
    storage: str | None = None
    storage_dir: str = "outputs/optuna"
    n_trials: int = 20
    n_jobs: int = 1
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe", "seed": 42, "options": {}})
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median", "options": {}})
    params: dict[str, Any] = field(default_factory=dict)
    heartbeat_interval: int | None = 10
    grace_period: int | None = 60
    max_retry: int | None = 3
    max_failures: int = 3
    poll_interval: float = 5.0
    assign_gpus: bool = True
    plots: bool = True
    wandb_summary: bool = True

    def check(self) -> None:
        """Raise :class:`SweepConfigError` for a value that cannot work."""
        if self.direction not in DIRECTIONS:
            raise SweepConfigError(
                f"hydra.sweeper.direction={self.direction!r} is not valid: use maximize or minimize"
            )
        for key in ("n_trials", "n_jobs", "max_failures"):
            if int(getattr(self, key)) < 1:
                raise SweepConfigError(f"hydra.sweeper.{key}={getattr(self, key)} must be >= 1")
        if not self.study_name:
            raise SweepConfigError(
                "hydra.sweeper.study_name is empty: give a name, e.g. hydra.sweeper.study_name=lr_sweep"
            )
        if self.heartbeat_interval is not None and self.heartbeat_interval < 1:
            raise SweepConfigError(
                "hydra.sweeper.heartbeat_interval must be >= 1 second (or null to turn it off)"
            )
        if (
            self.heartbeat_interval
            and self.grace_period is not None
            and self.grace_period <= self.heartbeat_interval
        ):
            raise SweepConfigError(
                f"hydra.sweeper.grace_period={self.grace_period} must be longer than heartbeat_interval="
                f"{self.heartbeat_interval}, e.g. 6 times it"
            )


def visible_gpus() -> list[str]:
    """GPU ids this process may hand out: ``CUDA_VISIBLE_DEVICES`` when set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


class _HeartbeatThread:
    """Beats for the trials this worker has in flight, from the moment they are asked until told."""

    def __init__(self, storage: optuna.storages.RDBStorage, interval: int | None) -> None:
        self.storage, self.interval = storage, interval
        self.trial_ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial_id: int) -> None:
        if not self.interval:
            return
        with self._lock:
            self.trial_ids.add(trial_id)
        self.storage.record_heartbeat(trial_id)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sweeper-heartbeat", daemon=True)
            self._thread.start()

    def remove(self, trial_id: int) -> None:
        with self._lock:
            self.trial_ids.discard(trial_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                ids = list(self.trial_ids)
            for trial_id in ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as e:
                    log.warning("could not record the heartbeat of trial id %d: %s", trial_id, e)

    def stop(self) -> None:
        self._stop.set()


class SweepLoop:
    """Runs one worker of a study: see the module docstring."""

    def __init__(
        self, settings: SweepSettings, launcher: Any, config: Any, validate_batch: Any = None
    ) -> None:
        self.s = settings
        self.launcher = launcher
        self.config = config
        self.validate_batch = validate_batch
        self.job_idx = 0
        self.failures: list[str] = []

    # --- set-up: everything that can be wrong is checked before anything is written -----------------
    def prepare(self, arguments: Sequence[str]) -> None:
        s = self.s
        s.check()
        self.space: SearchSpace = parse_search_space(s.params, list(arguments))
        sampler_cfg = s.sampler
        self.sampler_name = str(sampler_cfg.get("name", "tpe"))
        self.sampler_seed = sampler_cfg.get("seed")
        self.sampler_options = dict(sampler_cfg.get("options") or {})
        if not self.space.distributions:
            raise SweepConfigError(
                "the search space is empty: set hydra.sweeper.params, e.g. "
                "hydra.sweeper.params.trainer.learning_rate='tag(log, interval(1e-5, 1e-4))', or use sweep=lr_epochs"
            )
        self.n_trials = int(s.n_trials)
        sampler = build_sampler(self.sampler_name, self.sampler_seed, self.sampler_options, self.space)
        if self.sampler_name == "grid":
            size = grid_size(self.space)
            if size < self.n_trials:
                log.info("grid has %d points: n_trials lowered from %d to %d", size, self.n_trials, size)
                self.n_trials = size
        self.pruner_spec: dict[str, Any] = {
            "name": str(s.pruner.get("name", "none")),
            "options": dict(s.pruner.get("options") or {}),
        }
        pruner = build_pruner(self.pruner_spec["name"], self.pruner_spec["options"])
        if self.validate_batch is not None:
            example = {name: _example_value(d) for name, d in self.space.distributions.items()}
            try:
                self.validate_batch([trial_overrides(self.space, example)])
            except Exception as e:
                raise SweepConfigError(
                    f"the sweep's overrides do not fit the config: {_one_line(e)}"
                ) from None
        if s.storage:
            url, default = str(s.storage), False
        else:
            url, default = default_storage_url(s.storage_dir, s.study_name), True
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_absolute():
            # Trials may run in other processes or another working directory: pin the file.
            url = "sqlite:///" + str(Path(url[len("sqlite:///") :]).resolve())
        self.storage_url = url
        self.storage = open_storage(
            url,
            heartbeat_interval=s.heartbeat_interval,
            grace_period=s.grace_period,
            max_retry=s.max_retry,
            create_sqlite_dir=default,
        )
        self.study, resumed = load_or_create_study(
            self.storage, s.study_name, s.direction, self.space, sampler, pruner, self.pruner_spec
        )
        n_existing = len(self.study.trials)
        if resumed and n_existing and self.sampler_seed is not None and self.sampler_name != "grid":
            # A resumed study (or a second worker) must not replay the first run's random draws.
            self.study.sampler = build_sampler(
                self.sampler_name, int(self.sampler_seed) + n_existing, self.sampler_options, self.space
            )
        log.info(
            "Optuna study %r (%s) in %s: %s, sampler=%s, pruner=%s, n_trials=%d, n_jobs=%d",
            s.study_name,
            f"resumed, {n_existing} trials so far" if resumed else "new",
            redact_url(url),
            s.direction,
            self.sampler_name,
            self.pruner_spec["name"],
            self.n_trials,
            s.n_jobs,
        )
        for name, dist in self.space.distributions.items():
            log.info("  search %s: %s", name, dist)
        for name, value in self.space.fixed.items():
            log.info("  fixed  %s=%s", name, value)

    # --- the loop -------------------------------------------------------------------------------------
    def _fail_stale(self) -> None:
        if self.s.heartbeat_interval:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)

    def _counts(self) -> tuple[int, int]:
        trials = self.study.get_trials(deepcopy=False)
        finished = sum(1 for t in trials if t.state in FINISHED)
        running = sum(1 for t in trials if t.state == TrialState.RUNNING)
        return finished, running

    def _is_surplus(self, trial: Trial) -> bool:
        """True when the first ``n_trials`` non-failed trials of the study are numbered below this one.

        Workers sharing a study may ask at the same moment; trial numbers order them, so exactly one
        of them keeps the last free slot.
        """
        number = trial.number
        taken = sum(
            1
            for t in self.study.get_trials(deepcopy=False)
            if t.number < number and t.state in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
        )
        return taken >= self.n_trials

    def _ask_batch(self, size: int, beat: _HeartbeatThread) -> list[Trial]:
        trials: list[Trial] = []
        for _ in range(size):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize()"
                trial = self.study.ask()
            if self._is_surplus(trial):
                # Another worker took the last slot: put the trial back in the queue, unsampled.
                self.storage.set_trial_state_values(trial._trial_id, state=TrialState.WAITING)
                break
            beat.add(trial._trial_id)
            for name, dist in self.space.distributions.items():
                trial._suggest(name, dist)
            trials.append(trial)
        return trials

    def _job_overrides(self, trial: Trial, slot: int, gpus: list[str]) -> list[str]:
        overrides = trial_overrides(self.space, trial.params)
        overrides += [
            f"optuna.storage={_quote(self.storage_url)}",
            f"optuna.study_name={_quote(self.s.study_name)}",
            f"optuna.trial_number={trial.number}",
        ]
        if self.s.heartbeat_interval:
            overrides.append(f"optuna.heartbeat_interval={int(self.s.heartbeat_interval)}")
        if _has(self.config, "logger"):
            run_name = f"trial-{trial.number}_" + "_".join(
                f"{short_name(k)}={format_param(v) if not isinstance(v, float) else f'{v:.3g}'}"
                for k, v in trial.params.items()
            )
            tags = ["sweep", self.s.study_name, f"trial-{trial.number}"]
            overrides += [
                f"logger.group={_quote(self.s.study_name)}",
                f"logger.run_name={_quote(run_name)}",
                "logger.tags=[" + ",".join(_quote(t) for t in tags) + "]",
            ]
        sweep_dir = _select(self.config, "hydra.sweep.dir")
        if sweep_dir:
            # Pin the directory as resolved here: a time-stamped ${now:...} would be evaluated again
            # (differently) in a launcher's worker process, scattering trials over several folders.
            overrides.append(f"hydra.sweep.dir={_quote(str(Path(str(sweep_dir)).resolve()))}")
        if gpus:
            overrides.append(f"++hydra.job.env_set.CUDA_VISIBLE_DEVICES={gpus[slot % len(gpus)]}")
        return overrides

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
            self._fail(trial, f"{type(value).__name__}: {_one_line(value)}")

    def _study_tell(self, trial: Trial, *args: Any, **kwargs: Any) -> None:
        try:
            self.study.tell(trial, *args, **kwargs)
        except RuntimeError as e:
            # The grid sampler calls study.stop() when the grid is exhausted, which Optuna only
            # allows inside optimize(); the trial's state is stored before that.
            if "Study.stop" not in str(e):
                raise

    def _fail(self, trial: Trial, error: str) -> None:
        try:
            self.storage.set_trial_user_attr(trial._trial_id, "error", error[:2000])
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
        self._study_tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        self.failures.append(error)
        log.warning("trial %d FAILED: %s", trial.number, error)

    def run(self) -> dict[str, Any]:
        """Run trials until the study is complete; write and print the results; return the best-trial summary."""
        s = self.s
        gpus = visible_gpus() if s.assign_gpus and "joblib" in type(self.launcher).__module__.lower() else []
        if len(gpus) < 2:
            gpus = []
        elif gpus:
            log.info("giving each parallel trial one GPU of %s (CUDA_VISIBLE_DEVICES)", ",".join(gpus))
        beat = _HeartbeatThread(self.storage, s.heartbeat_interval)
        waited_for: set[int] = set()
        try:
            while True:
                self._fail_stale()
                finished, running = self._counts()
                if finished >= self.n_trials:
                    break
                if len(self.failures) >= s.max_failures:
                    log.error(
                        "stopping: %d trials failed in this run (hydra.sweeper.max_failures=%d); last error: %s",
                        len(self.failures),
                        s.max_failures,
                        self.failures[-1],
                    )
                    break
                free = self.n_trials - finished - running
                if free <= 0:
                    if not s.heartbeat_interval:
                        log.info(
                            "%d trials are RUNNING in other workers and heartbeats are off: not waiting for them",
                            running,
                        )
                        break
                    if running not in waited_for:
                        log.info("waiting for %d trials running in other workers", running)
                        waited_for.add(running)
                    time.sleep(s.poll_interval)
                    continue
                trials = self._ask_batch(min(int(s.n_jobs), free), beat)
                if not trials:
                    time.sleep(s.poll_interval)
                    continue
                batch = [self._job_overrides(t, i, gpus) for i, t in enumerate(trials)]
                for t, overrides in zip(trials, batch, strict=True):
                    log.info(
                        "trial %d: %s",
                        t.number,
                        " ".join(
                            o
                            for o in overrides
                            if not o.startswith(("optuna.", "logger.", "hydra.", "++hydra."))
                        ),
                    )
                try:
                    returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
                except Exception as e:  # the launcher itself failed (e.g. a joblib worker was killed)
                    for t in trials:
                        self._fail(t, f"launcher error: {type(e).__name__}: {_one_line(e)}")
                        beat.remove(t._trial_id)
                    continue
                self.job_idx += len(batch)
                for trial, ret in zip(trials, returns, strict=True):
                    out_dir = _select(getattr(ret, "hydra_cfg", None), "hydra.runtime.output_dir")
                    if out_dir:
                        try:
                            self.storage.set_trial_user_attr(trial._trial_id, "output_dir", str(out_dir))
                        except optuna.exceptions.UpdateFinishedTrialError:
                            pass
                    self._tell(trial, ret)
                    beat.remove(trial._trial_id)
        finally:
            beat.stop()
        return self.report()

    def report(self) -> dict[str, Any]:
        """Print the table of trials and the best trial; write them (and plots) to the sweep directory."""
        from ner_experiments.sweeping.results import trial_rows

        sweep_dir = Path(str(_select(self.config, "hydra.sweep.dir") or "."))
        summary = write_results(self.study, sweep_dir, plots=self.s.plots)
        table = format_table(trial_rows(self.study))
        best = best_trial(self.study)
        best_line = (
            f"best trial {best.number}: value {best.value:.6g}, params "
            + ", ".join(f"{k}={format_param(v)}" for k, v in best.params.items())
            if best
            else "no trial COMPLETE yet"
        )
        print(
            f"\nStudy {self.s.study_name!r}:\n{table}\n{best_line}\nResults: {sweep_dir}/trials.csv, best.json"
        )
        if self.s.wandb_summary and str(_select(self.config, "logger.backend")) == "wandb":
            from ner_experiments.sweeping.wandb_summary import log_sweep_summary

            log_sweep_summary(self.study, self.config, sweep_dir, summary)
        if self.failures and len(self.failures) >= self.s.max_failures:
            raise SweepConfigError(
                f"the sweep stopped after {len(self.failures)} failed trials (hydra.sweeper.max_failures="
                f"{self.s.max_failures}); last error: {self.failures[-1]}. The trial logs are in {sweep_dir}"
            )
        return summary


def _example_value(dist: optuna.distributions.BaseDistribution) -> Any:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return dist.choices[0]
    return dist.low  # type: ignore[attr-defined]


def _quote(value: str) -> str:
    """Quote a string for a Hydra override unless it is a plain identifier-like word."""
    import re

    if re.fullmatch(r"[A-Za-z0-9_./:+-]+", value) and not value[0].isdigit():
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _one_line(e: Any) -> str:
    text = str(e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def _has(config: Any, key: str) -> bool:
    try:
        return key in config
    except Exception:
        return False


def _select(config: Any, key: str) -> Any:
    if config is None:
        return None
    from omegaconf import OmegaConf

    try:
        return OmegaConf.select(config, key)
    except Exception:
        return None
