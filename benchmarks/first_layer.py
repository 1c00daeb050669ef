"""G's first layer as a matrix product (models.dcgan.Project) against the ConvTranspose2d it replaces, inside
gan-cli's real training step, in one process: the two run in alternating blocks of 10 steps, so a slow spell
of a shared machine hits both; prints the median images/s of each, by wall clock and per CPU-second.

    python benchmarks/first_layer.py                          # the default DCGAN on mnist5k (28x28)
    python benchmarks/first_layer.py model.d_norm=spectral     # the recipe's D
    python benchmarks/first_layer.py data.image_size=32        # DCGAN-32
"""

import argparse
import statistics
import time

import torch
from hydra import compose, initialize_config_module

from gan_cli import loop, train


def state(overrides, plain_conv):
    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        cfg = compose("train", overrides=["device=cpu", *overrides])
    s, data, loss = train.build(cfg, torch.device("cpu"))
    if plain_conv:
        project = s.G.net[0]
        conv = torch.nn.ConvTranspose2d(project.in_channels, project.out_channels, project.kernel_size, 1, 0, bias=False)
        conv.load_state_dict(project.state_dict())
        s.G.net[0] = s.speed.prepare(conv)
    return cfg, s, data, loss


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("overrides", nargs="*", help="gan-train overrides")
    args = p.parse_args()
    variants = {"ConvTranspose2d": state(args.overrides, True), "matrix product": state(args.overrides, False)}
    wall, cpu = ({name: [] for name in variants} for _ in range(2))
    for cfg, s, data, loss in variants.values():  # warm-up
        for _ in range(5):
            loop._iteration(s, loss, data, cfg, s.speed.device)
    for _ in range(args.rounds):
        for name, (cfg, s, data, loss) in variants.items():
            tic, cpu_tic = time.perf_counter(), time.process_time()
            for _ in range(10):
                loop._iteration(s, loss, data, cfg, s.speed.device)
            wall[name].append(10 * cfg.batch_size / (time.perf_counter() - tic))
            cpu[name].append(10 * cfg.batch_size / (time.process_time() - cpu_tic))
    for name in variants:
        print(f"{name:>16}: {statistics.median(wall[name]):.0f} images/s, "
              f"{statistics.median(cpu[name]):.0f} per CPU-second  {args.overrides}")


if __name__ == "__main__":
    main()
