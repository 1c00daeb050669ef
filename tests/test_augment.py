"""augment=diffaugment|ada: differentiable, batched, seeded augmentation of everything D sees; data.subset."""

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from conftest import tiny_overrides
from gan_cli import dashboard, data, losses, models
from gan_cli.augment import ADA_OPS, DIFFAUGMENT_OPS, Augment
from gan_cli.errors import ConfigError
from gan_cli.loop import TrainState, d_step, g_step
from gan_cli.sample import sample
from gan_cli.train import train
from test_latent import sample_cfg
from test_reliability import assert_same_tree, scalars, trained_state


def aug_cfg(name, **kw):
    base = {"diffaugment": {"name": "diffaugment", "policy": list(DIFFAUGMENT_OPS)},
            "ada": {"name": "ada", "ops": list(ADA_OPS), "p": 0.0, "target": 0.6, "interval": 4, "kimg": 500,
                    "p_max": 0.8}}[name]
    return OmegaConf.create({**base, **kw})


def images(n=8, channels=3, size=16, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("name,op", [("diffaugment", op) for op in DIFFAUGMENT_OPS] + [("ada", op) for op in ADA_OPS])
def test_each_operation_changes_images_keeps_shape_and_dtype_and_passes_gradients(name, op):
    one = {"policy": [op]} if name == "diffaugment" else {"ops": [op], "p": 1.0, "p_max": 1.0}
    aug = Augment(aug_cfg(name, **one), "cpu", seed=0)
    x = images().requires_grad_(True)
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype and not torch.equal(y, x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_geometric_operations_move_pixels_exactly():
    x = images(64, channels=1)
    for op in ("xflip", "rotate90", "translation"):  # whole pixels moved (borders reflected), never blended
        y = Augment(aug_cfg("ada", ops=[op], p=1.0, p_max=1.0), "cpu", seed=1)(x)
        assert all(torch.isin(y[i], x[i]).all() for i in range(64)), op
    flips = Augment(aug_cfg("ada", ops=["xflip"], p=1.0, p_max=1.0), "cpu", seed=1)(x)
    assert all(torch.equal(flips[i], x[i]) or torch.equal(flips[i], x[i].flip(-1)) for i in range(64))


def test_ada_at_p_0_is_the_identity_bit_for_bit():
    x = images()
    assert torch.equal(Augment(aug_cfg("ada"), "cpu", seed=0)(x), x)


def test_the_same_generator_state_draws_the_same_augmentation():
    x = images()
    a = Augment(aug_cfg("ada", p=0.5), "cpu", seed=3)
    a(x)
    state = a.state_dict()
    first = a(x)
    b = Augment(aug_cfg("ada", p=0.1), "cpu", seed=99)
    b.load_state_dict(state)
    assert torch.equal(b(x), first) and b.p == 0.5
    assert not torch.equal(Augment(aug_cfg("ada", p=0.5), "cpu", seed=4)(x), Augment(aug_cfg("ada", p=0.5), "cpu", seed=3)(x))


def test_ada_p_rises_when_d_calls_the_reals_real_and_falls_when_it_does_not():
    aug = Augment(aug_cfg("ada", p=0.5, interval=2, kimg=1), "cpu", seed=0)
    aug.observe(torch.full((64,), 3.0))  # D sure that every real image is real: r_t = 1 > 0.6
    assert aug.adjust(1, 64) is None and aug.p == 0.5  # between adjustments nothing moves
    assert aug.adjust(2, 64) == 1.0 and aug.p.item() == pytest.approx(0.5 + 2 * 64 / 1000)
    for step in range(4, 40, 2):
        aug.observe(torch.full((64,), 3.0))
        aug.adjust(step, 64)
    assert aug.p.item() == pytest.approx(0.8)  # held at p_max
    aug.observe(torch.full((64,), -1.0))  # r_t = -1 < 0.6
    aug.adjust(40, 64)
    assert aug.p.item() == pytest.approx(0.8 - 2 * 64 / 1000)
    lsgan = Augment(aug_cfg("ada", p=0.5, interval=1, kimg=1), "cpu", seed=0)
    lsgan.observe(torch.full((8,), 0.4), boundary=losses.LOSSES["lsgan"].boundary)  # below lsgan's 0.5: "fake"
    assert lsgan.adjust(1, 8) == -1.0 and lsgan.p < 0.5


def test_the_d_and_g_steps_both_see_augmented_images():
    torch.manual_seed(0)
    G, D = models.build({"name": "mlp", "g_hidden": [16], "d_hidden": [16], "dropout": 0.0, "conditional": False},
                        8, (1, 16, 16))
    seen = []
    D.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    s = TrainState(G, D, torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters()),
                   augment=Augment(aug_cfg("diffaugment"), "cpu", seed=0))
    real, z = images(6, channels=1), torch.randn(6, 8)
    d_step(s, losses.LOSSES["nonsaturating"], real, z)
    with torch.no_grad():
        fake = G(z)
    g_step(s, losses.LOSSES["nonsaturating"], z)
    d_input, g_input = seen  # D without batch norm: reals and fakes in one pass, then the G step's pass
    assert d_input.shape == (12, 1, 16, 16) and not torch.equal(d_input[:6], real)
    assert not torch.equal(d_input[6:], fake) and not torch.equal(g_input, fake)
    with pytest.raises(ConfigError, match="unknown operation.*blur"):
        Augment(aug_cfg("diffaugment", policy=["blur"]), "cpu", seed=0)


def test_subset_is_class_balanced_and_the_same_for_every_run(mnist_root):
    cfg = OmegaConf.create({"name": "mnist", "root": str(mnist_root), "image_size": 28, "channels": 1,
                            "download": False, "mirror": False, "subset": 20})
    images_, labels = data.load_labeled(cfg)
    keep = data.subset(len(images_), labels, 20)
    assert len(keep) == 20 and torch.bincount(labels[keep], minlength=10).tolist() == [2] * 10
    assert torch.equal(keep, data.subset(len(images_), labels, 20))
    assert len(data.batches(cfg, 4, torch.device("cpu"), seed=1)) == 20
    assert data.batches(cfg, 4, torch.device("cpu"), seed=1).num_classes == 10
    with pytest.raises(ConfigError, match="data.subset=500 is more than the 96 training images"):
        data.subset(96, labels, 500)


def test_an_ada_run_resumes_bit_identically_logs_p_and_shows_what_d_sees(make_cfg, mnist_root, tmp_path):
    extra = ["augment=ada", "augment.p=0.1", "augment.target=-1", "augment.interval=1", "augment.kimg=0.1",
             "model.d_features=4", "trainer.log_every=2", "trainer.ckpt_every=0", "data.subset=48"]
    train(make_cfg(*extra, "trainer.steps=6"), tmp_path / "straight")
    train(make_cfg(*extra, "trainer.steps=3"), tmp_path / "split", [*tiny_overrides(mnist_root), *extra])
    train(make_cfg(*extra, f"resume={tmp_path / 'split'}", "trainer.steps=6"), tmp_path / "split", ["trainer.steps=6"])
    straight = trained_state(tmp_path / "straight")
    assert_same_tree(straight, trained_state(tmp_path / "split"))
    logged = scalars(tmp_path / "straight")
    assert logged == scalars(tmp_path / "split")
    charts = dashboard.layout(("Loss/D", "Augment/rt", "Augment/p"), {})["GAN"]
    assert charts["Augmentation: D's overfitting signal r_t and ADA's p"][1] == ["^Augment/rt$", "^Augment/p$"]
    p = [value for _, value in logged["Augment/p"]]
    # r_t always above the target -1: p climbs 16 / 100 per step from 0.1 (window means of 2 steps) to p_max
    assert p == pytest.approx([0.34, 0.66, 0.8])
    ckpt = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["augment"]["p"].item() == pytest.approx(0.8) and ckpt["augment"]["rng"].dtype == torch.uint8
    assert Image.open(tmp_path / "straight" / "samples" / "augmented.png").size == \
        Image.open(tmp_path / "straight" / "samples" / "real.png").size
    out = sample(sample_cfg(tmp_path / "straight", tmp_path / "seen", mode="augment", n=16, p=0.8))
    assert Image.open(out / "grid.png").size == Image.open(out / "real.png").size == (8 * 30 + 2, 2 * 30 + 2)


def test_mode_augment_of_a_run_without_augmentation_says_how_to_get_one(make_cfg, tmp_path):
    train(make_cfg("trainer.steps=2"), tmp_path / "run")
    with pytest.raises(ConfigError, match="trained with none; train with augment=diffaugment or augment=ada"):
        sample(sample_cfg(tmp_path / "run", tmp_path / "x", mode="augment"))
