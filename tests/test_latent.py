"""The latent space: truncated noise, spherical interpolation, and gan-sample's mode=interpolate."""

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from gan_cli import latent
from gan_cli.sample import sample
from gan_cli.train import train


def test_truncation_never_draws_beyond_psi_and_repeats_for_a_seed():
    z = latent.noise(2000, 64, seed=3, truncation=0.5)
    assert z.abs().max() <= 0.5 and torch.equal(z, latent.noise(2000, 64, seed=3, truncation=0.5))
    assert z.std() > 0.25  # resampled inside [-0.5, 0.5], not clipped onto its edges (std 0.5 if clipped)
    assert (z.abs() == 0.5).sum() == 0
    for latent_dim in (8, 100):  # the first rows do not depend on how many are drawn
        assert torch.equal(latent.noise(5, latent_dim, seed=1)[:2], latent.noise(2, latent_dim, seed=1))
        ends = latent.interpolations([1, 4], latent_dim, 3)[0, [0, -1]]
        assert torch.allclose(ends, torch.stack([latent.noise(7, latent_dim, seed=s)[0] for s in (1, 4)]), atol=1e-5)


def test_slerp_keeps_its_ends_and_walks_the_arc():
    a, b = torch.randn(16), torch.randn(16)
    path = latent.slerp(a, b, 7)
    assert path.shape == (7, 16) and torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    norms = path.norm(dim=1)
    assert torch.allclose(norms, torch.linspace(a.norm(), b.norm(), 7), atol=1e-4)  # no dip through the origin
    assert torch.allclose(latent.slerp(a, 2 * a, 3)[1], 1.5 * a, atol=1e-5)  # same direction: a straight line


def sample_cfg(ckpt, out, **kw):
    return OmegaConf.create({"ckpt": str(ckpt), "n": 4, "seed": 0, "format": "npz", "out": str(out), "device": "cpu",
                             "nrow": 8, "mode": "sample", "seeds": None, "steps": 5, "truncation": None, "ema": True,
                             "generator": None, "trust_code": False, "label": None, **kw})


def test_interpolation_endpoints_are_the_seeds_own_samples(make_cfg, tmp_path):
    import numpy as np

    run = tmp_path / "run"
    train(make_cfg(), run)
    out = sample(sample_cfg(run, tmp_path / "i", mode="interpolate", seeds=[3, 8, 5], steps=5))
    grid = np.asarray(Image.open(out / "interpolation.png"))
    assert grid.shape == (2 * 30 + 2, 5 * 30 + 2)  # one row per pair of seeds, steps images per row
    assert Image.open(out / "interpolation.gif").n_frames == 5 + 3  # there and back
    first = {seed: np.load(sample(sample_cfg(run, tmp_path / f"s{seed}", seed=seed)) / "images.npz")["images"][0, :, :, 0]
             for seed in (3, 8, 5)}
    cell = lambda r, c: grid[2 + 30 * r: 30 + 30 * r, 2 + 30 * c: 30 + 30 * c]  # noqa: E731
    for r, (start, end) in enumerate(((3, 8), (8, 5))):
        assert np.abs(cell(r, 0).astype(int) - first[start]).max() <= 1
        assert np.abs(cell(r, 4).astype(int) - first[end]).max() <= 1


@pytest.mark.parametrize("override,match", [({"truncation": -1.0}, "truncation must be > 0"),
                                            ({"mode": "interpolate", "seeds": [3]}, "at least two seeds"),
                                            ({"mode": "walk"}, "mode must be sample, interpolate, augment or progress")])
def test_bad_sampling_options_are_config_errors(override, match, tmp_path):
    from gan_cli.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        sample(sample_cfg(tmp_path / "none", tmp_path / "o", **override))
