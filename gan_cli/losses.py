"""GAN losses as pure functions of D's scores: the paper's (Goodfellow et al. 2014, eq. 1 and section 3), read as
logits, and the family that followed it (least squares, hinge, Wasserstein), read as raw scores.

With D(x) = sigmoid(l):  log D(x) = -softplus(-l)  and  log(1 - D(x)) = -softplus(l).
softplus is exact and finite at any logit, where log(sigmoid(l)) by hand is -inf past l ~ -100.
"""

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from gan_cli.errors import ConfigError


def d_loss(real_logits, fake_logits):
    """D maximises mean log D(x) + mean log(1 - D(G(z))); we minimise the negative."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_saturating(fake_logits):
    """G minimises mean log(1 - D(G(z))) = -softplus(l). Its gradient, -sigmoid(l), vanishes as D(G(z)) -> 0."""
    return -F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits):
    """G minimises mean -log D(G(z)) = softplus(-l). Gradient -(1 - sigmoid(l)) -> -1 as D(G(z)) -> 0."""
    return F.softplus(-fake_logits).mean()


PROBABILITY_EPS = 1e-6


def logits_from_probabilities(p):
    """For a D that ends in a sigmoid, as the lecture draws it: l = log(p / (1 - p)), so the losses above apply.
    p is clamped to [eps, 1 - eps] first (torch.logit's eps): a saturated sigmoid (p = 1.0 in float32 from
    l ~ 17 on) gives a finite logit of about +-13.8 instead of +-inf."""
    return torch.logit(p, eps=PROBABILITY_EPS)


def d_loss_least_squares(real_logits, fake_logits):
    """LSGAN (Mao et al. 2017) with a = 0, b = c = 1: D regresses its raw score to 1 on real data and to 0 on
    fakes, 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]. The score is D's output itself, no sigmoid."""
    return 0.5 * (real_logits - 1).square().mean() + 0.5 * fake_logits.square().mean()


def g_loss_least_squares(fake_logits):
    """G minimises 1/2 E[(D(G(z)) - 1)^2]: a gradient that grows with the distance from the real target."""
    return 0.5 * (fake_logits - 1).square().mean()


def d_loss_hinge(real_logits, fake_logits):
    """Hinge (Lim & Ye 2017; Miyato et al. 2018): E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]; scores past
    the margin on the right side cost nothing."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_loss_critic(fake_logits):
    """G maximises the critic's score of its samples, -E[D(G(z))]: hinge (Miyato et al.) and WGAN's G loss."""
    return -fake_logits.mean()


def d_loss_wasserstein(real_logits, fake_logits):
    """WGAN (Arjovsky et al. 2017): the critic maximises E[D(x)] - E[D(G(z))], an estimate of the Wasserstein-1
    distance when D is 1-Lipschitz; the gradient penalty (penalties.py) keeps it near that."""
    return fake_logits.mean() - real_logits.mean()


@dataclass(frozen=True)
class GANLoss:
    """A loss: D's and G's parts as functions of D's scores, whether those scores are logits of a probability
    (so sigmoid(score) is D's belief that x is real), and the weights of the penalties of penalties.py."""

    name: str
    g: callable
    d: callable = d_loss
    probabilities: bool = True
    gp_lambda: float = 0.0  # gradient penalty at random interpolates (Gulrajani et al. 2017)
    drift: float = 0.0  # epsilon * E[D(x)^2] (Karras et al. 2018): keeps a critic's scores from drifting
    r1_gamma: float = 0.0  # gamma / 2 * E||grad_x D(x)||^2 on real data (Mescheder et al. 2018)
    boundary: float = 0.0  # the score between D's two verdicts: logit 0 (D(x) = 1/2), hinge's and the critic's 0

    def stat_names(self):
        """The scalars a training step reports under this loss, in the order train_step stacks them."""
        scores = ["D/real", "D/fake"] if self.probabilities else ["D/real_score", "D/fake_score"]
        critic = ["Loss/wasserstein_estimate"] if self.d is d_loss_wasserstein else []
        penalties = (["Loss/gp"] if self.gp_lambda else []) + (["Loss/r1"] if self.r1_gamma else [])
        return ("Loss/D", "Loss/G", *scores, "Grad/G_norm", *critic, *penalties)

    def d_scores(self, real_logits, fake_logits):
        """{tag: value} of what D's scores mean under this loss, for TensorBoard: probabilities where the loss
        has them, raw scores (and, for a critic, its Wasserstein estimate) where it does not."""
        if self.probabilities:
            return {"D/real": torch.sigmoid(real_logits).mean(), "D/fake": torch.sigmoid(fake_logits).mean()}
        scores = {"D/real_score": real_logits.mean(), "D/fake_score": fake_logits.mean()}
        if self.d is d_loss_wasserstein:
            scores["Loss/wasserstein_estimate"] = scores["D/real_score"] - scores["D/fake_score"]
        return scores


LOSSES = {
    "saturating": GANLoss("saturating", g_loss_saturating),
    "nonsaturating": GANLoss("nonsaturating", g_loss_nonsaturating),
    "lsgan": GANLoss("lsgan", g_loss_least_squares, d_loss_least_squares, probabilities=False, boundary=0.5),
    "hinge": GANLoss("hinge", g_loss_critic, d_loss_hinge, probabilities=False),
    "wgan_gp": GANLoss("wgan_gp", g_loss_critic, d_loss_wasserstein, probabilities=False),
}


def build(loss_cfg):
    """The loss a config names, with its penalty weights (every loss takes loss.r1_gamma; wgan_gp also
    loss.gp_lambda and loss.drift)."""
    name = loss_cfg["name"]
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    weights = {key: float(loss_cfg[key]) for key in ("gp_lambda", "drift", "r1_gamma") if key in loss_cfg}
    for key, value in weights.items():
        if value < 0:
            raise ConfigError(f"loss.{key} must be >= 0, got {value}")
    return replace(LOSSES[name], **weights)
