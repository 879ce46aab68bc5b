"""Heartbeats of running trials, so any worker of a study can tell a live trial from a dead one.

The sweeper beats for the trials it has in flight (from the moment they are asked until told) and
each trial process beats for itself while it trains; a trial without a beat for ``grace_period``
is failed and queued again (:func:`~ner_experiments.sweeping.storage.open_storage`).
"""

from __future__ import annotations

import logging
import threading

import optuna

log = logging.getLogger(__name__)


class Heartbeats:
    """A daemon thread recording, every ``interval`` seconds, the heartbeat of each trial id added.

    With ``interval`` None (heartbeats off) it does nothing.
    """

    def __init__(self, storage: optuna.storages.RDBStorage, interval: int | None) -> None:
        self.storage, self.interval = storage, interval
        self.trial_ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial_id: int) -> None:
        """Beat for ``trial_id`` now and from now on."""
        if not self.interval:
            return
        with self._lock:
            self.trial_ids.add(trial_id)
        self._record(trial_id)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="optuna-heartbeat", daemon=True)
            self._thread.start()

    def remove(self, trial_id: int) -> None:
        """Stop beating for ``trial_id`` (it has been told, or another worker finished it)."""
        with self._lock:
            self.trial_ids.discard(trial_id)

    def stop(self) -> None:
        """Stop the thread; no more beats for any trial."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                ids = list(self.trial_ids)
            for trial_id in ids:
                self._record(trial_id)

    def _record(self, trial_id: int) -> None:
        try:
            self.storage.record_heartbeat(trial_id)
        except Exception as e:  # a missed beat is not worth stopping a sweep or a training for
            log.warning("could not record the heartbeat of trial id %d: %s", trial_id, e)
