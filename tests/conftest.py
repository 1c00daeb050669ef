"""Fixtures: a tiny MNIST in torchvision's raw IDX layout, and the real config composed and shrunk."""

import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

import gan_cli.train  # noqa: F401  registers the schemas and resolvers, as the entry point does

BIN = Path(sys.executable).parent


def write_idx(path, array):
    """IDX file as in yann.lecun.com/exdb/mnist: magic (0, 0, dtype 0x08 = ubyte, ndim), sizes, data."""
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def digit_like(n, seed):
    """n 28x28 images: a bright bar whose position depends on the label, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 28, 28))
    for i, c in enumerate(labels):
        images[i, 4 + 2 * c: 7 + 2 * c, 6:22] = 255
    return images, labels


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 96), ("t10k", 32)):
        images, labels = digit_like(n, seed=n)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return root


TINY_MODELS = {"dcgan": ["model.g_features=8", "model.d_features=8"],
               "mlp": ["model.g_hidden=[32]", "model.d_hidden=[32]"],
               "custom": ["+model.generator.hidden=[32]", "+model.discriminator.hidden=[32]"]}


def tiny_overrides(mnist_root, model="dcgan"):
    """Nets small enough to train a few steps in well under a second on the CPU."""
    return ["data=mnist", f"data.root={mnist_root}", "data.download=false", "device=cpu",
            f"model={model}", *TINY_MODELS[model], "latent_dim=8", "batch_size=16",
            "trainer.steps=4", "trainer.log_every=2", "trainer.sample_every=2", "trainer.ckpt_every=2"]


@pytest.fixture
def make_cfg(mnist_root):
    """make_cfg(*overrides, model=) -> the real train config, shrunk; Hydra stays initialised for resume."""
    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        yield lambda *overrides, model="dcgan": compose("train", overrides=[*tiny_overrides(mnist_root, model), *overrides])


class Fixed(torch.nn.Module):
    """A "generator" that returns given images whatever z is: scores of known samples."""

    def __init__(self, images):
        super().__init__()
        self.images = images

    def forward(self, z):
        return self.images[: len(z)]


def wait_for_steps(proc, total):
    """Read a training process's stderr (never sleep) until its progress bar shows a finished step."""
    seen = b""
    while not re.search(rb"\| *[1-9]\d*/%d" % total, seen):
        chunk = proc.stderr.read1(4096)
        assert chunk, seen.decode(errors="replace")
        seen += chunk


def run_cli(*args, cwd=None, check=False):
    """Run an installed entry point (gan-train, gan-sample) as a user would."""
    cmd = [str(BIN / args[0]), *args[1:]]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc
