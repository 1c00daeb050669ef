"""Convolutions as matrix products (models/conv.py) against oneDNN's kernels, in bfloat16 on the CPU.

Inside gan-cli's real training step, in one process: the variants run in alternating blocks of 10 steps, so a
slow spell of a shared machine hits them all; prints the median steps/s and images/s of each.

    python benchmarks/conv_kernels.py data.image_size=32              # DCGAN-32
    python benchmarks/conv_kernels.py --min-channels 1,64,128 data.image_size=64

Variants: oneDNN throughout; products for weight gradients only; products for weight gradients plus the
forward pass and input gradient of layers whose input has at least N channels, for each N of --min-channels
(gan-train uses 128 on CPUs with AMX, weight gradients only without); gan-train's default with oneDNN's
kernel instead of F.fold for transposed convolutions onto one channel; and gan-train's default with each weight
gradient's sum as one product instead of a batched product of conv.SPLIT parts. With --layers instead: each product of
DCGAN D's stride-2 layers at batch 64 alone, both ways (best of 3 rounds of 20 calls, ms). With --accuracy:
for one batch through DCGAN-32's G and D, each parameter's bfloat16 gradient both ways against the float32
one (relative error).
"""

import argparse
import time

import torch

from step_speed import report, state
from gan_cli.models import conv

MATMUL_PAYS = conv.matmul_pays
DEFAULT = (conv.MIN_CHANNELS, conv.FOLD_MAX_COLUMNS, conv.SPLIT)


def steps(args):
    min_channels, fold, split = DEFAULT
    settings = {"oneDNN": None, "weight gradients only": (2**31, fold, split),
                **{f"products, inputs of {n}+ channels": (int(n), fold, split) for n in args.min_channels.split(",")},
                "gan-train's default without F.fold": (min_channels, 0, split),
                "gan-train's default, weight gradients in one product": (min_channels, fold, 1)}

    def before(name):  # process-wide switches, set ahead of each variant's block
        conv.matmul_pays = MATMUL_PAYS if settings[name] is not None else (lambda x: False)
        conv.MIN_CHANNELS, conv.FOLD_MAX_COLUMNS, conv.SPLIT = settings[name] or DEFAULT

    print(f"overrides: {args.overrides}")
    report({name: state(args.overrides) for name in settings}, args.rounds, before)


def best_ms(fn, calls=20, rounds=3):
    fn()
    times = []
    for _ in range(rounds):
        tic = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - tic) / calls * 1e3)
    return min(times)


def layers():
    conv.MIN_CHANNELS = 1
    cl, bf16, geometry = torch.channels_last, torch.bfloat16, ([2, 2], [1, 1])
    print("| layer (D, batch 64) | forward oneDNN / products | input gradient | weight gradient |\n|---|---|---|---|")
    for c_in, c_out, size in ((1, 64, 32), (64, 128, 16), (128, 256, 8), (256, 512, 8), (128, 256, 16)):
        x = torch.randn(64, c_in, size, size, dtype=bf16).contiguous(memory_format=cl)
        w = torch.randn(c_out, c_in, 4, 4, dtype=bf16).contiguous(memory_format=cl)
        g = torch.randn(64, c_out, size // 2, size // 2, dtype=bf16).contiguous(memory_format=cl)
        backward = lambda mask: torch.ops.aten.convolution_backward(g, x, w, None, *geometry, [1, 1], False, [0, 0], 1,
                                                                    mask)
        pairs = [(lambda: torch.nn.functional.conv2d(x, w, None, *geometry), lambda: conv.conv(x, w, *geometry)),
                 (lambda: backward([True, False, False]), lambda: conv.conv_adjoint(g, w, (size, size), *geometry)),
                 (lambda: backward([False, True, False]), lambda: conv.weight_grad(x, g, (4, 4), *geometry))]
        cells = [f"{best_ms(theirs):.2f} / {best_ms(ours):.2f}" for theirs, ours in pairs]
        print(f"| {c_in}->{c_out} at {size}x{size} | " + " | ".join(cells) + " |")


def accuracy():
    """Relative error of each parameter's bf16 gradient (products / oneDNN) against float32, one D loss."""
    from gan_cli import models

    torch.manual_seed(0)
    G, D = (net.to(memory_format=torch.channels_last)
            for net in models.build({"name": "dcgan", "g_features": 64, "d_features": 64}, 100, 1, 32))
    z, real = torch.randn(64, 100), (torch.rand(64, 1, 32, 32) * 2 - 1).contiguous(memory_format=torch.channels_last)

    def grads(pays, dtype):
        conv.matmul_pays = pays
        G.zero_grad(), D.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            logits = torch.cat([D(real), -D(G(z))]).float()
        torch.nn.functional.softplus(-logits).mean().backward()  # D's loss on real and fake, through G too
        return [p.grad.clone() for p in (*G.parameters(), *D.parameters())]

    exact = grads(MATMUL_PAYS, None)
    ours, theirs = grads(MATMUL_PAYS, torch.bfloat16), grads(lambda x: False, torch.bfloat16)
    names = [f"G.{n}" for n, _ in G.named_parameters()] + [f"D.{n}" for n, _ in D.named_parameters()]
    print("| parameter | products | oneDNN |\n|---|---|---|")
    for name, e, a, b in zip(names, exact, ours, theirs):
        print(f"| {name} | {((a - e).norm() / e.norm()).item():.4f} | {((b - e).norm() / e.norm()).item():.4f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--min-channels", default="128", help="comma-separated thresholds to compare")
    p.add_argument("--layers", action="store_true", help="time each product of single layers instead")
    p.add_argument("--accuracy", action="store_true", help="compare gradients against float32 instead")
    p.add_argument("overrides", nargs="*", help="gan-train overrides")
    args = p.parse_args()
    accuracy() if args.accuracy else layers() if args.layers else steps(args)


if __name__ == "__main__":
    main()
