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
    with pytest.raises(Exception, match="unknown loss 'hinge'"):
        losses.build({"name": "hinge"})
