"""SIGINT/SIGTERM handling for training: a first signal asks to stop after the batch, a second exits at once."""
from __future__ import annotations

import os
import signal
import time
from typing import Optional

from .atomic import discard_in_flight


class TrainingStopped(SystemExit):
    """Raised by fit() once a SIGINT/SIGTERM stop has saved last.pt; its exit code is 128 + the signal number."""


class StopRequest:
    """SIGINT/SIGTERM: the first asks to stop after the current batch, a second exits at once.

    The immediate exit deletes the temp file of a checkpoint being written, so no half-written file is left
    (checkpoints are renamed into place only when complete). A signal within `DUPLICATE_WINDOW` seconds of the
    first counts as the same interrupt: under torchrun a Ctrl-C reaches each rank twice, from the terminal
    and forwarded by the launcher. `request()` does what a first signal does.
    """

    DUPLICATE_WINDOW = 0.5

    def __init__(self, announce: bool = True) -> None:
        self.requested = False
        self.signum: Optional[int] = None
        self.announce = announce
        self._first_at = 0.0
        self._previous: dict[int, object] = {}

    def request(self, signum: int = signal.SIGINT) -> None:
        """Ask the training loop to stop after the current batch."""
        if not self.requested:
            self._first_at = time.monotonic()
        self.requested = True
        if self.signum is None:
            self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal (130 for SIGINT)."""
        return 128 + (self.signum or int(signal.SIGINT))

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        # os.write, not print: a handler may run while the main thread is inside a print to stderr.
        if self.requested:
            if time.monotonic() - self._first_at < self.DUPLICATE_WINDOW:
                return
            discard_in_flight()
            os.write(2, b"graphrec: second interrupt, exiting now (no checkpoint is half-written)\n")
            os._exit(128 + signum)
        self.request(signum)
        if self.announce:
            os.write(2, f"graphrec: {signal.Signals(signum).name} received; finishing the current batch and saving "
                        "last.pt (interrupt again to exit at once)\n".encode())

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
