"""Writing files so that a full disk (or quota) is one clear line, exit code 4, and never a half-written file."""

import contextlib
import os
import shutil
from pathlib import Path

from gan_cli.errors import EnvironmentProblem

def why_not_written(error):
    """Why a write failed, in a few words, if the environment is to blame (a full disk, a quota, permissions);
    None for anything else, which stays a bug. torch.save reports a full disk as a RuntimeError of its zip
    writer ("[enforce fail at inline_container.cc] unexpected pos", "file write failed"), not an OSError."""
    if isinstance(error, OSError):
        return error.strerror or str(error)
    text = str(error)
    if isinstance(error, RuntimeError) and ("inline_container" in text or "PytorchStreamWriter" in text):
        return "the write failed: a full disk or quota"
    return None


def free_space(path):
    """Free bytes on the file system that holds `path` (or would: its nearest existing folder)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _size(n):
    if n is None:
        return "an unknown amount"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024


def not_written(path, why, fix):
    return EnvironmentProblem(f"could not write {path} ({why}; {_size(free_space(path))} free there); {fix}")


@contextlib.contextmanager
def reporting(path, fix):
    """Inside the block, a write that fails for the environment's reasons becomes one EnvironmentProblem
    naming the file (the error's own, else `path`), the reason, the space left there and `fix`; any other error
    passes through."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        why = why_not_written(e)
        if why is None:
            raise
        raise not_written(getattr(e, "filename", None) or path, why, fix) from None


@contextlib.contextmanager
def atomic(path):
    """A temporary name beside `path` to write to: renamed over `path` if the block succeeds, removed if not,
    so readers see the old file or the new one, never part of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.filename in (None, str(tmp)):
            e.filename = str(path)  # the file the user knows of, not its temporary name
        raise
    finally:
        tmp.unlink(missing_ok=True)


def append_line(path, line):
    """Append one line; if the write fails, the file is cut back to what it was, so no half line stays."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.truncate(path, size)
        if isinstance(e, OSError):
            e.filename = e.filename or str(path)
        raise
