"""Speed settings: they change how steps run, never what they compute; and the hot loop does not sync."""

from functools import partial

import pytest
import torch
from omegaconf import OmegaConf

from gan_cli import checkpoint, loop, losses, models, schema, speed
from gan_cli.errors import ConfigError, NonFiniteError
from gan_cli.loop import TrainState, d_step
from gan_cli.sample import generator_from
from gan_cli.train import train

from test_loop import MLP, NullOut, RecordingData
from test_reliability import poison_batch


def trainer(**values):
    base = {"precision": "auto", "channels_last": "auto", "compile": False, "finite_check": "auto",
            "max_nonfinite_skips": 0}
    return OmegaConf.create({**base, **values})


def test_auto_picks_per_device(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(speed, "bf16_fast", lambda device: True)
    fast = speed.resolve(trainer(), cpu, convolutional=True)
    assert fast.dtype is torch.bfloat16 and fast.channels_last and fast.check_each_step and not fast.compile
    monkeypatch.setattr(speed, "bf16_fast", lambda device: False)
    plain = speed.resolve(trainer(), cpu, convolutional=False)
    assert plain.dtype is None and not plain.channels_last
    cuda = speed.resolve(trainer(), torch.device("cuda"), convolutional=True)
    assert not cuda.check_each_step and cuda.channels_last


def test_auto_is_float32_on_cuda_and_bf16_only_on_a_cpu_with_bf16_units(monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert speed.resolve(trainer(), torch.device("cuda"), convolutional=True).dtype is None
    for units in (True, False):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: units)
        assert speed.resolve(trainer(), torch.device("cpu"), convolutional=True).dtype == (torch.bfloat16 if units else None)


@pytest.mark.parametrize("override, match", [
    ("trainer.precision=fp8", "trainer.precision must be auto, 32, bf16 or 16, got 'fp8'"),
    ("trainer.channels_last=maybe", "trainer.channels_last must be auto, true or false"),
    ("trainer.finite_check=never", "trainer.finite_check must be auto, step or log"),
    ("trainer.max_nonfinite_skips=2", "max_nonfinite_skips needs trainer.finite_check=step"),
])
def test_bad_speed_settings_are_one_clear_error_before_any_work(make_cfg, override, match):
    with pytest.raises(ConfigError, match=match):
        schema.check_train(make_cfg("trainer.finite_check=log", override))


def test_d_sees_real_and_fake_in_one_pass_only_without_batch_norm():
    """One pass over cat(real, fake) is the same function as two when D has no batch norm."""
    torch.manual_seed(0)
    G, D = models.build(MLP, 4, (1, 8, 8))
    joint = TrainState(G, D, torch.optim.SGD(G.parameters(), 0.1), torch.optim.SGD(D.parameters(), 0.1))
    G2, D2 = models.build(MLP, 4, (1, 8, 8))
    G2.load_state_dict(G.state_dict()), D2.load_state_dict(D.state_dict())
    apart = TrainState(G2, D2, torch.optim.SGD(G2.parameters(), 0.1), torch.optim.SGD(D2.parameters(), 0.1))
    apart.joint_d = False
    assert joint.joint_d
    real, z = torch.rand(6, 1, 8, 8) * 2 - 1, torch.randn(6, 4)
    (loss_a, stats_a), (loss_b, stats_b) = (d_step(s, losses.LOSSES["nonsaturating"], real, z) for s in (joint, apart))
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    assert all(torch.allclose(stats_a[k], stats_b[k], atol=1e-6) for k in ("D/real", "D/fake"))
    for p, q in zip(D.parameters(), D2.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    dc_G, dc_D = models.build({"name": "dcgan", "g_features": 8, "d_features": 8}, 4, (1, 16, 16))
    assert not TrainState(dc_G, dc_D, torch.optim.SGD(dc_G.parameters(), 0.1), torch.optim.SGD(dc_D.parameters(), 0.1)).joint_d


@pytest.mark.parametrize("precision", ["32", "bf16", "16"])
def test_every_precision_trains_finite_float32_weights_that_gan_sample_reads(make_cfg, tmp_path, precision):
    s = train(make_cfg(f"trainer.precision={precision}", "trainer.channels_last=true"), tmp_path)
    assert s.speed.dtype is speed.DTYPES[precision] and s.scaler_g.is_enabled() == (precision == "16")
    assert next(s.D.parameters()).is_contiguous(memory_format=torch.channels_last)
    ckpt = checkpoint.load(tmp_path)
    assert all(t.dtype == torch.float32 and t.isfinite().all() for t in ckpt["G"].values() if t.is_floating_point())
    assert bool(ckpt["scalers"]["G"]) == (precision == "16")
    G, latent_dim = generator_from(ckpt, torch.device("cpu"))  # a plain, contiguous G reads channels_last weights
    assert G(torch.randn(2, latent_dim)).isfinite().all()


def test_the_optimizers_use_their_fused_kernels(make_cfg, tmp_path):
    s = train(make_cfg("trainer.steps=1"), tmp_path)
    assert s.opt_g.defaults["fused"] and s.opt_d.defaults["fused"]


def test_finite_check_log_reads_the_device_once_per_log_window(monkeypatch):
    """No host sync in the hot loop: the only reads are the accumulated scalars, every log_every steps."""
    torch.manual_seed(0)
    G, D = models.build(MLP, 4, (1, 8, 8))
    fast = speed.Speed(torch.device("cpu"), check_each_step=False)
    adam = partial(torch.optim.Adam, lr=1e-3)  # fused, as the trainer makes it: plain Adam reads its step count
    s = TrainState(G, D, fast.optimizer(adam, G.parameters()), fast.optimizer(adam, D.parameters()), speed=fast)
    cfg = OmegaConf.create({"batch_size": 6, "latent_dim": 4, "trainer": {
        "steps": 12, "d_steps": 2, "log_every": 4, "sample_every": 0, "eval_every": 0, "ckpt_every": 0,
        "max_nonfinite_skips": 0}})
    reads = []
    for name in ("item", "tolist", "__bool__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _f=original, _n=name: reads.append(_n) or _f(self, *a))
    out = NullOut()
    loop.fit(s, losses.LOSSES["nonsaturating"], RecordingData(), cfg, out)
    assert reads == ["tolist"] * 3 and [step for step, _ in out.logged] == [4, 8, 12]


def test_finite_check_log_stops_at_the_window_that_went_bad(make_cfg, tmp_path, monkeypatch):
    poison_batch(monkeypatch, at_call=3)
    with pytest.raises(NonFiniteError, match="not finite in the 2 steps up to 4; stopped") as e:
        train(make_cfg("trainer.finite_check=log", "trainer.ckpt_every=4"), tmp_path)
    assert e.value.exit_code == 5 and not (tmp_path / "checkpoints").exists()


@pytest.mark.slow  # compiling takes about a minute on 2 CPU cores
def test_compile_trains_and_saves_the_plain_modules_keys(make_cfg, tmp_path):
    s = train(make_cfg("trainer.compile=true", model="mlp"), tmp_path)
    ckpt = checkpoint.load(tmp_path)
    assert s.speed.compile and not any("_orig_mod" in k for k in ckpt["G"])
    G, latent_dim = generator_from(ckpt, torch.device("cpu"))
    assert G(torch.randn(2, latent_dim)).isfinite().all()
