"""How a long loop reports its progress: tqdm's bar on a terminal, one plain log line per interval elsewhere.

A bar redraws itself with carriage returns: in a file (a Slurm job's output, CI, `> train.out 2>&1`) its updates
run together into one line of megabytes. So with `auto` the bar is drawn only when stderr is a terminal;
otherwise each report is a line of the log (the console and train.log).
"""

import logging
import sys
import time

from tqdm import tqdm

MODES = ("auto", "bar", "lines", "none")


def resolve(mode):
    """bar, lines or none for a trainer.progress value; auto: a bar on a terminal, else lines."""
    mode = str(mode).lower()
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return mode


class Progress:
    """Steps start+1 .. total: `step()` after each, `report(step, text)` every so often, `close()` at the end."""

    def __init__(self, mode, start, total, desc, logger=None, quiet=False):
        self.mode = "none" if quiet else resolve(mode)
        self.start, self.total, self.desc = start, total, desc
        self.log = logger or logging.getLogger(__name__)
        self.tic = time.perf_counter()
        self.bar = tqdm(initial=start, total=total, desc=desc, dynamic_ncols=True) if self.mode == "bar" else None

    def step(self, n=1):
        if self.bar is not None:
            self.bar.update(n)

    def report(self, done, text="", postfix=None):
        """At `done` of total: the bar's figures (postfix), or a line with the count, `text` and the times."""
        if self.bar is not None:
            self.bar.set_postfix(postfix or {}, refresh=False)
        elif self.mode == "lines":
            elapsed = time.perf_counter() - self.tic
            left = elapsed / max(done - self.start, 1) * (self.total - done)
            self.log.info("%s %s/%s%s | %s elapsed, %s left", self.desc, f"{done:,}", f"{self.total:,}",
                          f" | {text}" if text else "", clock(elapsed), clock(left))

    def close(self):
        if self.bar is not None:
            self.bar.close()


def clock(seconds):
    """h:mm:ss"""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
