"""The penalties a D step adds to its loss, all in one place: WGAN-GP's gradient penalty and drift term, and R1.

Each differentiates D's score with respect to its input (create_graph=True), so that D's own update then
differentiates through that gradient. Both are per-sample gradients: a D with batch norm, whose score of one
image depends on the rest of the batch, does not have them (check() refuses it).
"""

import torch

from gan_cli.errors import ConfigError
from gan_cli.models import call
from gan_cli.speed import has_batch_norm


def _input_gradient(D, x, y):
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(call(D, x, y).float().sum(), x, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(D, real, fake, y=None):
    """E[(||grad D(x_hat)|| - 1)^2] at x_hat = e x + (1 - e) G(z), e ~ U[0, 1] per sample (Gulrajani et al.
    2017): a soft 1-Lipschitz constraint on the critic. e is drawn from the training RNG, as the noise is."""
    e = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device)
    mixed = e * real.detach() + (1 - e) * fake.detach().to(real.dtype)
    return (_input_gradient(D, mixed, y).norm(dim=1) - 1).square().mean()


def r1_penalty(D, real, y=None):
    """E[||grad D(x)||^2] on real data (Mescheder et al. 2018): D flat around the data."""
    return _input_gradient(D, real, y).square().sum(1).mean()


def d_penalty(loss, D, real, fake, real_logits, real_y=None):
    """(what the D step adds to its loss, {TensorBoard tag: unweighted penalty}) for the loss's weights."""
    total, terms = real_logits.new_zeros(()), {}
    if loss.gp_lambda:
        terms["Loss/gp"] = gradient_penalty(D, real, fake, real_y)
        total = total + loss.gp_lambda * terms["Loss/gp"]
    if loss.drift:
        total = total + loss.drift * real_logits.square().mean()
    if loss.r1_gamma:
        terms["Loss/r1"] = r1_penalty(D, real, real_y)
        total = total + loss.r1_gamma / 2 * terms["Loss/r1"]
    return total, terms


def check(loss, D, world):
    """Refuse what the penalties cannot do, before training starts: a D with batch norm, and torchrun."""
    active = [key for key in ("gp_lambda", "r1_gamma") if getattr(loss, key)]
    if not active:
        return
    what = f"loss={loss.name}" if loss.gp_lambda else f"loss.r1_gamma={loss.r1_gamma}"
    if has_batch_norm(D):
        raise ConfigError(f"{what} penalises the gradient of D's score for each sample, but D has batch norm, which "
                          "makes each score depend on the whole batch; use model.d_norm=none or model.d_norm=layer "
                          "(or +experiment=wgan_gp)")
    if world > 1:
        raise ConfigError(f"{what}: gradient penalties are not supported under torchrun; train in one process")
