"""Graceful drain behind a load balancer: on SIGTERM, leave the rotation first, then stop.

uvicorn stops accepting connections the moment it gets SIGTERM. A balancer that routes by health checks
(haproxy, nginx, a cloud balancer, compose) keeps sending new requests to the closed port until its next
checks fail, and those requests fail. :class:`DrainingServer` answers /ready with 503 at once and keeps
serving for ``shutdown_delay_s``, long enough for the balancer to take the replica out; only then does
uvicorn stop accepting and finish in-flight requests within ``shutdown_grace_s``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM or SIGINT starts a drain delay instead of stopping at once.

    ``start_draining`` is called on that signal; it returns False when a delay serves no purpose (models
    not loaded yet: no balancer routes here), and the server then stops at once. A second signal during
    the delay stops it at once too.
    """

    def __init__(self, config: uvicorn.Config, delay_s: float, start_draining: Callable[[], bool]) -> None:
        super().__init__(config)
        self.delay_s = delay_s
        self._start_draining = start_draining
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler (main thread): delay the stop once, then behave as uvicorn does."""
        if self._timer is not None or self.should_exit or self.delay_s <= 0 or not self._start_draining():
            super().handle_exit(sig, frame)
            return
        self._captured_signals.append(sig)  # re-raised by uvicorn at exit, as for an immediate stop
        logger.info(
            "%s: /ready answers 503; serving %.1f s more before stopping (shutdown_delay_s)",
            signal.Signals(sig).name,
            self.delay_s,
        )
        self._timer = threading.Timer(self.delay_s, self._stop)
        self._timer.daemon = True
        self._timer.start()

    def _stop(self) -> None:
        logger.info("drain delay over: no longer accepting connections")
        self.should_exit = True
