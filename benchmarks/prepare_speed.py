"""How long preparing an image folder takes (gan_cli/folder.py), how long opening it again takes, and how fast
training reads a large prepared set: in memory, and memory-mapped (data.ram_share=0). Part of make bench.

    python benchmarks/prepare_speed.py --out outputs/bench/folders.json

The folders are generated in a temporary directory: 60,000 28x28 greyscale PNGs (mnist5k's digits, over and
over) and 100,000 64x64 RGB JPEGs (smooth random colour fields with noise, quality 90), 1,000 files a
subfolder. Preparation is timed in this process with a fresh cache ("first"), then again on the unchanged
folder ("again": listing it, checking the key, mapping the file).
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from bench import _machine, measure, quiet_run


def write_pngs(root, n):
    from PIL import Image

    from gan_cli import data

    digits, _ = data.load_labeled(OmegaConf.create({"name": "mnist5k", "image_size": 28, "channels": 1}))
    for i in range(n):
        folder = Path(root) / f"{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits[i % len(digits)][0].numpy()).save(folder / f"{i:06d}.png")


def write_jpegs(root, n, size=64, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = Path(root) / f"{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        field = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
        noisy = np.clip(np.asarray(field) + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"{i:06d}.jpg", quality=90)


def time_prepare(path, channels, size, cache):
    from gan_cli import decode, folder

    cfg = OmegaConf.create({"name": "folder", "path": str(path), "image_size": size, "channels": channels,
                            "labels": "auto", "crop": "center", "background": "white", "min_size": 8,
                            "test_fraction": 0.05, "cache_dir": str(cache)})
    tic = time.perf_counter()
    prepared = folder.open_or_prepare(cfg)
    first = time.perf_counter() - tic
    tic = time.perf_counter()
    folder.open_or_prepare(cfg).split(train=True)
    again = time.perf_counter() - tic
    return {"files": prepared.count, "first_s": first, "again_s": again, "mib": prepared.nbytes / 2**20,
            "processes": decode.workers_for(prepared.count)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/bench/folders.json")
    p.add_argument("--pngs", type=int, default=60_000)
    p.add_argument("--jpegs", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=20, help="timed seconds per training measurement")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    result = {"machine": _machine("cpu"), "torch": torch.__version__, "prepare": {}, "train": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["GAN_CLI_CACHE"] = str(tmp / "cache")  # the training subprocesses find the prepared set here
        for name, write, n, channels, size in (("png-28", write_pngs, args.pngs, 1, 28),
                                               ("jpeg-64", write_jpegs, args.jpegs, 3, 64)):
            write(tmp / name, n)
            result["prepare"][name] = time_prepare(tmp / name, channels, size, tmp / "cache")
            print(name, result["prepare"][name], flush=True)
        for placement, share in (("in memory", 0.5), ("memory-mapped", 0.0)):
            over = ["data.channels=3", "data.image_size=64", f"data.ram_share={share}"]
            runs = [quiet_run(lambda: measure("dcgan-64-64", "gan-cli", str(tmp / "jpeg-64"), args.seconds, "cpu",
                                              over, data="folder"), 0.05, 1)["images_per_s"]
                    for _ in range(args.repeats)]
            result["train"][placement] = max(runs)
            print(placement, result["train"][placement], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
