"""The loop of the test kubelet and Job controller: a thread that reconciles every POLL s.

Polling (rather than a watch) keeps shutdown simple and prompt. A failed round is only
logged: the emulator may be stopping, and the next round retries.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class PollingController:
    POLL = 0.1  # seconds between two rounds

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sync(self) -> None:
        """One reconciliation round."""
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.wait(self.POLL):
            try:
                self.sync()
            except Exception:
                log.debug("%s: round failed", self._thread.name, exc_info=True)
