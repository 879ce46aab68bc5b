"""User-facing errors: one clear line that says what is wrong and how to fix it."""

from __future__ import annotations


class NerExperimentError(Exception):
    """A problem the user can fix (bad config, bad data, unreachable model).

    Entry points catch it and print ``error: <message>`` on one line with a non-zero exit,
    instead of a traceback.
    """

    exit_code = 2


class ConfigError(NerExperimentError):
    """An invalid configuration value; the message names the key and a valid value."""


class DataError(NerExperimentError):
    """A data set that cannot be used as it is; the message names the file/split and the problem."""


class ModelLoadError(NerExperimentError):
    """A model or tokenizer that cannot be loaded (missing files, no network, bad folder)."""
