"""Algorithm 1: k D steps on fresh batches with G fixed, then one G step with D fixed."""

import pytest
import torch
from omegaconf import OmegaConf

from gan_cli import loop, losses, models
from gan_cli.loop import TrainState, d_step, fit, g_step

MLP = {"name": "mlp", "g_hidden": [16], "d_hidden": [16], "dropout": 0.0}


def state():
    torch.manual_seed(0)
    G, D = models.build(MLP, 4, (1, 8, 8))
    return TrainState(G, D, torch.optim.Adam(G.parameters(), 1e-2), torch.optim.Adam(D.parameters(), 1e-2))


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


class RecordingData:
    def __init__(self):
        self.batches = []

    def next(self):
        self.batches.append(torch.rand(6, 1, 8, 8) * 2 - 1)
        return self.batches[-1], None


class NullOut:
    last_scalars = {}
    stop_signal = None

    def __init__(self):
        self.logged = []

    def scalars(self, values, step):
        self.logged.append((step, values))
        self.last_scalars = values

    def samples(self, s, step):
        pass

    def checkpoint(self, s, step, periodic):
        pass


def test_d_step_updates_d_only_and_g_step_updates_g_only():
    s, loss = state(), losses.LOSSES["nonsaturating"]
    g0, d0 = params(s.G), params(s.D)
    d_step(s, loss, torch.rand(6, 1, 8, 8), torch.randn(6, 4))
    assert same(params(s.G), g0) and not same(params(s.D), d0)
    assert all(p.grad is None for p in s.G.parameters())  # G was never differentiated

    assert all(p.grad is None for p in s.D.parameters())  # freed once D has stepped: memory for the G phase

    d1 = params(s.D)
    g_step(s, loss, torch.randn(6, 4))
    assert same(params(s.D), d1) and not same(params(s.G), g0)
    # D's optimizer does not clear G's step, so any gradient that reached D would still be here
    assert all(p.grad is None for p in s.D.parameters())
    assert all(p.grad is None for p in s.G.parameters())
    assert all(p.requires_grad for p in s.D.parameters())


@pytest.mark.parametrize("k", [1, 3])
def test_fit_does_k_d_updates_per_g_update_on_fresh_batches_and_noise(k, monkeypatch):
    s, data, order, zs = state(), RecordingData(), [], []
    s.opt_d.register_step_post_hook(lambda *_: order.append("D"))
    s.opt_g.register_step_post_hook(lambda *_: order.append("G"))
    real_noise = loop.noise
    monkeypatch.setattr(loop, "noise", lambda *a: zs.append(real_noise(*a)) or zs[-1])
    cfg = OmegaConf.create({"batch_size": 6, "latent_dim": 4, "trainer": {
        "steps": 5, "d_steps": k, "log_every": 2, "sample_every": 0, "ckpt_every": 0, "max_nonfinite_skips": 0, "eval_every": 0}})
    out = NullOut()
    fit(s, losses.LOSSES["saturating"], data, cfg, out)

    assert "".join(order) == ("D" * k + "G") * 5
    assert s.step == 5
    assert len(data.batches) == 5 * k  # a fresh real batch for every D step
    assert len(zs) == 5 * (k + 1)  # fresh noise for every D step and every G step
    assert all(not torch.equal(a, b) for i, a in enumerate(zs) for b in zs[i + 1:])
    assert [step for step, _ in out.logged] == [2, 4, 5]
    assert set(out.logged[-1][1]) >= {"Loss/D", "Loss/G", "D/real", "D/fake", "Grad/G_norm", "Speed/images_per_sec"}
    assert 0 < out.logged[-1][1]["D/real"] < 1 and out.logged[-1][1]["Grad/G_norm"] > 0
