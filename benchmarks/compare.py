"""Summarise sweeps (make compare, make study, make study-augment): a mean +- std table over seeds per value of
the swept key (the loss by default), and plots.

Usage: python benchmarks/compare.py outputs/study --out outputs/study/report
       python benchmarks/compare.py outputs/study-augment --by augment.name --out outputs/study-augment/report
Reads every run folder below each dataset folder (metrics.jsonl, tb/, train.log and the checkpoint's config),
writes <out>/results.md, <out>/results.json and one PNG per plot: <dataset>_<metric>.png for each metric
against step, <dataset>_grad_norm.png for G's gradient norm early on, and <dataset>_augment_p.png for ADA's p.
A dataset folder is named after its data set, optionally with a suffix: mnist5k-500 reads as mnist5k.
"""

import argparse
import json
import statistics
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from gan_cli.board import events_folder  # noqa: E402

HEADLINE = {"mnist5k": ["inception_score", "class_entropy", "classes_covered", "fd_classifier", "kid_classifier",
                        "precision", "recall", "wall_s"],
            "ring8": ["modes_covered", "high_quality", "kl_to_uniform", "wall_s"]}
PLOTTED = {"mnist5k": ["inception_score", "fd_classifier"], "ring8": ["modes_covered"]}
EARLY_STEPS = 200  # where the saturating loss's gradient is expected to vanish


def wall_seconds(run):
    """From the run's first log line to its "done" line: training, sampling and evaluation, not start-up."""
    stamps = [datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
              for line in (run / "train.log").read_text().splitlines() if line.startswith("[20")]
    return (stamps[-1] - stamps[0]).total_seconds()


def runs(dataset_dir, by="loss.name"):
    """[(the value of `by`, seed, metrics lines, {series: [(step, value)]})] for each run folder with a checkpoint:
    the series are G's early gradient norms and, for ADA, p. Each final metrics line also gets the run's wall
    time, wall_s, and its k, d_steps."""
    found = []
    for ckpt in sorted(dataset_dir.glob("*/checkpoints/last.pt")):
        run = ckpt.parent.parent
        config = torch.load(ckpt, map_location="cpu", weights_only=True)["config"]
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        lines[-1].update(wall_s=wall_seconds(run), d_steps=config["trainer"]["d_steps"])
        ea = EventAccumulator(str(events_folder(run)), size_guidance={"scalars": 0})
        ea.Reload()
        series = {"grad_norm": [(e.step, e.value) for e in ea.Scalars("Grad/G_norm") if e.step <= EARLY_STEPS]}
        if "Augment/p" in ea.Tags()["scalars"]:
            series["augment_p"] = [(e.step, e.value) for e in ea.Scalars("Augment/p")]
        value = config
        for part in by.split("."):
            value = value[part]
        found.append((value, config["seed"], lines, series))
    return found


def mean_std(values):
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(name, found):
    by_loss = defaultdict(list)
    for loss, seed, lines, series in found:
        by_loss[loss].append((seed, lines, series))
    keys = HEADLINE.get(name.split("-")[0], [k for k in found[0][2][-1] if isinstance(found[0][2][-1][k], (int, float))])
    table = {}
    for loss, items in sorted(by_loss.items()):
        finals = [lines[-1] for _, lines, _ in items]
        table[loss] = {"seeds": sorted(seed for seed, _, _ in items), "step": finals[0]["step"], "k": finals[0]["d_steps"],
                       **{k: mean_std([f[k] for f in finals]) for k in keys}}
    return by_loss, keys, table


def markdown(name, keys, table, by="loss.name"):
    head = f"| {name} {by.split('.')[0]} | seeds | step | k | " + " | ".join(keys) + " |"
    rule = "|---" * (len(keys) + 4) + "|"
    rows = [f"| {loss} | {len(r['seeds'])} | {r['step']} | {r['k']} | " +
            " | ".join(f"{r[k][0]:.3f} ± {r[k][1]:.3f}" for k in keys) + " |" for loss, r in table.items()]
    return "\n".join([head, rule, *rows])


def plot_metric(name, by_loss, key, out):
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    for loss, items in sorted(by_loss.items()):
        steps = [line["step"] for line in items[0][1]]
        values = [[lines[i][key] for _, lines, _ in items] for i in range(len(steps))]  # every seed, step i
        mean = [statistics.fmean(v) for v in values]
        std = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        ax.plot(steps, mean, marker="o", label=loss)
        ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
    ax.set(xlabel="step (G updates)", ylabel=key, title=f"{name}: {key}, mean ± std over seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_series(name, by_loss, key, out):
    """One line per run of a logged series (grad_norm: G's early gradient norm; augment_p: ADA's p)."""
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    for colour, (loss, items) in enumerate(sorted(by_loss.items())):
        for i, (_, _, series) in enumerate(item for item in items if key in item[2]):
            ax.plot(*zip(*series[key]), color=f"C{colour}", alpha=0.6, label=loss if i == 0 else None)
    if key == "grad_norm":
        ax.set(yscale="log", xlabel="step", ylabel="||grad of G's loss||",
               title=f"{name}: G's gradient norm, first {EARLY_STEPS} steps")
    else:
        ax.set(xlabel="step (G updates)", ylabel="p", title=f"{name}: ADA's augmentation probability p")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", type=Path, help="folder holding one sweep folder per dataset")
    parser.add_argument("--out", type=Path, default=Path("outputs/compare/report"))
    parser.add_argument("--by", default="loss.name", help="the config key whose values the table compares")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sections, results = [], {}
    for dataset_dir in sorted(p for p in args.sweeps.iterdir() if p.is_dir()):
        found = runs(dataset_dir, args.by)
        if not found:
            continue
        name = dataset_dir.name
        by_loss, keys, table = summarise(name, found)
        results[name] = table
        for key in PLOTTED.get(name.split("-")[0], keys[:1]):
            plot_metric(name, by_loss, key, args.out / f"{name}_{key}.png")
        for key in ("grad_norm", "augment_p") if args.by == "loss.name" else ("augment_p",):  # G's early gradient: losses
            if any(key in series for _, _, _, series in found):
                plot_series(name, by_loss, key, args.out / f"{name}_{key}.png")
        sections.append(markdown(name, keys, table, args.by))
    (args.out / "results.md").write_text("\n\n".join(sections) + "\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
