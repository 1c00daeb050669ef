"""G's latent space: seeded noise (optionally truncated) and spherical interpolation between noise vectors.

Noise comes from a CPU generator seeded per call, so the same seed gives the same z on any device.
"""

import torch


def noise(n, latent_dim, seed, truncation=None):
    """z ~ N(0, I), shape (n, latent_dim). With truncation=psi > 0, each entry with |z_i| > psi is drawn again
    (from the same generator) until none is: the normal truncated to [-psi, psi], not clipped onto its edges."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, latent_dim, generator=gen)
    if truncation:
        while (outside := z.abs() > truncation).any():
            z[outside] = torch.randn(int(outside.sum()), generator=gen)
    return z


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
