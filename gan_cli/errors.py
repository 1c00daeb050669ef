"""User-facing failures: one line on stderr and a documented exit code, never a traceback."""

import functools
import sys
import traceback

# Exit codes shared by every command (documented in README.md).
EXIT_BAD_CONFIG = 2
EXIT_BAD_INPUT = 3
EXIT_ENVIRONMENT = 4
EXIT_NONFINITE = 5
EXIT_INTERNAL = 70  # a bug in gan-cli (EX_SOFTWARE); never a user mistake


class GanError(Exception):
    """A mistake the user can fix; the message names the problem and the fix."""

    exit_code = 1


class ConfigError(GanError):
    exit_code = EXIT_BAD_CONFIG


class CheckpointError(GanError):
    exit_code = EXIT_BAD_INPUT


class EnvironmentProblem(GanError):
    exit_code = EXIT_ENVIRONMENT


class NonFiniteError(GanError):
    exit_code = EXIT_NONFINITE


def report_errors(prog):
    """Decorate a Hydra task: turn GanError into `prog: error: ...` and its exit code.

    Anything else is a bug in gan-cli: print the traceback and exit EXIT_INTERNAL.
    """

    def wrap(task):
        @functools.wraps(task)
        def run(*args, **kwargs):
            try:
                return task(*args, **kwargs)
            except GanError as e:
                print(f"{prog}: error: {e}", file=sys.stderr, flush=True)
                raise SystemExit(e.exit_code) from None
            except Exception:
                traceback.print_exc()
                print(f"{prog}: internal error (a bug in gan-cli; please report it)", file=sys.stderr)
                raise SystemExit(EXIT_INTERNAL) from None

        return run

    return wrap


def exit_2_on_hydra_errors(hydra_main):
    """Hydra reports a bad config (typo'd option, wrong type) with exit 1; make it our exit 2.

    Our tasks never exit 1 themselves (see report_errors), so exit 1 can only come from Hydra.
    """

    @functools.wraps(hydra_main)
    def main():
        try:
            hydra_main()
        except SystemExit as e:
            if e.code == 1:
                raise SystemExit(EXIT_BAD_CONFIG) from None
            raise

    return main
