"""G's first layer as a matrix product (models.dcgan.Project) against the ConvTranspose2d it replaces, inside
gan-cli's real training step, in one process: the two run in alternating blocks of 10 steps, so a slow spell
of a shared machine hits both; prints the median steps/s and images/s of each.

    python benchmarks/first_layer.py                          # the default DCGAN on mnist5k (28x28)
    python benchmarks/first_layer.py model.d_norm=spectral     # the recipe's D
    python benchmarks/first_layer.py data.image_size=32        # DCGAN-32
"""

import argparse

import torch

from step_speed import report, state


def with_plain_conv(built):
    """The same state with G's first layer swapped back to a ConvTranspose2d holding the same weight."""
    cfg, s, data, loss = built
    project = s.G.net[0]
    conv = torch.nn.ConvTranspose2d(project.in_channels, project.out_channels, project.kernel_size, 1, 0, bias=False)
    conv.load_state_dict(project.state_dict())
    s.G.net[0] = s.speed.prepare(conv)
    return built


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("overrides", nargs="*", help="gan-train overrides")
    args = p.parse_args()
    print(f"overrides: {args.overrides}")
    report({"ConvTranspose2d": with_plain_conv(state(args.overrides)), "matrix product": state(args.overrides)},
           args.rounds)


if __name__ == "__main__":
    main()
