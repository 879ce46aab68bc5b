"""Recognising "the Hub cannot be reached" and saying what to do instead."""

from __future__ import annotations

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
    """What to do when a ``kind`` ("model" or "dataset") cannot be downloaded."""
    key = (
        "model=local model.name_or_path=path/to/model"
        if kind == "model"
        else "dataset.path=path/to/local/copy"
    )
    return (
        f"Use a local copy ({key}), a populated Hugging Face cache with HF_HUB_OFFLINE=1, "
        "or try the offline demo: python train.py experiment=quickstart"
    )
