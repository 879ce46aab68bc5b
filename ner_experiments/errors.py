"""User-facing errors: one clear line that says what is wrong and how to fix it."""

from __future__ import annotations


class NerExperimentError(Exception):
    """A problem the user can fix (bad config, bad data, unreachable model).

    Entry points catch it and print ``error: <message>`` on one line with a non-zero exit,
    instead of a traceback.
    """

    exit_code = 2
    prefix = "error"  # what the entry point prints before the message


class ConfigError(NerExperimentError):
    """An invalid configuration value; the message names the key and a valid value."""


class RunInUseError(ConfigError):
    """The run dir is locked by another live process (the same ``hydra.run.dir``, or a resume of a run
    that is still training)."""


class DataError(NerExperimentError):
    """A data set that cannot be used as it is; the message names the file/split and the problem."""


class ModelLoadError(NerExperimentError):
    """A model or tokenizer that cannot be loaded (missing files, no network, bad folder)."""


class PublishError(NerExperimentError):
    """The model cannot be published (no token, the Hub refused or cannot be reached, an incomplete run)."""


class PushNotPossibleError(PublishError):
    """``hub=push`` refused at start-up, before any data or model is loaded: the upload could not happen."""


class PushFailedError(PublishError):
    """The upload at the end of a finished run failed; the run is complete and ``retry_command`` publishes it.

    Exit code 3, so a script can tell "trained, not published" from "nothing ran" (2).
    """

    exit_code = 3

    def __init__(self, message: str, retry_command: str = "") -> None:
        super().__init__(message)
        self.retry_command = retry_command


class DiskFullError(NerExperimentError):
    """The disk filled up while the run was writing; the message names the path and the space needed/left."""


class RunInterrupted(NerExperimentError):
    """SIGTERM/SIGINT stopped the run; the message says at which step and the command that resumes it.

    Exit code 128 + the signal's number (143 for SIGTERM, 130 for SIGINT), as a shell reports a process
    a signal ended, so a scheduler's requeue logic sees what happened."""

    prefix = "stopped"

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum
