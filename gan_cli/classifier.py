"""The domain classifier: a small CNN whose features and class predictions score generated images.

ImageNet Inception needs weights that cannot be downloaded offline and knows little about 28x28 digits,
so gan-cli trains its own classifier on the dataset's training split on first use (well under two
minutes on 2 CPU cores) and caches it, keyed by dataset, image shape and this file's source.
"""

import hashlib
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_cli import checkpoint, data

log = logging.getLogger(__name__)

VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
TRAIN_SAMPLES = 60_000  # images seen in training (with augmentation): ~13 epochs of mnist5k, 1 of MNIST


class Classifier(nn.Module):
    def __init__(self, channels, image_size, n_classes=10, width=32):
        super().__init__()

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]

        side = image_size // 4
        self.features = nn.Sequential(  # (B, C, S, S) -> (B, 128)
            *block(channels, width), nn.MaxPool2d(2),  # (B, width, S/2, S/2)
            *block(width, 2 * width), nn.MaxPool2d(2),  # (B, 2 width, S/4, S/4)
            nn.Flatten(), nn.Linear(2 * width * side * side, 128), nn.ReLU(True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, n_classes))
        self.num_features = 128

    def forward(self, x):  # images in [-1, 1] -> logits
        return self.head(self.features(x))

    @torch.no_grad()
    def embed(self, images, batch=500):
        """(features (N, 128), logits (N, classes)) in eval mode, batch by batch."""
        self.eval()
        feats, logits = [], []
        device = next(self.parameters()).device
        for chunk in images.split(batch):
            f = self.features(chunk.to(device))
            feats.append(f)
            logits.append(self.head(f))
        return torch.cat(feats), torch.cat(logits)


def _augment(x, gen):
    """Random shifts of up to 2 pixels and rotations of up to 10 degrees, one per image."""
    n = len(x)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(10)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (4 / x.shape[-1])  # 2 px in [-1, 1] coordinates
    theta = torch.stack([torch.stack([angle.cos(), -angle.sin(), shift[:, 0]], 1),
                         torch.stack([angle.sin(), angle.cos(), shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def train_classifier(cfg_data, device, seed=0, samples=None, batch=128):
    """Train on the training split, return (classifier, accuracy on the test split)."""
    samples = samples or TRAIN_SAMPLES
    images, labels = data.load_labeled(cfg_data, train=True)
    test_images, test_labels = data.load_labeled(cfg_data, train=False)
    n_classes = int(max(labels.max(), test_labels.max())) + 1
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Classifier(images.shape[1], images.shape[-1], n_classes).to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    steps = math.ceil(samples / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    x_all, y_all = data.uint8_to_signed(images), labels
    net.train()
    for _ in range(steps):
        idx = torch.randint(len(x_all), (batch,), generator=gen)
        x = _augment(x_all[idx], gen).to(device)
        loss = F.cross_entropy(net(x), y_all[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    _, logits = net.embed(data.uint8_to_signed(test_images))
    accuracy = (logits.argmax(1).cpu() == test_labels).float().mean().item()
    return net.eval(), accuracy


def cache_path(cfg_data, cache_dir):
    return Path(cache_dir).expanduser() / f"classifier-{cfg_data.name}-{cfg_data.channels}x{cfg_data.image_size}-{VERSION}.pt"


def load_or_train(cfg_data, device, cache_dir):
    """The cached classifier for this dataset, trained (and cached) on first use."""
    path = cache_path(cfg_data, cache_dir)
    if path.is_file():
        saved = checkpoint.load(path)
        net = Classifier(cfg_data.channels, cfg_data.image_size, saved["n_classes"])
        checkpoint.load_weights(net, saved["weights"], "classifier", path)
        log.info("domain classifier %s: test accuracy %.2f%%", path, 100 * saved["accuracy"])
        return net.to(device).eval(), saved["accuracy"]
    log.info("training the domain classifier on data=%s (once; cached in %s)", cfg_data.name, path.parent)
    net, accuracy = train_classifier(cfg_data, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(path, {"weights": net.state_dict(), "accuracy": accuracy, "n_classes": net.head[-1].out_features,
                           "data": cfg_data.name})
    log.info("domain classifier: test accuracy %.2f%% on data=%s", 100 * accuracy, cfg_data.name)
    return net, accuracy
