"""The Hydra entry point behind ``train.py`` and the ``ner-train`` console script."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import logging
import os
import sys
import tempfile
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ner_experiments.config import TrainConfig, register_configs, validate_config
from ner_experiments.errors import ConfigError, NerExperimentError
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
    code 2, and a run that failed before training leaves no run dir behind; under a multirun the error
    is raised instead, so the sweeper records the failure.
    """
    from ner_experiments.stopping import disk_full_error, install_signal_handlers

    if not _in_multirun():
        install_signal_handlers()  # SIGTERM/SIGINT: a clean stop with a checkpoint and the resume command
    try:
        validate_config(cfg)  # fail fast: a bad value is reported before the slow torch/transformers imports
        from ner_experiments.publishing.push import check_push_possible

        check_push_possible(cfg.hub)  # a hub=push that could not upload is refused before any training
        from ner_experiments.train import run_training

        return run_training(cfg)
    except Exception as raised:
        err = raised if isinstance(raised, NerExperimentError) else disk_full_error(raised)
        if err is None or _in_multirun():
            raise
        _write_to_run_log(f"{err.prefix}: {err}", logging.ERROR if err.prefix == "error" else logging.WARNING)
        _remove_unfinished_start()
        print(f"{err.prefix}: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


def _write_to_run_log(line: str, level: int) -> None:
    """The line the run ends with, in train.log too (it is printed on stderr, not logged)."""
    record = logging.LogRecord("ner_experiments", level, __file__, 0, line, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _remove_unfinished_start() -> None:
    """Delete this launch's run dir when it holds no checkpoint and no result (a failed start); a folder
    that existed before the launch (``hydra.run.dir`` given) is left, only its lock goes."""
    from hydra.core.hydra_config import HydraConfig

    from ner_experiments.run_dirs import METRICS_FILE, latest_checkpoint, remove_run_dir
    from ner_experiments.run_lock import release_run_dir

    if not HydraConfig.initialized() or int(os.environ.get("RANK", "0")) != 0:
        return
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    release_run_dir(run_dir)
    if (
        run_dir.resolve() not in _EXISTING_RUN_DIRS
        and run_dir.is_dir()
        and latest_checkpoint(run_dir) is None  # an empty checkpoints/ (the Trainer makes it) is no result
        and not (run_dir / METRICS_FILE).exists()
    ):
        logging.shutdown()  # close train.log before its folder goes
        remove_run_dir(run_dir)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _schema_keys(node: Any) -> list[str] | None:
    """Field names of a dataclass type, or None when the node takes any key (a dict or a plain value)."""
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else None


def unknown_key_message(override: str) -> str | None:
    """For ``a.b.c=value``: None if the key exists in the schema, else one line naming the valid keys.

    Hydra itself reports a misspelt key as "Key 'x' not in 'TrainerConfig'" without the keys that do
    exist; this check runs first and lists them, with the closest match.
    """
    if override.startswith(("~", "-")) or "=" not in override:
        return None
    key = override.split("=", 1)[0].lstrip("+")  # an added key must exist in the schema too
    if key.startswith("hydra") or "/" in key or ("." not in key and (CONFIG_DIR / key).is_dir()):
        return None  # Hydra's own keys and config-group choices are checked by Hydra, which lists options
    node: Any = TrainConfig
    path: list[str] = []
    for part in key.split("."):
        keys = _schema_keys(node)
        if keys is None:
            return None
        if part not in keys:
            where = ".".join(path) or "the top level"
            close = difflib.get_close_matches(part, keys, n=1)
            hint = f"did you mean {'.'.join([*path, close[0]])}? " if close else ""
            return f"unknown config key {key!r}: {hint}valid keys under {where}: {', '.join(keys)}"
        path.append(part)
        hints = typing.get_type_hints(node)
        node = hints[part]
    return None


def compose_config(overrides: Sequence[str], validate: bool = True) -> DictConfig:
    """The run config train.py would compose from ``conf/`` with these overrides.

    Raises :class:`ConfigError` in one line for a misspelt key, an unknown group option or a bad value.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    for override in overrides:
        message = unknown_key_message(override)
        if message:
            raise ConfigError(message)
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides))
        if validate:
            validate_config(cfg)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_one_line(err)) from err
    return cfg


def _one_line(err: BaseException) -> str:
    """Hydra's several-line messages as one line: the error, the options of a group, the cause."""
    text = str(err).split("Config search path:")[0]
    head, _, options = text.partition("Available options in")
    message = " ".join(head.split())
    if options:
        group, _, names = options.partition(":")
        message += f"; options in{group}: {', '.join(names.split())}"
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        message += f": {str(cause).strip().splitlines()[0]}"
    return message


_EXISTING_RUN_DIRS: set[Path] = set()  # run dirs that existed before this launch: never deleted by it


class OutputDirCheck(Callback):
    """Hydra callback: before Hydra creates the run dir (which would end in a traceback, or write over
    another run's files), refuse in one line a ``paths.output_dir`` or ``hydra.run.dir`` that is empty or
    cannot be written, a run dir that holds a finished run, and one another live process is using; then
    lock the run dir for this process (:mod:`ner_experiments.run_lock`)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_output_dir(config.paths.output_dir)
        given = any(str(o).startswith("hydra.run.dir=") for o in config.hydra.overrides.hydra)
        claim_hydra_run_dir(str(config.hydra.run.dir), given)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_output_dir(config.paths.output_dir)
        check_output_dir(config.hydra.sweep.dir, "hydra.sweep.dir")


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_output_dir(output_dir: str | None, key: str = "paths.output_dir") -> None:
    """Exit 2 with one line when ``output_dir`` is empty or cannot be made and written to."""
    example = f"{key}=$HOME/ner-outputs" + ("/my-run" if key.startswith("hydra.") else "")
    if output_dir is None or not str(output_dir).strip():
        _refuse(f"{key} is empty: give the folder to write to, e.g. {example}")
    folder = Path(str(output_dir)).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        _refuse(
            f"{key}={output_dir} cannot be written ({reason}): give a folder you can write to, e.g. {example}"
        )


def claim_hydra_run_dir(run_dir: str, given: bool = True) -> None:
    """``hydra.run.dir``: writable, not a finished run, not in use; then locked for this process.

    ``given``: set on the command line; such a folder that existed before is never deleted by a failed
    start (a dated default dir another torchrun rank made first is this launch's own)."""
    from ner_experiments.run_dirs import METRICS_FILE
    from ner_experiments.run_lock import claim_run_dir

    folder = Path(run_dir).expanduser()
    existed = folder.is_dir()
    check_output_dir(run_dir, "hydra.run.dir")
    if existed and given:
        _EXISTING_RUN_DIRS.add(folder.resolve())
    if existed and (folder / METRICS_FILE).exists():
        _refuse(
            f"hydra.run.dir={run_dir} holds a finished run ({METRICS_FILE}), which this run would "
            "overwrite: give a new folder, or leave hydra.run.dir out for a new dated one"
        )
    try:
        claim_run_dir(folder, "hydra.run.dir")
    except NerExperimentError as err:
        _refuse(str(err))


def make_main(config_dir: Path = CONFIG_DIR) -> Callable[[], Any]:
    if not (config_dir / "train.yaml").is_file():
        raise SystemExit(
            f"error: no configs at {config_dir}: install the project with `pip install -e .` from its checkout"
        )
    hydra_main = hydra.main(config_path=str(config_dir), config_name="train", version_base="1.3")(run_task)

    def main() -> Any:
        # With -sc/--shell-completion the words after it are completion commands (install=bash), not keys.
        completing = bool({"-sc", "--shell-completion"} & set(sys.argv[1:]))
        for arg in [] if completing else sys.argv[1:]:
            message = unknown_key_message(arg)
            if message:
                print(f"error: {message}", file=sys.stderr)
                sys.exit(2)
        if config_dir == CONFIG_DIR:
            check_overrides_compose(sys.argv[1:])
        return hydra_main()

    return main


def check_overrides_compose(argv: Sequence[str]) -> None:
    """Compose the config as Hydra is about to, so that an unknown group option (``model=bert_huge``) or a
    value of the wrong type (``trainer.num_train_epochs=abc``) is one line and exit 2, not Hydra's several
    lines and exit 1. Sweep values (``a=1,2``, ``interval(...)``) are left to the sweeper; command lines
    that do not run training (``--help``, ``-sc``, ``--info``, another config dir) are left to Hydra."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = get_args_parser().parse_args(list(argv))
    except SystemExit:  # --version, or a command line Hydra's own parser will explain
        return
    if args.help or args.hydra_help or args.shell_completion or args.info or args.experimental_rerun:
        return
    if args.config_path or args.config_name or args.config_dir:
        return
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
    except HydraException as err:
        _refuse(_one_line(err))
    try:
        compose_config([o.input_line for o in parsed if not o.is_sweep_override()], validate=False)
    except ConfigError as err:
        _refuse(str(err))


def train_main() -> None:
    """Console script ``ner-train``: the same as ``python train.py``."""
    make_main()()
