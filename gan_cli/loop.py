"""Algorithm 1 of Goodfellow et al. (2014): k updates of D with G fixed, then one update of G with D fixed."""

import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

# Stats accumulated on the device each step and read back only every log_every steps.
STATS = ("Loss/D", "Loss/G", "D/real", "D/fake", "Grad/G_norm")


@dataclass
class TrainState:
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    step: int = 0  # G updates done


def noise(m, latent_dim, device):
    return torch.randn(m, latent_dim, device=device)  # z ~ N(0, I)


def d_step(s, loss, real, z):
    """One ascent step on D's objective; G is only evaluated, never differentiated."""
    with torch.no_grad():
        fake = s.G(z)
    real_logits, fake_logits = s.D(real), s.D(fake)
    loss_d = loss.d(real_logits, fake_logits)
    s.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    s.opt_d.step()
    return loss_d.detach(), torch.sigmoid(real_logits.detach()).mean(), torch.sigmoid(fake_logits.detach()).mean()


def g_step(s, loss, z):
    """One descent step on G's loss; D's parameters take no gradient and are not stepped."""
    s.D.requires_grad_(False)
    try:
        loss_g = loss.g(s.D(s.G(z)))
        s.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
    finally:
        s.D.requires_grad_(True)
    grad_norm = torch.nn.utils.get_total_norm([p.grad for p in s.G.parameters() if p.grad is not None])
    s.opt_g.step()
    return loss_g.detach(), grad_norm


def fit(s, loss, data, cfg, out):
    """Train from s.step to cfg.trainer.steps; `out` logs, samples and checkpoints (see train.Outputs)."""
    t, m = cfg.trainer, cfg.batch_size
    device = next(s.G.parameters()).device
    acc, n_acc, tic = torch.zeros(len(STATS), device=device), 0, time.perf_counter()
    bar = tqdm(range(s.step + 1, t.steps + 1), initial=s.step, total=t.steps, desc="train", dynamic_ncols=True)
    for step in bar:
        for _ in range(t.d_steps):  # k D steps, each on a fresh real batch and fresh noise
            loss_d, d_real, d_fake = d_step(s, loss, data.next(), noise(m, cfg.latent_dim, device))
        loss_g, g_norm = g_step(s, loss, noise(m, cfg.latent_dim, device))
        s.step = step
        acc += torch.stack([loss_d, loss_g, d_real, d_fake, g_norm])
        n_acc += 1

        if step % t.log_every == 0 or step == t.steps:
            values = dict(zip(STATS, (acc / n_acc).tolist()))  # the one host sync per log_every steps
            toc = time.perf_counter()
            values["Speed/images_per_sec"] = n_acc * t.d_steps * m / (toc - tic)
            out.scalars(values, step)
            bar.set_postfix({"D": f"{values['Loss/D']:.3f}", "G": f"{values['Loss/G']:.3f}",
                             "img/s": f"{values['Speed/images_per_sec']:.0f}"})
            acc.zero_()
            n_acc, tic = 0, toc
        if (t.sample_every and step % t.sample_every == 0) or step == t.steps:
            out.samples(s, step)
        if (t.ckpt_every and step % t.ckpt_every == 0) or step == t.steps:
            out.checkpoint(s, step, periodic=bool(t.ckpt_every and step % t.ckpt_every == 0))
    bar.close()
    return out.last_scalars
