"""gan_cli.train.train() on the composed config, in-process: files written, resume, refusals."""

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import tiny_overrides
from gan_cli import checkpoint
from gan_cli.board import events_folder
from gan_cli.errors import CheckpointError, ConfigError
from gan_cli.train import train


def events(run_dir):
    ea = EventAccumulator(str(events_folder(run_dir)), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    return ea


def test_a_run_writes_checkpoints_tensorboard_and_grids(make_cfg, mnist_root, tmp_path):
    s = train(make_cfg(), tmp_path, tiny_overrides(mnist_root))
    assert s.step == 4
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["last.pt", "step_0000002.pt", "step_0000004.pt"]
    raw = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert raw["step"] == 4 and raw["config"]["model"]["name"] == "dcgan" and raw["fixed_z"].shape == (64, 8)
    assert set(raw) >= {"G", "D", "opt_g", "opt_d", "rng", "config", "overrides"}
    assert raw["opt_g"]["state"]  # Adam moments are saved, not just the weights

    ea = events(tmp_path)
    tags = ea.Tags()
    for tag in ("Loss/D", "Loss/G", "D/real", "D/fake", "Grad/G_norm", "Speed/images_per_sec"):
        assert [e.step for e in ea.Scalars(tag)] == [2, 4], tag
    assert set(tags["images"]) == {"Samples/real", "Samples/fixed_noise", "Samples/interpolation"}
    assert [e.step for e in ea.Images("Samples/fixed_noise")] == [2, 4]
    assert "config/text_summary" in tags["tensors"]
    assert (tmp_path / "samples" / "real.png").is_file() and (tmp_path / "samples" / "step_0000004.png").is_file()


def test_hparams_are_logged_for_the_hparams_tab(make_cfg, mnist_root, tmp_path):
    train(make_cfg(), tmp_path, tiny_overrides(mnist_root))
    ea = events(tmp_path)
    assert "_hparams_/experiment" in ea.PluginTagToContent("hparams")
    assert [e.step for e in ea.Scalars("final/Loss/D")] == [4]


def test_resume_continues_from_the_saved_step_without_duplicating_logged_steps(make_cfg, mnist_root, tmp_path):
    train(make_cfg(), tmp_path, tiny_overrides(mnist_root))
    # As if killed after logging step 4 but before saving it: resume from the step-2 checkpoint.
    ckpt2 = checkpoint.load(tmp_path / "checkpoints" / "step_0000002.pt")
    s = train(make_cfg(f"resume={ckpt2['path']}", "trainer.steps=6"), tmp_path, ["trainer.steps=6"])
    assert s.step == 6
    assert [e.step for e in events(tmp_path).Scalars("Loss/G")] == [2, 4, 6]
    last = checkpoint.load(tmp_path)
    assert last["step"] == 6 and last["config"]["trainer"]["steps"] == 6
    assert not torch.equal(last["G"]["net.0.weight"], ckpt2["G"]["net.0.weight"])
    assert last["config"]["data"]["root"] == str(mnist_root)  # the original overrides came back


def test_resume_refuses_an_architecture_change_naming_the_key(make_cfg, mnist_root, tmp_path):
    train(make_cfg(), tmp_path, tiny_overrides(mnist_root))
    with pytest.raises(ConfigError, match="model differ from the checkpoint"):
        train(make_cfg(f"resume={tmp_path}", "model.g_features=16"), tmp_path, ["model.g_features=16"])


def test_resume_of_a_checkpoint_from_before_the_newer_model_keys(make_cfg, mnist_root, tmp_path):
    """model.d_norm, g_extra and d_extra came later; a checkpoint without them built what their defaults build."""
    train(make_cfg(), tmp_path, tiny_overrides(mnist_root))
    raw = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    for key in ("sha256", "format", "version"):
        raw.pop(key)
    for key in ("d_norm", "g_extra", "d_extra"):
        raw["config"]["model"].pop(key)
    checkpoint.save(tmp_path / "checkpoints" / "last.pt", raw)
    steps = raw["step"] + 2
    s = train(make_cfg(f"resume={tmp_path}", f"trainer.steps={steps}"), tmp_path, [f"trainer.steps={steps}"])
    assert s.step == steps
    with pytest.raises(ConfigError, match="model differ from the checkpoint"):  # a real change is still refused
        train(make_cfg(f"resume={tmp_path}", "model.g_extra=1"), tmp_path, ["model.g_extra=1"])


def test_a_used_run_folder_is_never_overwritten(make_cfg, mnist_root, tmp_path):
    train(make_cfg(), tmp_path, tiny_overrides(mnist_root))
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run's checkpoints; continue it with resume="):
        train(make_cfg(), tmp_path, tiny_overrides(mnist_root))
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before


def test_resume_from_something_that_is_not_a_checkpoint(make_cfg, tmp_path):
    (tmp_path / "x.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable gan-cli checkpoint"):
        train(make_cfg(f"resume={tmp_path / 'x.pt'}"), tmp_path / "run")


@pytest.mark.parametrize("override,match", [
    ("batch_size=0", "batch_size must be a positive integer"),
    ("trainer.d_steps=0", r"trainer.d_steps \(k\) must be >= 1"),
    ("data.image_size=48", "model=dcgan cannot make 48x48"),
    ("+trainer.foo=1", "unknown config key.*trainer.foo"),
    ("optimizer.generator.lr=-1", "optimizer.generator.lr must be > 0"),
    ("model.g_extra=-1", "model.g_extra must be a whole number >= 0"),
    ("model.d_extra=-2", "model.d_extra must be a whole number >= 0"),
])
def test_bad_values_stop_before_training(make_cfg, tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        train(make_cfg(override), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("opt", ["adam", "sgd"])
@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_every_model_and_optimizer_option_trains(make_cfg, tmp_path, opt, model):
    cfg = make_cfg(f"optimizer={opt}", "loss=saturating", "trainer.d_steps=2", "trainer.steps=2", model=model)
    assert train(cfg, tmp_path).step == 2
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert saved["config"]["model"]["name"] == model and saved["opt_g"]["state"]
