"""DCGAN images/s under each way of running its convolutions, in one process, alternated (3 rounds of 20 steps).

    python benchmarks/precision_modes.py            # DCGAN-32, batch 64
    python benchmarks/precision_modes.py --size 64

"implicit-bf16" is float32 tensors with oneDNN told to compute float32 convolutions in bfloat16
(`torch.backends.mkldnn.conv.fp32_precision = "bf16"`, PyTorch 2.9+) instead of autocast.
"""

import argparse
import tempfile

import torch

from bench import write_mnist
from step_speed import alternate, state

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
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20, help="steps per variant in each round")
    args = p.parse_args()
    root = tempfile.mkdtemp()
    write_mnist(root)
    data = ["model=dcgan", "data=mnist", f"data.root={root}", "data.download=false", f"data.image_size={args.size}",
            "batch_size=64"]
    variants = {name: state(data + overrides) for name, (overrides, _) in VARIANTS.items()}

    def before(name):
        torch.backends.mkldnn.conv.fp32_precision = VARIANTS[name][1]

    for name, rates in alternate(variants, args.rounds, args.steps, before).items():
        print(f"{name:>40}: images/s " + " ".join(f"{r * 64:5.0f}" for r in rates))


if __name__ == "__main__":
    main()
