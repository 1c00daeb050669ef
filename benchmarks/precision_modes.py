"""DCGAN steps/s under each way of running its convolutions, in one process, alternated (3 rounds).

    python benchmarks/precision_modes.py            # DCGAN-32, batch 64
    python benchmarks/precision_modes.py --size 64

"implicit-bf16" is float32 tensors with oneDNN told to compute float32 convolutions in bfloat16
(`torch.backends.mkldnn.conv.fp32_precision = "bf16"`, PyTorch 2.9+) instead of autocast.
"""

import argparse
import tempfile
import time

import torch
from hydra import compose, initialize_config_module

from bench import write_mnist
from gan_cli import loop, train

VARIANTS = {  # name: (gan-train overrides, oneDNN float32 precision)
    "fp32": (["trainer.precision=32", "trainer.channels_last=false"], "ieee"),
    "fp32-channels_last": (["trainer.precision=32", "trainer.channels_last=true"], "ieee"),
    "autocast-bf16-channels_last (default)": (["trainer.precision=bf16", "trainer.channels_last=true"], "ieee"),
    "implicit-bf16-channels_last": (["trainer.precision=32", "trainer.channels_last=true"], "bf16"),
    "implicit-bf16": (["trainer.precision=32", "trainer.channels_last=false"], "bf16"),
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--seconds", type=float, default=6)
    args = p.parse_args()
    root = tempfile.mkdtemp()
    write_mnist(root)
    cpu = torch.device("cpu")
    built = {}
    for name, (overrides, precision) in VARIANTS.items():
        with initialize_config_module("gan_cli.configs", version_base="1.3"):
            cfg = compose("train", overrides=["model=dcgan", "data=mnist", f"data.root={root}", "data.download=false",
                                              f"data.image_size={args.size}", "batch_size=64", "device=cpu", *overrides])
        built[name] = (cfg, *train.build(cfg, cpu), precision)
    speeds = {name: [] for name in VARIANTS}
    for _ in range(3):
        for name, (cfg, s, data_src, loss, precision) in built.items():
            torch.backends.mkldnn.conv.fp32_precision = precision
            for _ in range(5):
                loop._iteration(s, loss, data_src, cfg, cpu)
            n, tic = 0, time.perf_counter()
            while time.perf_counter() - tic < args.seconds:
                loop._iteration(s, loss, data_src, cfg, cpu)
                n += 1
            speeds[name].append(n * 64 / (time.perf_counter() - tic))
    for name, v in speeds.items():
        print(f"{name:>40}: images/s " + " ".join(f"{x:5.0f}" for x in v))


if __name__ == "__main__":
    main()
