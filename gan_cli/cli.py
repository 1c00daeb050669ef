"""What gan-train, gan-sample and gan-eval share: Hydra's main on the packaged configs, the typed schemas,
one-line errors and exit codes. Imports no torch, so `--help` and config errors answer at once."""

import functools
import sys
import traceback

import hydra

from gan_cli import schema
from gan_cli.errors import EXIT_BAD_CONFIG, EXIT_INTERNAL, EXIT_SIGINT, GanError


def command(prog, config_name, task):
    """The console-script entry point that runs `task(cfg)` on the composed config `config_name`."""
    schema.register()

    @functools.wraps(task)  # Hydra names the job (and its .log file) after the task's module
    def run(cfg):
        _quiet_write_failures()
        try:
            return task(cfg)
        except GanError as e:
            print(f"{prog}: error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(e.exit_code) from None
        except KeyboardInterrupt:  # before training has its own handler (preempt.py): start-up, gan-sample, gan-eval
            print(f"{prog}: stopped by Ctrl-C", file=sys.stderr, flush=True)
            raise SystemExit(EXIT_SIGINT) from None
        except Exception:
            traceback.print_exc()
            print(f"{prog}: internal error (a bug in gan-cli; please report it)", file=sys.stderr)
            raise SystemExit(EXIT_INTERNAL) from None

    hydra_main = hydra.main(version_base="1.3", config_path="pkg://gan_cli.configs", config_name=config_name)(run)

    def main():
        # Hydra reports a bad config (a typo'd option, a wrong type) with exit 1; our tasks never exit 1
        # themselves (GanError has its own codes), so exit 1 can only be Hydra's: make it ours for bad config.
        try:
            hydra_main()
        except SystemExit as e:
            if e.code == 1:
                raise SystemExit(EXIT_BAD_CONFIG) from None
            raise

    return main


def _quiet_write_failures():
    """A full disk is reported once, as one line (files.py): not also as a traceback from the TensorBoard writer's
    thread (which hands its error to the next write on the main thread) or from each log line train.log drops."""
    import errno
    import logging
    import threading

    def hook(args):
        if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in (errno.ENOSPC, errno.EDQUOT)):
            threading.__excepthook__(args)

    threading.excepthook = hook
    logging.raiseExceptions = False
