"""Class-conditional GANs: labels reach G and D, the D step pairs real images with their own labels, exact resume,
per-class grids, and gan-sample's label=."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli, tiny_overrides
from gan_cli import losses, models
from gan_cli.board import events_folder
from gan_cli.loop import TrainState, train_step
from gan_cli.sample import sample
from gan_cli.train import train
from test_latent import sample_cfg
from test_reliability import assert_same_tree, scalars, trained_state

CONDITIONAL = {"mlp": {"name": "mlp", "g_hidden": [16], "d_hidden": [16], "dropout": 0.0, "conditional": True},
               "dcgan": {"name": "dcgan", "g_features": 8, "g_extra": 0, "d_features": 8, "d_norm": "spectral",
                         "d_extra": 0, "conditional": True}}


@pytest.mark.parametrize("name", CONDITIONAL)
def test_labels_change_what_g_draws_and_what_d_says(name):
    torch.manual_seed(0)
    G, D = models.build(CONDITIONAL[name], 8, (1, 16, 16), num_classes=10)
    G.eval()
    z, x = torch.randn(4, 8), torch.rand(4, 1, 16, 16) * 2 - 1
    threes, sevens = torch.full((4,), 3), torch.full((4,), 7)
    with torch.no_grad():
        assert not torch.allclose(G(z, threes), G(z, sevens))
        assert not torch.allclose(D(x, threes), D(x, sevens))
        # class weights (mode=interpolate between classes) at a class's one-hot are that class
        assert torch.allclose(G(z, torch.nn.functional.one_hot(threes, 10).float()), G(z, threes), atol=1e-6)


def test_an_unconditional_model_builds_the_same_nets_as_before_the_option():
    for name, cfg in CONDITIONAL.items():
        plain = {k: v for k, v in cfg.items() if k != "conditional"}
        torch.manual_seed(0)
        old = models.build(plain, 8, (1, 16, 16), num_classes=10)
        torch.manual_seed(0)
        new = models.build({**plain, "conditional": False}, 8, (1, 16, 16), num_classes=10)
        for a, b in zip(old, new):
            assert_same_tree(a.state_dict(), b.state_dict())


class Labelled:
    """A batch source whose every image has label 5 (the fakes' labels are drawn uniformly)."""

    def next(self):
        return torch.rand(6, 1, 16, 16) * 2 - 1, torch.full((6,), 5)


def test_the_d_step_scores_real_images_with_their_own_labels_and_fakes_with_gs():
    torch.manual_seed(0)
    G, D = models.build(CONDITIONAL["mlp"], 8, (1, 16, 16), num_classes=10)
    seen = {"G": [], "D": []}
    G.register_forward_pre_hook(lambda m, args: seen["G"].append(args[1].clone()))
    D.register_forward_pre_hook(lambda m, args: seen["D"].append(args[1].clone()))
    s = TrainState(G, D, torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters()), num_classes=10)
    cfg = type("Cfg", (), {"batch_size": 6, "latent_dim": 8, "trainer": type("T", (), {"d_steps": 1})})
    train_step(s, losses.LOSSES["nonsaturating"], Labelled(), cfg, torch.device("cpu"))
    d_step_labels, g_step_labels = seen["D"]  # D without batch norm: real and fake in one pass
    assert torch.equal(d_step_labels[:6], torch.full((6,), 5))  # the real batch's own labels
    assert torch.equal(d_step_labels[6:], seen["G"][0])  # the labels G drew the fakes for
    assert torch.equal(g_step_labels, seen["G"][1])  # G's step: D judges G's images as the classes asked for
    assert not torch.equal(seen["G"][0], seen["G"][1])  # fresh labels for every phase


def test_a_conditional_run_resumes_bit_identically_in_a_new_process(make_cfg, mnist_root, tmp_path):
    extra = ["model.conditional=true", "model.d_features=4", "trainer.log_every=3", "trainer.ckpt_every=0",
             "trainer.ema_decay=0.9"]
    train(make_cfg(*extra, "trainer.steps=8"), tmp_path / "straight")
    half = tmp_path / "split"
    train(make_cfg(*extra, "trainer.steps=4"), half, [*tiny_overrides(mnist_root), *extra])
    run_cli("gan-train", f"resume={half}", "trainer.steps=8", check=True)
    assert_same_tree(trained_state(tmp_path / "straight"), trained_state(half))
    assert scalars(tmp_path / "straight") == scalars(half)
    for name in ("step_0000008.png", "interpolation.png"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "straight" / "samples" / name)),
                              np.asarray(Image.open(half / "samples" / name)))


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory, mnist_root):
    from hydra import compose, initialize_config_module

    run = tmp_path_factory.mktemp("conditional")
    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        over = [*tiny_overrides(mnist_root, "mlp"), "model.conditional=true"]
        train(compose("train", overrides=over), run, over)
    return run


def test_the_sample_grid_has_a_row_per_class_and_the_run_ends_with_an_interpolation_strip(conditional_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert Image.open(conditional_run / "samples" / "step_0000004.png").size == (8 * 30 + 2, 10 * 30 + 2)
    assert Image.open(conditional_run / "samples" / "interpolation.png").size == (8 * 30 + 2, 10 * 30 + 2)
    ea = EventAccumulator(str(events_folder(conditional_run)))
    ea.Reload()
    assert "Samples/interpolation" in ea.Tags()["images"]
    plugin = ea.PluginTagToContent("hparams")
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["model.conditional"].number_value == 1  # torch writes a bool as a number


def test_label_draws_one_class_and_all_draws_a_row_per_class(conditional_run, tmp_path):
    seven = np.load(sample(sample_cfg(conditional_run, tmp_path / "7", n=8, label=7)) / "images.npz")["images"]
    every = np.load(sample(sample_cfg(conditional_run, tmp_path / "all", label="all")) / "images.npz")["images"]
    assert every.shape[0] == 10 * 8  # nrow images per class
    assert np.array_equal(every[7 * 8:8 * 8], seven)  # row 7: the same noise, class 7
    assert not np.array_equal(every[:8], every[8:16])
    again = np.load(sample(sample_cfg(conditional_run, tmp_path / "7b", n=8, label=7)) / "images.npz")["images"]
    assert np.array_equal(seven, again)  # same seed, same images


def test_interpolating_between_classes_starts_and_ends_at_each_seeds_own_class_sample(conditional_run, tmp_path):
    out = sample(sample_cfg(conditional_run, tmp_path / "i", mode="interpolate", seeds=[3, 8], label=[2, 6], steps=5))
    grid = np.asarray(Image.open(out / "interpolation.png"))
    first = {(seed, label): np.load(sample(sample_cfg(conditional_run, tmp_path / f"{seed}{label}", seed=seed,
                                                      label=label)) / "images.npz")["images"][0, :, :, 0]
             for seed, label in ((3, 2), (8, 6))}
    cell = lambda c: grid[2:30, 2 + 30 * c: 30 + 30 * c]  # noqa: E731
    assert np.abs(cell(0).astype(int) - first[3, 2]).max() <= 1
    assert np.abs(cell(4).astype(int) - first[8, 6]).max() <= 1


@pytest.mark.parametrize("args,message", [
    (["label=10"], "label=10 is out of range: this G draws classes 0 to 9"),
    (["label=-1"], "label=-1 is out of range"),
    (["label=seven"], "label must be a class number"),
    (["mode=interpolate", "seeds=[0,1]", "label=[3]"], "gives 1 classes for 2 seeds"),
])
def test_a_bad_label_is_one_line_and_exit_2(conditional_run, tmp_path, args, message):
    proc = run_cli("gan-sample", f"ckpt={conditional_run}", f"out={tmp_path}", *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


def test_a_label_for_an_unconditional_checkpoint_is_refused(make_cfg, tmp_path):
    train(make_cfg("trainer.steps=2"), tmp_path / "run")
    proc = run_cli("gan-sample", f"ckpt={tmp_path / 'run'}", "label=3")
    assert proc.returncode == 2 and "G is unconditional" in proc.stderr and "drop label=" in proc.stderr


def test_conditional_training_on_unlabeled_data_is_refused(tmp_path):
    proc = run_cli("gan-train", "+experiment=ring8", "model.conditional=true", "trainer.steps=1",
                   f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and "model.conditional=true needs class labels" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


CUSTOM = '''
import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self, latent_dim, channels, image_size, num_classes, hidden=()):
        super().__init__()
        self.shape = (channels, image_size, image_size)
        self.embed = nn.Embedding(num_classes, 4)
        self.net = nn.Sequential(nn.Linear(latent_dim + 4, channels * image_size ** 2), nn.Tanh())

    def forward(self, z, y):
        return self.net(torch.cat([z, self.embed(y)], 1)).view(-1, *self.shape)


class Discriminator(nn.Module):
    def __init__(self, latent_dim, channels, image_size, num_classes, hidden=()):
        super().__init__()
        self.net = nn.Linear(channels * image_size ** 2, num_classes)

    def forward(self, x, y):
        return self.net(x.flatten(1)).gather(1, y[:, None])
'''


def test_custom_classes_whose_forward_takes_labels_train_conditionally(make_cfg, tmp_path, monkeypatch):
    (tmp_path / "cgan.py").write_text(CUSTOM)
    (tmp_path / "plain.py").write_text(CUSTOM.replace("forward(self, z, y)", "forward(self, z)")
                                       .replace("self.embed(y)", "torch.zeros(len(z), 4)"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    nets = ["model.generator._target_=cgan.Generator", "model.discriminator._target_=cgan.Discriminator"]
    s = train(make_cfg(*nets, "model.conditional=true", model="custom"), tmp_path / "run")
    assert s.step == 4 and s.num_classes == 10 and s.G.embed.weight.grad is None  # trained, grads freed
    from gan_cli import errors

    with pytest.raises(errors.ConfigError, match=r"Generator fails on noise of shape \(16, 8\) and labels of shape "
                                                 r"\(16,\) \(a conditional model: forward\(self, x, y\)\)"):
        train(make_cfg("model.generator._target_=plain.Generator", "model.discriminator._target_=cgan.Discriminator",
                       "model.conditional=true", model="custom"), tmp_path / "run2")
