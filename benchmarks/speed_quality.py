"""Do the fast defaults change sample quality? Summarise sweeps that differ only in speed settings.

Usage: python benchmarks/speed_quality.py outputs/speedcheck/fp32 outputs/speedcheck/auto
Each argument is a multirun folder (seeds as jobs, trainer.eval_every set); prints a markdown table of
mean +- std over its jobs of the final metrics and of the training speed TensorBoard logged.
"""

import json
import statistics
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan_cli.board import events_folder

KEYS = ["inception_score", "class_entropy", "fd_classifier", "precision", "recall"]


def summary(sweep):
    finals, speeds = [], []
    for log in sorted(Path(sweep).glob("*/metrics.jsonl")):
        finals.append(json.loads(log.read_text().splitlines()[-1]))
        ea = EventAccumulator(str(events_folder(log.parent)), size_guidance={"scalars": 0})
        ea.Reload()
        speeds += [e.value for e in ea.Scalars("Speed/images_per_sec")[1:]]  # the first window holds start-up
    columns = {k: [f[k] for f in finals] for k in KEYS}
    columns["images/s"] = speeds
    return len(finals), finals[0]["step"], columns


def cell(values):
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def main(sweeps):
    print("| sweep | runs | step | " + " | ".join([*KEYS, "images/s"]) + " |")
    print("|---" * (len(KEYS) + 4) + "|")
    for sweep in sweeps:
        runs, step, columns = summary(sweep)
        print(f"| {sweep} | {runs} | {step} | " + " | ".join(cell(v) for v in columns.values()) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
