"""Graceful stop on SIGTERM/SIGINT: the first signal asks the run to stop at the next step
(it then saves a checkpoint and exits); a second SIGINT interrupts at once. Forked children
inherit the handler and ignore the signal: the main process ends them.
"""
from __future__ import annotations

import logging
import os
import signal
from types import FrameType

__all__ = ["StopRequest"]

_logger = logging.getLogger(__name__)


class StopRequest:
    """A context manager that records the first SIGTERM/SIGINT instead of dying on it."""

    signals = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._pid = os.getpid()
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """The shell's code for death by that signal (128 + signal number)."""
        return 128 + (self.signum or 0)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:
            return
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        _logger.warning(f"received {signal.Signals(signum).name}: stopping after the current step, then saving")

    def __enter__(self) -> StopRequest:
        self._pid = os.getpid()
        for s in self.signals:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
