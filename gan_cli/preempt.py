"""Graceful stops: SIGTERM or SIGINT lets the current step finish, then the run saves and exits."""

import signal

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopOnSignal:
    """While active, SIGTERM/SIGINT only record `signum`; the loop checks it after each step.

    The first signal restores the previous handlers, so a second one stops the process at once, except
    under torchrun (`keep=True`): there a scheduler's SIGTERM to the process group reaches each worker twice,
    directly and forwarded by torchrun, and the agent's own SIGKILL after its grace period is the backstop.
    The exit code is 128 + signum (143 for SIGTERM, 130 for SIGINT), as a shell reports a killed process.
    """

    def __init__(self, keep=False):
        self.signum = None
        self.previous = {}
        self.keep = keep

    def __enter__(self):
        self.previous = {sig: signal.signal(sig, self._record) for sig in SIGNALS}
        return self

    def _record(self, signum, frame):
        self.signum = signum
        if not self.keep:
            self._restore()

    def _restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def __exit__(self, *exc):
        self._restore()

    @property
    def exit_code(self):
        return 128 + self.signum
