"""G's inputs: seeded noise (optionally truncated), spherical interpolation between noise vectors, and the class
labels gan-sample asks a conditional G for.

Noise comes from a CPU generator seeded per call, so the same seed gives the same z on any device.
"""

import torch
import torch.nn.functional as F
from omegaconf import ListConfig

from gan_cli.errors import ConfigError


def noise(n, latent_dim, seed, truncation=None):
    """z ~ N(0, I), shape (n, latent_dim), drawn a row at a time, so the first k rows are the same for any n >= k
    (one draw of n x latent_dim would not promise that: torch draws small and large tensors differently).
    With truncation=psi > 0, each entry with |z_i| > psi is drawn again (from the same generator) until none
    is: the normal truncated to [-psi, psi], not clipped onto its edges."""
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([_row(latent_dim, gen, truncation) for _ in range(n)])


def _row(latent_dim, gen, truncation):
    z = torch.randn(latent_dim, generator=gen)
    if truncation:
        while (outside := z.abs() > truncation).any():
            z[outside] = torch.randn(int(outside.sum()), generator=gen)
    return z


def classes_in_turn(n, num_classes, device=None):
    """Labels 0, 1, ..., C-1, 0, 1, ...: n samples spread evenly over the classes."""
    return torch.arange(n, device=device) % num_classes


def row_per_class(z, num_classes):
    """(z repeated once per class, labels): one row per class, the same noise down each column."""
    return z.repeat(num_classes, 1), torch.arange(num_classes).repeat_interleave(len(z))


def slerp(z0, z1, steps):
    """`steps` points from z0 to z1 (both (latent_dim,)), endpoints included, along the great circle between
    their directions with the norm interpolated linearly: Gaussian noise lives near a sphere, where a straight
    line would pass through the unlikely region near the origin (White 2016)."""
    t = torch.linspace(0, 1, steps)[:, None]
    n0, n1 = z0.norm(), z1.norm()
    u0, u1 = z0 / n0, z1 / n1
    omega = torch.arccos((u0 @ u1).clamp(-1, 1))
    if omega < 1e-6:  # the same direction: a straight line is the arc
        direction = (1 - t) * u0 + t * u1
    else:
        direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / torch.sin(omega)
    return direction * ((1 - t) * n0 + t * n1)


def interpolations(seeds, latent_dim, steps, truncation=None):
    """One row of `steps` noise vectors per consecutive pair of seeds, (len(seeds) - 1, steps, latent_dim); each
    endpoint is that seed's first noise vector, the z of gan-sample's first image with that seed."""
    ends = [noise(1, latent_dim, seed, truncation)[0] for seed in seeds]
    return torch.stack([slerp(a, b, steps) for a, b in zip(ends[:-1], ends[1:])])


class Labels:
    """The class labels gan-sample gives a G (its `label=`), checked against the checkpoint's classes.

    label: None (an unconditional G; a conditional one draws the classes in turn), a class number, "all" (one
    row per class), or for mode=interpolate one class per seed, walked between along each row.
    """

    def __init__(self, label, num_classes):
        self.label, self.num_classes = (list(label) if isinstance(label, (list, ListConfig)) else label), num_classes
        if label is None:
            return
        if not num_classes:
            raise ConfigError(f"label={label}: this checkpoint's G is unconditional (trained without "
                              "model.conditional=true) and takes no label; drop label=")
        for value in (self.label if isinstance(self.label, list) else [self.label]):
            if value == "all" and not isinstance(self.label, list):
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"label must be a class number, all, or (mode=interpolate) a list of class "
                                  f"numbers, got {label!r}; e.g. label=7")
            if not 0 <= value < num_classes:
                raise ConfigError(f"label={value} is out of range: this G draws classes 0 to {num_classes - 1}; "
                                  "pick one of those, or label=all for a row of each")

    @property
    def folder_suffix(self):
        return "" if self.label is None else f"_label{self.label}"

    @property
    def described(self):
        return {None: "", "all": ", one row per class"}.get(self.label, f" of class {self.label}")

    def for_samples(self, n, latent_dim, seed, truncation, nrow):
        """(z, labels or None) for mode=sample. label=all: one row of nrow images per class, the same noise
        down each column."""
        if isinstance(self.label, list):
            raise ConfigError("a list of labels is for mode=interpolate (one class per seed); with mode=sample "
                              "give one class, e.g. label=7, or label=all")
        if self.label == "all":
            return row_per_class(noise(nrow, latent_dim, seed, truncation), self.num_classes)
        z = noise(n, latent_dim, seed, truncation)
        if not self.num_classes:
            return z, None
        return z, torch.full((n,), self.label) if self.label is not None else classes_in_turn(n, self.num_classes)

    def for_interpolations(self, n_seeds, steps):
        """Labels for the rows of mode=interpolate, (pairs, steps), or class weights (pairs, steps, classes) that
        walk from one seed's class to the next's; None for an unconditional G. label=None: row r holds class r."""
        if not self.num_classes:
            return None
        pairs = n_seeds - 1
        if self.label == "all":
            raise ConfigError("label=all is for mode=sample; with mode=interpolate hold one class (label=7) or give "
                              "one class per seed to walk between them (seeds=[0,1] label=[3,8])")
        if isinstance(self.label, list):
            if len(self.label) != n_seeds:
                raise ConfigError(f"label={self.label} gives {len(self.label)} classes for {n_seeds} seeds; give one "
                                  "class per seed, e.g. seeds=[0,1] label=[3,8]")
            ends = F.one_hot(torch.tensor(self.label), self.num_classes).float()
            t = torch.linspace(0, 1, steps)[None, :, None]
            return (1 - t) * ends[:-1, None] + t * ends[1:, None]
        held = classes_in_turn(pairs, self.num_classes) if self.label is None else torch.full((pairs,), self.label)
        return held[:, None].expand(pairs, steps)
