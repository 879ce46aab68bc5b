"""Recognising "the Hub cannot be reached" and saying what to do instead."""

from __future__ import annotations

import os

_NETWORK_HINTS = (
    "couldn't reach",
    "could not reach",
    "connection",
    "name or service not known",
    "temporary failure in name resolution",
    "max retries exceeded",
    "timed out",
    "offline mode",
    "localentrynotfound",
    "cannot find the requested files in the local cache",
    "couldn't connect",
    "we couldn't connect",
    "outgoing traffic has been disabled",
    "hf_hub_offline",
)
_TRUE = ("1", "true", "yes", "on")  # what huggingface_hub and datasets read as "set"


def _env_is_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def hub_is_offline() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE=1``)."""
    return _env_is_true("HF_HUB_OFFLINE")


def is_network_error(err: BaseException) -> bool:
    """True when an exception (or one it was raised from) says the Hub could not be reached."""
    seen = 0
    current: BaseException | None = err
    while current is not None and seen < 8:
        name = type(current).__name__.lower()
        text = f"{name} {current}".lower()
        if "offline" in name or "localentrynotfound" in name or any(h in text for h in _NETWORK_HINTS):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def offline_advice(kind: str) -> str:
    """What to do when a ``kind`` ("model" or "dataset") cannot be downloaded.

    When offline mode is already on, it says so and how to leave it, instead of advising to turn it on.
    """
    key = (
        "model=local model.name_or_path=path/to/model"
        if kind == "model"
        else "dataset.path=path/to/local/copy"
    )
    names = ["HF_HUB_OFFLINE"] + (["HF_DATASETS_OFFLINE"] if kind == "dataset" else [])
    switched_on = [name for name in names if _env_is_true(name)]
    demo = "or try the offline demo: python train.py experiment=quickstart"
    if not switched_on:
        return f"Use a local copy ({key}), a populated Hugging Face cache with HF_HUB_OFFLINE=1, {demo}"
    is_set = " and ".join(f"{name}=1" for name in switched_on) + (" is" if len(switched_on) == 1 else " are")
    unset = " and ".join(switched_on)
    return (
        f"{is_set} set and the {kind} is not in the local Hugging Face cache: use a local copy ({key}), "
        f"unset {unset} once so it is downloaded into the cache, {demo}"
    )
