"""User-facing failures: one line on stderr and a documented exit code, never a traceback."""

# Exit codes shared by every command (the table in README.md).
EXIT_BAD_CONFIG = 2
EXIT_BAD_INPUT = 3
EXIT_ENVIRONMENT = 4
EXIT_NONFINITE = 5
EXIT_SIGINT = 130  # 128 + SIGINT, as a shell reports it (preempt.py: 128 + the signal after a save)
EXIT_INTERNAL = 70  # a bug in gan-cli (EX_SOFTWARE); never a user mistake


class GanError(Exception):
    """A mistake the user can fix; the message names the problem and the fix."""

    exit_code = 1


class ConfigError(GanError):
    exit_code = EXIT_BAD_CONFIG


class CheckpointError(GanError):
    exit_code = EXIT_BAD_INPUT


class DataError(GanError):
    """Input data that cannot be used: a folder with no usable image, say."""

    exit_code = EXIT_BAD_INPUT


class EnvironmentProblem(GanError):
    exit_code = EXIT_ENVIRONMENT


class NonFiniteError(GanError):
    exit_code = EXIT_NONFINITE
