"""Graceful stops: SIGTERM or SIGINT lets the current step finish, then the run saves and exits."""

import os
import signal
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from gan_cli.errors import EXIT_ENVIRONMENT

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


class CheckRunDir(Callback):
    """Before Hydra creates the run folder: one clear line (exit 4) if it cannot be written."""

    def on_run_start(self, config, **kwargs):
        _check_writable(Path(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs):
        _check_writable(Path(config.hydra.sweep.dir), "hydra.sweep.dir")


def _check_writable(folder, key):
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".gan-cli-write-test-{os.getpid()}"  # per process: torchrun ranks probe at once
        probe.touch()
        probe.unlink()
    except OSError as e:
        print(f"gan-train: error: cannot write the run folder {folder} ({e.strerror or e}); "
              f"choose another {key}=", flush=True, file=sys.stderr)
        raise SystemExit(EXIT_ENVIRONMENT) from None
