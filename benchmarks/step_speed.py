"""Speed of gan-cli's training step under several sets of gan-train overrides, in one process: the variants
run in alternating blocks of 10 steps, so a slow spell of a shared machine hits them all; prints the median
steps/s and images/s of each. Each argument is one variant, its overrides separated by spaces:

    python benchmarks/step_speed.py "model.d_norm=spectral" "model.d_norm=spectral model.g_extra=1"
    python benchmarks/step_speed.py --device cuda "trainer.precision=32" "trainer.precision=bf16"
"""

import argparse
import statistics
import time

import torch
from hydra import compose, initialize_config_module

from bench import sync
from gan_cli import loop, train


def state(overrides, device="cpu"):
    """(cfg, TrainState, batch source, loss) as gan-train builds them on `device`."""
    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"device={device}", *overrides])
    return (cfg, *train.build(cfg))


def alternate(variants, rounds, steps=10, before=lambda name: None):
    """{name: steps/s of each block}: after 5 warm-up steps each, `rounds` rounds of `steps` steps per variant;
    `before(name)` runs ahead of each of that variant's blocks (for process-wide settings)."""
    rates = {name: [] for name in variants}
    for name, (cfg, s, data, loss) in variants.items():
        before(name)
        for _ in range(5):
            loop.train_step(s, loss, data, cfg, s.speed.device)
    for _ in range(rounds):
        for name, (cfg, s, data, loss) in variants.items():
            before(name)
            sync(s.speed.device)
            tic = time.perf_counter()
            for _ in range(steps):
                loop.train_step(s, loss, data, cfg, s.speed.device)
            sync(s.speed.device)
            rates[name].append(steps / (time.perf_counter() - tic))
    return rates


def report(variants, rounds, before=lambda name: None):
    """Print the median steps/s and images/s of each variant over `rounds` alternated blocks."""
    for name, rates in alternate(variants, rounds, before=before).items():
        cfg = variants[name][0]
        steps = statistics.median(rates)
        print(f"{steps:6.2f} steps/s, {steps * cfg.batch_size * cfg.trainer.d_steps:5.0f} images/s  {name}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("variants", nargs="+", help='overrides of one variant, e.g. "model.g_extra=1 batch_size=32"')
    args = p.parse_args()
    report({v: state(v.split(), args.device) for v in args.variants}, args.rounds)


if __name__ == "__main__":
    main()
