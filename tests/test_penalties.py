"""The D step's penalties (WGAN-GP's gradient penalty and drift, R1) against hand-computed cases, and every loss
training on the toy data."""

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from conftest import run_cli
from gan_cli import losses, penalties
from gan_cli.board import events_folder
from gan_cli.train import train


class Linear(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return x.flatten(1) @ self.w


class HalfSquare(nn.Module):
    """D(x) = a ||x||^2 / 2: its input gradient is a x."""

    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x):
        return self.a * x.flatten(1).square().sum(1) / 2


def test_the_gradient_penalty_is_zero_for_a_unit_norm_linear_critic_and_positive_otherwise():
    real, fake = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    unit = torch.randn(16)
    unit /= unit.norm()
    assert penalties.gradient_penalty(Linear(unit), real, fake).item() == pytest.approx(0.0, abs=1e-10)
    assert penalties.gradient_penalty(Linear(2 * unit), real, fake).item() == pytest.approx(1.0, rel=1e-5)
    critic = Linear(2 * unit)
    penalties.gradient_penalty(critic, real, fake).backward()  # D's update differentiates through the penalty
    assert critic.w.grad is not None and critic.w.grad.norm() > 0  # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(critic.w.grad, 2 * (2 - 1) * unit, atol=1e-5)


def test_r1_is_the_mean_squared_input_gradient_on_real_data():
    real = torch.randn(5, 1, 3, 3)
    expected = (0.5 ** 2) * real.flatten(1).square().sum(1).mean()  # ||grad||^2 = a^2 ||x||^2, a = 0.5
    assert penalties.r1_penalty(HalfSquare(0.5), real).item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_d_step_adds_each_penalty_at_its_weight():
    real, fake = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    D = HalfSquare(0.5)
    loss = losses.build({"name": "wgan_gp", "gp_lambda": 10.0, "drift": 0.001, "r1_gamma": 4.0})
    real_logits = D(real)
    total, terms = penalties.d_penalty(loss, D, real, fake, real_logits)
    r1 = penalties.r1_penalty(D, real)
    assert set(terms) == {"Loss/gp", "Loss/r1"} and terms["Loss/r1"].item() == pytest.approx(r1.item())
    expected = 10.0 * terms["Loss/gp"] + 0.001 * real_logits.square().mean() + 4.0 / 2 * r1
    assert total.item() == pytest.approx(expected.item(), rel=1e-6) and terms["Loss/gp"].item() > 0
    nothing, none = penalties.d_penalty(losses.build({"name": "hinge", "r1_gamma": 0.0}), D, real, fake, real_logits)
    assert nothing.item() == 0.0 and none == {}


@pytest.mark.parametrize("loss", ["saturating", "nonsaturating", "lsgan", "hinge", "wgan_gp", "r1"])
def test_every_loss_trains_50_steps_on_ring8_with_finite_values(make_cfg, tmp_path, loss):
    extra = {"wgan_gp": ["loss=wgan_gp", "trainer.d_steps=5"], "r1": ["loss=nonsaturating", "loss.r1_gamma=1.0"]}
    cfg = make_cfg("+experiment=ring8", "data=ring8", "trainer.steps=50", "trainer.log_every=10", "trainer.sample_every=0",
                   "batch_size=64", *extra.get(loss, [f"loss={loss}"]), model="mlp")
    train(cfg, tmp_path)
    ea = EventAccumulator(str(events_folder(tmp_path)), size_guidance={"scalars": 0})
    ea.Reload()
    tags = ea.Tags()["scalars"]
    values = [e.value for tag in tags for e in ea.Scalars(tag)]
    assert values and all(math.isfinite(v) for v in values)
    named = {"wgan_gp": {"Loss/wasserstein_estimate", "Loss/gp", "D/real_score"}, "r1": {"Loss/r1", "D/real"},
             "lsgan": {"D/real_score", "D/fake_score"}, "saturating": {"D/real", "D/fake"}}
    assert named.get(loss, set()) <= set(tags)
    assert [e.step for e in ea.Scalars("Loss/D")] == [10, 20, 30, 40, 50]


def test_wgan_gp_with_a_batch_norm_d_is_refused_in_one_line(tmp_path):
    proc = run_cli("gan-train", "loss=wgan_gp", "trainer.steps=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "D has batch norm" in proc.stderr and "model.d_norm=none or model.d_norm=layer" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_resumed_with_another_loss_logs_that_losss_scalars(make_cfg, mnist_root, tmp_path, caplog):
    from conftest import tiny_overrides

    caplog.set_level("WARNING", logger="gan_cli")
    train(make_cfg("trainer.steps=3", "trainer.log_every=2"), tmp_path, tiny_overrides(mnist_root))
    s = train(make_cfg(f"resume={tmp_path}", "trainer.steps=4", "trainer.log_every=2", "loss=hinge"), tmp_path,
              ["trainer.steps=4", "loss=hinge"])
    assert s.step == 4 and "open logging window restarts" in caplog.text
    ea = EventAccumulator(str(events_folder(tmp_path)))
    ea.Reload()
    assert [e.step for e in ea.Scalars("D/real_score")] == [4] and [e.step for e in ea.Scalars("D/real")] == [2]
