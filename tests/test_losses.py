import math

import pytest
import torch

from gan_cli import losses
from gan_cli.losses import d_loss, g_loss_nonsaturating, g_loss_saturating


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_d_loss_at_zero_logits_is_2_log_2():
    zeros = torch.zeros(8)
    assert d_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))


def test_losses_match_the_paper_formulas_on_known_logits():
    real = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    fake = torch.tensor([-3.0, 0.0, 1.5], dtype=torch.float64)
    # D maximises mean log D(x) + mean log(1 - D(G(z))): its loss is the negative
    expected_d = -(sum(math.log(sig(r)) for r in real.tolist()) / 3 + sum(math.log(1 - sig(f)) for f in fake.tolist()) / 3)
    assert d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-12)
    assert g_loss_saturating(fake).item() == pytest.approx(sum(math.log(1 - sig(f)) for f in fake.tolist()) / 3, rel=1e-12)
    assert g_loss_nonsaturating(fake).item() == pytest.approx(-sum(math.log(sig(f)) for f in fake.tolist()) / 3, rel=1e-12)


def _grad(fn, logit):
    x = torch.tensor([logit], requires_grad=True)
    fn(x).backward()
    return x.grad.item()


def test_saturating_gradient_vanishes_when_d_rejects_fakes_but_nonsaturating_does_not():
    # d/dl log(1 - sigmoid(l)) = -sigmoid(l) -> 0 as D(G(z)) = sigmoid(l) -> 0
    sat = [abs(_grad(g_loss_saturating, l)) for l in (0.0, -5.0, -10.0, -20.0)]
    assert sat == sorted(sat, reverse=True)
    assert sat[-1] < 1e-8
    assert sat[0] == pytest.approx(0.5)
    # d/dl -log sigmoid(l) = -(1 - sigmoid(l)) -> -1
    for l in (-5.0, -10.0, -20.0):
        assert _grad(g_loss_nonsaturating, l) == pytest.approx(-1.0, abs=1e-2)


@pytest.mark.parametrize("logit", [-100.0, 100.0, -1e4, 1e4])
def test_losses_and_gradients_are_finite_at_extreme_logits(logit):
    for fn in (g_loss_saturating, g_loss_nonsaturating, lambda l: d_loss(l, l)):
        x = torch.tensor([logit], requires_grad=True)
        value = fn(x)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    assert d_loss(torch.tensor([100.0]), torch.tensor([-100.0])).item() == pytest.approx(0.0, abs=1e-40)
    assert g_loss_nonsaturating(torch.tensor([-100.0])).item() == pytest.approx(100.0)


def test_registry_names_and_unknown_loss():
    assert losses.build({"name": "saturating"}).g is g_loss_saturating
    assert losses.build({"name": "nonsaturating"}).g is g_loss_nonsaturating
    with pytest.raises(Exception, match="unknown loss 'vanilla'"):
        losses.build({"name": "vanilla"})
    with pytest.raises(Exception, match="loss.r1_gamma must be >= 0"):
        losses.build({"name": "hinge", "r1_gamma": -1})


REAL = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
FAKE = torch.tensor([-3.0, 0.0, 1.5], dtype=torch.float64)


def mean(values):
    return sum(values) / len(values)


@pytest.mark.parametrize("name,d_expected,g_expected,d_grad_real,d_grad_fake,g_grad", [
    # least squares, a = 0, b = c = 1: 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]; G: 1/2 E[(D(G(z)) - 1)^2]
    ("lsgan", mean([(r - 1) ** 2 for r in REAL.tolist()]) / 2 + mean([f ** 2 for f in FAKE.tolist()]) / 2,
     mean([(f - 1) ** 2 for f in FAKE.tolist()]) / 2,
     [(r - 1) / 3 for r in REAL.tolist()], [f / 3 for f in FAKE.tolist()], [(f - 1) / 3 for f in FAKE.tolist()]),
    # hinge: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]; G: -E[D(G(z))]
    ("hinge", mean([max(0, 1 - r) for r in REAL.tolist()]) + mean([max(0, 1 + f) for f in FAKE.tolist()]),
     -mean(FAKE.tolist()),
     [-1 / 3 if r < 1 else 0 for r in REAL.tolist()], [1 / 3 if f > -1 else 0 for f in FAKE.tolist()], [-1 / 3] * 3),
    # Wasserstein: the critic minimises E[D(G(z))] - E[D(x)]; G: -E[D(G(z))]
    ("wgan_gp", mean(FAKE.tolist()) - mean(REAL.tolist()), -mean(FAKE.tolist()), [-1 / 3] * 3, [1 / 3] * 3, [-1 / 3] * 3),
])
def test_each_loss_and_its_gradient_match_the_closed_form(name, d_expected, g_expected, d_grad_real, d_grad_fake,
                                                          g_grad):
    loss = losses.build({"name": name})
    real, fake = REAL.clone().requires_grad_(True), FAKE.clone().requires_grad_(True)
    d = loss.d(real, fake)
    d.backward()
    assert d.item() == pytest.approx(d_expected, rel=1e-12)
    assert real.grad.tolist() == pytest.approx(d_grad_real) and fake.grad.tolist() == pytest.approx(d_grad_fake)
    fake = FAKE.clone().requires_grad_(True)
    g = loss.g(fake)
    g.backward()
    assert g.item() == pytest.approx(g_expected, rel=1e-12) and fake.grad.tolist() == pytest.approx(g_grad)


def test_what_d_scores_mean_is_named_per_loss():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-2.0, 0.0])
    assert losses.build({"name": "nonsaturating"}).d_scores(real, fake)["D/real"].item() == pytest.approx(
        (0.5 + sig(2.0)) / 2)
    critic = losses.build({"name": "wgan_gp", "gp_lambda": 10.0})
    scores = critic.d_scores(real, fake)
    assert scores["D/real_score"].item() == 1.0 and scores["Loss/wasserstein_estimate"].item() == 2.0
    assert critic.stat_names() == ("Loss/D", "Loss/G", "D/real_score", "D/fake_score", "Grad/G_norm",
                                   "Loss/wasserstein_estimate", "Loss/gp")
    assert losses.build({"name": "hinge", "r1_gamma": 1.0}).stat_names()[-1] == "Loss/r1"
